"""The command line, parsed as commander.js parses it for the real CLI: the option table of
2.1.197 (hidden options included), values and their checks, variadic options, short-flag groups,
and the "(Did you mean ...?)" hint for an unknown option."""

from __future__ import annotations

from . import VERSION
from .console import Exit, fail, out
from .values import js_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# flags, then (after two spaces) markers: hidden, repeat, choices=a,b, check=NAME. The order is
# the real CLI's; it matters for "Did you mean" hints (only visible options are suggested).
_OPTION_SPEC = """
-d, --debug [filter]
-d2e, --debug-to-stderr  hidden
--debug-file <path>
--verbose
-p, --print
--bare
--safe-mode
--init  hidden
--init-only  hidden
--maintenance  hidden
--output-format <format>  choices=text,json,stream-json
--json-schema <schema>
--include-hook-events
--include-partial-messages
--session-mirror  hidden
--input-format <format>  choices=text,stream-json
--dangerously-skip-permissions
--allow-dangerously-skip-permissions
--thinking <mode>  hidden choices=enabled,adaptive,disabled
--thinking-display <display>  hidden choices=summarized,omitted
--max-thinking-tokens <tokens>  hidden
--max-turns <turns>  hidden
--max-budget-usd <amount>  check=budget
--task-budget <tokens>  hidden check=task_budget
--replay-user-messages
--prompt-suggestions [value]  choices=true,false,1,0,yes,no,on,off
--enable-auth-status  hidden
--allowedTools, --allowed-tools <tools...>
--tools <tools...>
--disallowedTools, --disallowed-tools <tools...>
--mcp-config <configs...>
--permission-prompt-tool <tool>  hidden
--system-prompt <prompt>
--system-prompt-file <file>  hidden
--append-system-prompt <prompt>
--append-system-prompt-file <file>  hidden
--plan-mode-instructions <instructions>  hidden
--exclude-dynamic-system-prompt-sections
--permission-mode <mode>  choices=acceptEdits,auto,bypassPermissions,default,dontAsk,plan
-c, --continue
-r, --resume [value]
--fork-session
--prefill <text>  hidden
--deep-link-origin  hidden
--deep-link-repo <slug>  hidden
--deep-link-last-fetch <ms>  hidden
--prefill-b64 <b64>  hidden
--deep-link-cwd-b64 <b64>  hidden
--from-pr [value]
--no-session-persistence
--resume-session-at <message id>  hidden
--reply-on-resume  hidden
--rewind-files <user-message-id>  hidden
--model <model>
--effort <level>
--agent <agent>
--betas <betas...>
--fallback-model <model>
--workload <tag>  hidden
--settings <file-or-json>
--managed-settings <json>  hidden
--add-dir <directories...>
--ide
--strict-mcp-config
--session-id <uuid>
-n, --name <name>
--agents <json>
--setting-sources <sources>
--plugin-dir <path>  repeat
--plugin-dir-no-mcp <path>  hidden repeat
--plugin-url <url>  repeat
--disable-slash-commands
--chrome
--no-chrome
--file <specs...>
-v, --version
-w, --worktree [name]
--tmux
--advisor <model>  hidden
--enable-auto-mode  hidden
--bg, --background
--brief
--ax-screen-reader
--channels <servers...>  hidden
--dangerously-load-development-channels <servers...>  hidden
--agent-id <id>  hidden
--agent-name <name>  hidden
--team-name <name>  hidden
--agent-color <color>  hidden
--plan-mode-required  hidden
--parent-session-id <id>  hidden
--teammate-mode <mode>  hidden choices=auto,tmux,iterm2,in-process
--agent-type <type>  hidden
--sdk-url <url>  hidden
--teleport [session]  hidden
--cloud [description|session_id|url]  hidden
--remote [description|session_id|url]  hidden
--remote-control [name]
--rc [name]  hidden
--remote-control-session-name-prefix <prefix>
-h, --help
"""


class Option:
    """One line of the table: its flags, the kind of value it takes, and its markers."""

    def __init__(self, line: str) -> None:
        flags, _, markers = line.partition("  ")
        self.flags = flags
        names = []
        kind = "bool"
        self.variadic = False
        for token in flags.replace(",", " ").split():
            if token[0] in "<[":
                kind = "required" if token[0] == "<" else "optional"
                self.variadic = "..." in flags
                break
            names.append(token)
        self.kind = kind
        # commander: "-x, --long", or two long names ("--allowedTools, --allowed-tools").
        self.short = names[0] if len(names) > 1 else None
        self.long = names[-1]
        self.negate = self.long.startswith("--no-")
        base = self.long[5:] if self.negate else self.long[2:]
        head, *rest = base.split("-")
        self.attr = head + "".join(part[:1].upper() + part[1:] for part in rest)
        words = markers.split()
        self.hidden = "hidden" in words
        self.repeat = "repeat" in words
        self.choices: list[str] | None = None
        self.check: str | None = None
        for word in words:
            if word.startswith("choices="):
                self.choices = word[8:].split(",")
            elif word.startswith("check="):
                self.check = word[6:]


_OPTIONS = [Option(line) for line in _OPTION_SPEC.strip().splitlines()]
_BY_FLAG: dict[str, Option] = {}
for _opt in _OPTIONS:
    if _opt.attr != "help":  # commander handles it apart: an unknown option to the parser
        _BY_FLAG[_opt.long] = _opt
        if _opt.short:
            _BY_FLAG[_opt.short] = _opt


def _edit_distance(a: str, b: str) -> int:
    """commander's Damerau-Levenshtein (optimal string alignment) distance."""
    if abs(len(a) - len(b)) > 3:
        return max(len(a), len(b))
    d = [[i] + [0] * len(b) for i in range(len(a) + 1)]
    d[0] = list(range(len(b) + 1))
    for j in range(1, len(b) + 1):
        for i in range(1, len(a) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def suggestion(flag: str) -> str:
    """commander's hint after "unknown option": the visible options closest to `flag`."""
    if not flag.startswith("--"):
        return ""
    word = flag[2:]
    best, similar = 3, []
    for option in _OPTIONS:
        candidate = option.long[2:]
        if option.hidden or len(candidate) <= 1:
            continue
        distance = _edit_distance(word, candidate)
        length = max(len(word), len(candidate))
        if (length - distance) / length > 0.4:
            if distance < best:
                best, similar = distance, [candidate]
            elif distance == best:
                similar.append(candidate)
    similar = ["--" + s for s in sorted(set(similar), key=lambda s: (s.lower(), s.swapcase()))]
    if len(similar) > 1:
        return f"\n(Did you mean one of {', '.join(similar)}?)"
    return f"\n(Did you mean {similar[0]}?)" if similar else ""


def _bun_crash(message: str) -> NoReturn:
    """2.1.197 validates --max-budget-usd/--task-budget by throwing from commander's parser."""
    fail(
        '33623 | `)}return e}async function u4m(){ga("run_function_start");'
        "let e=new Ngc().configureHelp(_ve()).enablePositionalOptions();\n\n"
        f"error: {message}\n"
        "      at <anonymous> (/$bunfs/root/src/entrypoints/cli.js:33623:6915)\n"
        "      at _callParseArg (/$bunfs/root/src/entrypoints/cli.js:11033:659)\n"
        "      at parseOptions (/$bunfs/root/src/entrypoints/cli.js:11037:4839)\n"
        "      at _parseCommand (/$bunfs/root/src/entrypoints/cli.js:11037:2216)\n"
        "      at parseAsync (/$bunfs/root/src/entrypoints/cli.js:11034:4172)\n\n"
        "Bun v1.4.0 (Linux x64 baseline)"
    )


def _emit_option(opts: dict[str, Any], option: Option, value: str | None) -> None:
    if option.attr == "version":
        out(f"{VERSION} (Claude Code)\n")
        raise Exit(0)
    if option.kind == "optional" and value is None:
        value = "true" if option.attr == "promptSuggestions" else None
    if value is not None and option.choices is not None and value not in option.choices:
        fail(
            f"error: option '{option.flags}' argument '{value}' is invalid. "
            f"Allowed choices are {', '.join(option.choices)}."
        )
    if option.check == "budget":
        number = js_number(value or "")
        if number is None or number <= 0:
            _bun_crash("--max-budget-usd must be a positive number greater than 0")
    elif option.check == "task_budget":
        number = js_number(value or "")
        if number is None or number <= 0 or number != int(number):
            _bun_crash("--task-budget must be a positive integer")
    if option.kind == "bool":
        opts[option.attr] = not option.negate
    elif option.kind == "optional" and value is None:
        opts[option.attr] = True
    elif option.variadic or option.repeat:
        opts.setdefault(option.attr, []).append(value)
    else:
        opts[option.attr] = value


def parse_args(args: list[str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """commander's parseOptions: (option values by attribute, operands, unknown)."""
    opts: dict[str, Any] = {}
    operands: list[str] = []
    unknown: list[str] = []
    dest = operands
    variadic: Option | None = None
    rest = list(args)

    def maybe_option(arg: str) -> bool:
        return len(arg) > 1 and arg[0] == "-"

    while rest:
        arg = rest.pop(0)
        if arg == "--":
            if dest is unknown:
                dest.append(arg)
            dest.extend(rest)
            break
        if variadic is not None and not maybe_option(arg):
            _emit_option(opts, variadic, arg)
            continue
        variadic = None
        if maybe_option(arg) and (option := _BY_FLAG.get(arg)) is not None:
            if option.kind == "required":
                if not rest:
                    fail(f"error: option '{option.flags}' argument missing")
                _emit_option(opts, option, rest.pop(0))
            elif option.kind == "optional":
                value = rest.pop(0) if rest and not maybe_option(rest[0]) else None
                _emit_option(opts, option, value)
            else:
                _emit_option(opts, option, None)
            variadic = option if option.variadic else None
            continue
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            option = _BY_FLAG.get(arg[:2])
            if option is not None:
                if option.kind == "bool":
                    _emit_option(opts, option, None)
                    rest.insert(0, "-" + arg[2:])
                else:
                    _emit_option(opts, option, arg[2:])
                continue
        if arg.startswith("--") and "=" in arg[3:]:
            index = arg.index("=", 3)
            option = _BY_FLAG.get(arg[:index])
            if option is not None and option.kind != "bool":
                _emit_option(opts, option, arg[index + 1 :])
                continue
        if maybe_option(arg):
            dest = unknown
        dest.append(arg)
    return opts, operands, unknown
