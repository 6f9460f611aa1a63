"""A fake ``claude`` (Claude Code CLI 2.1.197) in print mode, for tests. Stdlib only.

It parses the command line like the real CLI (commander.js: every print-mode option of 2.1.197,
hidden ones included; ``--opt value`` and ``--opt=value``; variadic options that swallow the
following non-dash arguments; ``-pv``-style short-flag groups; unknown options with the same
"(Did you mean ...?)" hint), fails on bad input with the real messages and exit codes, reads the
prompt from stdin and/or the positional argument, and writes the real stream-json schema, one
flushed line per message. Facts it copies: shared/claude-cli/README.md, help.txt,
sample-stream.jsonl, and runs of the real 2.1.197 against tests/fakes/mock_api.py.

Without ``-p``/``--print`` the real CLI starts its interactive UI; the fake exits 2 instead.

Choosing what happens
---------------------
The scenario is ``$FAKE_CLAUDE_SCENARIO``, else a prompt line ``fake-scenario: NAME``, else
``success``. Each parameter ``P`` is read the same way: ``$FAKE_CLAUDE_<P upper-case>``, else a
prompt line ``fake-<p>: value`` (``-`` and ``_`` are the same in the name), else its default::

    fake-scenario: tools
    fake-turns: 5
    fake-cost: 0.25

Scenarios (exit code 0 when the result has ``is_error: false``, else 1, as the real CLI):

success                 The run of sample-stream.jsonl: text, Bash ``ls``, Bash ``printf ... >
                        NOTES.md``, final text; 3 API calls. With ``--model sonnet`` it costs the
                        sample's 0.0600318, title-generation call included (as the real CLI,
                        none for a one-word prompt or with CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC
                        set: 0.0586878).
                        The write is denied (``permission_denials``, an error tool_result, still
                        a success) unless the permission mode is acceptEdits, auto or
                        bypassPermissions, or ``--allowedTools`` has a bare ``Bash`` rule, as the
                        real CLI does. ``--max-turns`` and ``--max-budget-usd`` are enforced.
tools                   ``turns`` Bash tool turns (``echo step N``), then ``text``.
error_max_turns         Bash tool turns until ``--max-turns`` (else ``max_turns``) is reached.
error_max_budget_usd    Tool calls of ``cost`` each until ``--max-budget-usd`` (else ``budget``)
                        is reached: ``errors: ["Reached maximum budget ($X)"]``.
error_during_execution  Text, then an ``error_during_execution`` result with ``errors:
                        [message]`` and ``terminal_reason: model_error`` (constructed), exit 1.
api_error               A synthetic assistant line with ``error`` and a result ``success`` with
                        ``is_error: true`` and ``api_error_status`` = ``status`` (401, 402, 429,
                        500, 529 or ``null``); ``retries`` api_retry lines first.
rate_limit              A ``rate_limit_event`` (status ``rejected``, ``resetsAt``), then the 429
                        api_error result. (Constructed: the real CLI emits it for subscribers.)
huge_line               A Bash turn whose user tool_result line is about ``mb`` MiB.
garbage                 The success run with non-JSON lines, unknown message types and unknown
                        system subtypes mixed in; the result is still the last line.
no_result               init and one assistant line, then ``message`` on stderr and exit ``exit``.
usage_error             ``message`` on stderr, exit ``exit``, nothing on stdout.
sleep                   init and a text line, then ``sleep_s`` seconds waiting "on the API", then
                        a success. SIGINT: the ``[Request interrupted by user]`` line and an
                        ``error_during_execution`` result (``terminal_reason: aborted_streaming``,
                        the cost so far = ``cost``, default 0), exit 0. SIGTERM: exit 143, no
                        result. SIGHUP: exit 129.
ignore_sigterm          Like sleep, but SIGINT and SIGTERM are ignored.
grandchild              A Bash tool_use, then a detached grandchild ``sleep child_sleep_s`` in its
                        own session (setsid); its pid goes to the file ``pidfile``; then waits
                        ``sleep_s`` "in the tool". SIGINT: the real ``aborted_tools`` ending, exit
                        1. SIGINT/SIGTERM kill the grandchild first unless ``kill_children: 0``;
                        ``keep_stdout: 1`` lets it inherit the fake's stdout.
stream                  About ``mb`` MiB of Bash tool_use/tool_result lines of ``line_kb`` KiB, as
                        fast as possible, then a success result (for throughput benchmarks).
echo_env                One text answer: JSON ``{"cwd": ..., "env": {NAME: value-or-null}}`` for
                        the comma-separated ``vars`` (default: the whole environment).

Parameters (defaults in brackets): text [scenario's own], cost [from token usage], turns [3],
max_turns [1], budget [0.01], status [529], retries [0], resets_at [now + 1 h], mb [2 for
huge_line, 10 for stream], line_kb [4], sleep_s [30], child_sleep_s [300], pidfile
[grandchild.pid], keep_stdout [0], kill_children [1], vars [all], message [scenario's own], exit
[1], line_delay_s [0: pause before each stdout line], startup_s [0: pause before init],
require_auth [0: 1 = without ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN or CLAUDE_CODE_OAUTH_TOKEN
end with the real "Not logged in" error], stdin_timeout_s [3, env only: the real CLI's wait
for stdin data], linger_s [0: after the last line, close stdout and keep running this long, as
a CLI stuck after its output; a signal then ends it at once].

``cost`` is the run's ``total_cost_usd`` (for error_max_budget_usd the cost of each API call,
default 1.62 x budget; for sleep-like scenarios the cost so far). Token counts are scaled to
match it; ``modelUsage[model].costUSD`` always equals ``total_cost_usd``. Prices are the real
CLI's: Sonnet 5 $3/$15 per M input/output tokens, $0.30 cache read, $3.75 cache write; Opus 4.8
5/25/0.5/6.25; Fable 5 10/50/1/12.5; Haiku 4.5 1/5/0.1/1.25. Model aliases resolve as in
2.1.197 (no ``--model``: ``claude-opus-4-8[1m]``; ``sonnet``: ``claude-sonnet-5``).

Other behaviour
---------------
- Not emulated: ``--debug``/``--debug-to-stderr`` logs, ``--bg`` (the real one starts a
  background daemon), subcommands; ``-h`` prints a short help.
- ``--output-format text`` prints only the result text, ``json`` the result object (a JSON
  array of every message with ``--verbose``); ``--include-partial-messages`` adds
  ``stream_event`` lines; ``--input-format stream-json`` takes the prompt from the ``user``
  lines on stdin.
- With ``CLAUDE_CONFIG_DIR`` set (never otherwise, so tests cannot write to a real ~/.claude) and
  without ``--no-session-persistence``, the transcript goes to
  ``$CLAUDE_CONFIG_DIR/projects/<cwd, non-alphanumerics as ->/<session_id>.jsonl``, so a reused
  ``--session-id`` fails ("is already in use") and ``--resume=<id>``/``--continue`` work.
- If ``$FAKE_CLAUDE_RECORD`` names a directory, ``<session-id>.json`` is written there (again at
  exit, with ``exit_code``): ``argv`` (as invoked, argv[0] included), ``args``, ``cwd``,
  ``stdin``, ``prompt``, ``env``, ``scenario``, ``params``, ``session_id``, ``pid``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from typing import Any, ClassVar, NoReturn

VERSION = "2.1.197"
_T0 = time.monotonic()
_ARGV0 = os.environ.pop("FAKE_CLAUDE_ARGV0", None) or sys.argv[0]

# ---------------------------------------------------------------------------------------------
# The command line: commander.js as the real CLI configures it.
# ---------------------------------------------------------------------------------------------

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


class _Option:
    __slots__ = ("attr", "check", "choices", "flags", "hidden", "kind", "long", "negate")
    __slots__ += ("repeat", "short", "variadic")

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


_OPTIONS = [_Option(line) for line in _OPTION_SPEC.strip().splitlines()]
_BY_FLAG = {}
for _opt in _OPTIONS:
    if _opt.attr != "help":
        _BY_FLAG[_opt.long] = _opt
        if _opt.short:
            _BY_FLAG[_opt.short] = _opt


def _out(text: str) -> None:
    try:
        sys.stdout.buffer.write(text.encode())
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os._exit(1)


def _err(text: str) -> None:
    try:
        sys.stderr.buffer.write(text.encode())
        sys.stderr.buffer.flush()
    except BrokenPipeError:
        pass


class Exit(Exception):
    """Leave with an exit code (after the record is written)."""

    def __init__(self, code: int) -> None:
        self.code = code


def _fail(message: str, code: int = 1) -> NoReturn:
    _err(message + "\n")
    raise Exit(code)


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


def _suggestion(flag: str) -> str:
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
    _fail(
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


def _js_number(text: str) -> float | None:
    """JavaScript's Number(text) for the values a test passes (None for NaN)."""
    text = text.strip()
    if text == "":
        return 0.0
    try:
        return float(int(text, 0)) if text.lower().startswith(("0x", "0o", "0b")) else float(text)
    except ValueError:
        return None


def _emit_option(opts: dict[str, Any], option: _Option, value: str | None) -> None:
    if option.attr == "version":
        _out(f"{VERSION} (Claude Code)\n")
        raise Exit(0)
    if option.kind == "optional" and value is None:
        value = "true" if option.attr == "promptSuggestions" else None
    if value is not None and option.choices is not None and value not in option.choices:
        _fail(
            f"error: option '{option.flags}' argument '{value}' is invalid. "
            f"Allowed choices are {', '.join(option.choices)}."
        )
    if option.check == "budget":
        number = _js_number(value or "")
        if number is None or number <= 0:
            _bun_crash("--max-budget-usd must be a positive number greater than 0")
    elif option.check == "task_budget":
        number = _js_number(value or "")
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
    variadic: _Option | None = None
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
                    _fail(f"error: option '{option.flags}' argument missing")
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


def _help() -> str:
    lines = [
        "Usage: claude [options] [prompt]",
        "",
        "Claude Code - starts an interactive session by default, use -p/--print for",
        "non-interactive output",
        "",
        "Arguments:",
        "  prompt  Your prompt",
        "",
        "Options:",
    ]
    lines += [f"  {o.flags}" for o in _OPTIONS if not o.hidden]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Small helpers: ids, numbers, time.
# ---------------------------------------------------------------------------------------------

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _rand_id(prefix: str, n: int = 22) -> str:
    return prefix + "".join(_B62[b % 62] for b in os.urandom(n))


def uuid4() -> str:
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid(text: str) -> bool:
    """The real CLI's /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i."""
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdefABCDEF" for c in "".join(parts)
    )


def js_str(x: float) -> str:
    """String(x) in JavaScript, for the numbers that appear in messages."""
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    text = repr(x)
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{'+' if int(exp) > 0 else '-'}{abs(int(exp))}"
    return text


def _num(x: float) -> float | int:
    """JSON.stringify writes integral numbers without '.0'."""
    return int(x) if x == int(x) and abs(x) < 1e15 else x


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Models and prices (as 2.1.197 resolves and prices them).
# ---------------------------------------------------------------------------------------------

_ALIASES = {
    "opus": "claude-opus-4-8",
    "best": "claude-opus-4-8",
    "sonnet": "claude-sonnet-5",
    "fable": "claude-fable-5",
    "haiku": "claude-haiku-4-5-20251001",
}
# USD per million tokens: input, output, cache read, cache write; max output tokens.
_PRICES = {
    "claude-opus": (5.0, 25.0, 0.5, 6.25, 64000),
    "claude-sonnet": (3.0, 15.0, 0.3, 3.75, 64000),
    "claude-fable": (10.0, 50.0, 1.0, 12.5, 64000),
    "claude-haiku": (1.0, 5.0, 0.1, 1.25, 32000),
}


def resolve_model(name: str | None) -> str:
    """The model name the init line shows (``[1m]`` kept)."""
    if not name:
        name = os.environ.get("ANTHROPIC_MODEL") or "opus[1m]"
    suffix = "[1m]" if name.endswith("[1m]") else ""
    base = name[: -len(suffix)] if suffix else name
    return _ALIASES.get(base, base) + suffix


def _prices(model: str) -> tuple[float, float, float, float, int]:
    for prefix, prices in _PRICES.items():
        if model.startswith(prefix):
            return prices
    return _PRICES["claude-sonnet"]


Usage = tuple[int, int, int, int]  # input, cache creation, cache read, output tokens


def price(model: str, usage: Usage) -> float:
    p_in, p_out, p_read, p_write, _ = _prices(model)
    inp, create, read, out = usage
    return (inp * p_in + out * p_out + read * p_read + create * p_write) / 1e6


def _scale(usage: Usage, f: float) -> Usage:
    inp, create, read, out = usage
    return (round(inp * f), round(create * f), round(read * f), round(out * f))


def _add(a: Usage, b: Usage) -> Usage:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


ZERO: Usage = (0, 0, 0, 0)
TITLE_USAGE: Usage = (418, 0, 0, 6)  # the session-title call seen in sample-stream.jsonl


def _usage_json(u: Usage, *, result: bool) -> dict[str, Any]:
    inp, create, read, out = u
    if not result:  # an assistant line: start-of-message usage
        return {
            "input_tokens": inp,
            "cache_creation_input_tokens": create,
            "cache_read_input_tokens": read,
            "output_tokens": out,
            "service_tier": "standard",
            "cache_creation": {"ephemeral_5m_input_tokens": create, "ephemeral_1h_input_tokens": 0},
        }
    return {
        "input_tokens": inp,
        "cache_creation_input_tokens": create,
        "cache_read_input_tokens": read,
        "output_tokens": out,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": create},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
    }


# ---------------------------------------------------------------------------------------------
# Signals: handled between lines, or at once while the fake waits.
# ---------------------------------------------------------------------------------------------


class Interrupted(Exception):
    """SIGINT: the turn is aborted."""


class _Signals:
    """Signals are handled between two stdout lines, or at once while the fake waits."""

    interruptible = False
    pending: ClassVar[list[int]] = []
    params: ClassVar[dict[str, str]] = {}


def _signal_exception(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return Interrupted()
    _kill_children(_Signals.params)
    return Exit(143 if signum == signal.SIGTERM else 129)


def _on_signal(signum: int, frame: object) -> None:
    if _Signals.interruptible:
        _Signals.interruptible = False
        raise _signal_exception(signum)
    _Signals.pending.append(signum)


def _install_signals(ignore: bool = False) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        handler = signal.SIG_IGN if ignore and signum != signal.SIGHUP else _on_signal
        signal.signal(signum, handler)


def check_signals() -> None:
    if _Signals.pending:
        raise _signal_exception(_Signals.pending.pop(0))


def interruptible_sleep(seconds: float) -> None:
    """Sleep; a signal acts at once (SIGINT raises Interrupted, SIGTERM/SIGHUP exit)."""
    check_signals()
    _Signals.interruptible = True
    try:
        time.sleep(seconds)
    finally:
        _Signals.interruptible = False


# ---------------------------------------------------------------------------------------------
# One run: output, accounting, results.
# ---------------------------------------------------------------------------------------------


class Run:
    def __init__(self, opts: dict[str, Any], params: dict[str, str], prompt: str) -> None:
        self.opts = opts
        self.params = params
        self.prompt = prompt
        self.session_id: str = opts.get("sessionId") or uuid4()
        self.model = resolve_model(opts.get("model"))
        self.api_model = self.model.removesuffix("[1m]")
        self.cwd = os.getcwd()
        self.format = opts.get("outputFormat") or "text"
        self.verbose = bool(opts.get("verbose"))
        self.partial = bool(opts.get("includePartialMessages")) and self.format == "stream-json"
        self.collected: list[Any] = []
        self.transcript: str | None = None
        self.line_delay = float(params.get("line_delay_s") or 0)
        skip = bool(opts.get("dangerouslySkipPermissions"))
        self.permission_mode = (
            "bypassPermissions" if skip else opts.get("permissionMode", "default")
        )
        self.allowed = _split_tools(opts.get("allowedTools") or [])
        # Accounting.
        self.main_usage: Usage = ZERO
        self.model_usage: Usage = ZERO
        self.cost = 0.0
        self.cost_override: float | None = None
        self.scale = 1.0  # token counts are multiplied by this to match a `cost` parameter
        self.calls = 0
        self.api_ms = 0
        self.denials: list[dict[str, Any]] = []
        self.phase = "api"  # what a SIGINT would abort: "api" (streaming) or "tool"
        self.pending_tool: dict[str, Any] | None = None
        self.title_pending = _truthy_env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC") is False and (
            " " in prompt.strip()
        )
        self.max_turns = _positive_int(opts.get("maxTurns"))
        self.budget = _js_number(opts["maxBudgetUsd"]) if opts.get("maxBudgetUsd") else None

    # -- output --------------------------------------------------------------------------

    def emit(self, obj: dict[str, Any]) -> None:
        if self.line_delay:
            self.wait(self.line_delay)
        if obj.get("type") == "result":
            _install_signals(ignore=True)  # the result line is the last word
            _Signals.pending.clear()
        self.write_raw(_dumps(obj), obj)

    def write_raw(self, line: str, obj: Any) -> None:
        """One stdout line (stream-json), or keep it for the json format; then act on signals."""
        if self.format == "stream-json":
            _out(line + "\n")
        elif self.format == "json" and self.verbose:
            self.collected.append(obj)
        if self.transcript is not None:
            with open(self.transcript, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        check_signals()

    def wait(self, seconds: float) -> None:
        interruptible_sleep(seconds)

    def init(self) -> None:
        startup = float(self.params.get("startup_s") or 0)
        if startup:
            self.wait(startup)
        config = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(
            os.path.expanduser("~"), ".claude"
        )
        quiet = _truthy_env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")
        has_key = bool(os.environ.get("ANTHROPIC_API_KEY"))
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": self.cwd,
                "session_id": self.session_id,
                "tools": _tool_list(self.opts),
                "mcp_servers": [],
                "model": self.model,
                "permissionMode": self.permission_mode,
                "slash_commands": [*_SKILLS, *_COMMANDS],
                "apiKeySource": "ANTHROPIC_API_KEY" if has_key else "none",
                "claude_code_version": VERSION,
                "output_style": "default",
                "agents": ["claude", "Explore", "general-purpose", "Plan", "statusline-setup"],
                "skills": list(_SKILLS),
                "plugins": [],
                "analytics_disabled": quiet,
                "product_feedback_disabled": quiet,
                "uuid": uuid4(),
                "memory_paths": {"auto": f"{config}/projects/{_project_dir(self.cwd)}/memory/"},
                "fast_mode_state": "off",
            }
        )

    def assistant(self, blocks: list[dict[str, Any]], usage: Usage) -> str:
        """One API call's message, one line per content block; returns message.id.

        With --include-partial-messages the raw stream events come too, each assistant line
        right after its block's content_block_stop, as the real CLI interleaves them.
        """
        msg_id = _rand_id("msg_01")
        request_id = _rand_id("req_011")
        usage = _scale(usage, self.scale)
        start = (usage[0], usage[1], usage[2], 1)
        message = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": self.api_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_json(start, result=False),
        }
        self._event({"type": "message_start", "message": message})
        for index, block in enumerate(blocks):
            self._block_events(index, block)
            self.emit(
                {
                    "type": "assistant",
                    "message": {**message, "content": [block], "context_management": None},
                    "parent_tool_use_id": None,
                    "session_id": self.session_id,
                    "uuid": uuid4(),
                    "request_id": request_id,
                }
            )
            if block["type"] == "tool_use":
                self.pending_tool = block
                self.phase = "tool"
        stop = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
        delta = {"stop_reason": stop, "stop_sequence": None}
        self._event({"type": "message_delta", "delta": delta, "usage": {"output_tokens": usage[3]}})
        self._event({"type": "message_stop"})
        return msg_id

    def _event(self, event: dict[str, Any]) -> None:
        if self.partial:
            self.emit(
                {
                    "type": "stream_event",
                    "event": event,
                    "session_id": self.session_id,
                    "parent_tool_use_id": None,
                    "uuid": uuid4(),
                }
            )

    def _block_events(self, index: int, block: dict[str, Any]) -> None:
        if not self.partial:
            return
        if block["type"] == "text":
            first = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            first = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": _dumps(block["input"])}
        self._event({"type": "content_block_start", "index": index, "content_block": first})
        self._event({"type": "content_block_delta", "index": index, "delta": delta})
        self._event({"type": "content_block_stop", "index": index})

    def call_done(self, usage: Usage) -> None:
        """An API call finished: count it (and the title call made alongside the first)."""
        self.calls += 1
        self.main_usage = _add(self.main_usage, _scale(usage, self.scale))
        self.model_usage = _add(self.model_usage, _scale(usage, self.scale))
        self.cost += price(self.model, usage) * self.scale
        if self.title_pending:
            self.title_pending = False
            self.model_usage = _add(self.model_usage, _scale(TITLE_USAGE, self.scale))
            self.cost += price(self.model, TITLE_USAGE) * self.scale

    def tool_result(self, content: str, *, is_error: bool = False, extra: Any = None) -> None:
        tool = self.pending_tool or {"id": _rand_id("toolu_01")}
        self.pending_tool = None
        self.phase = "api"
        block: dict[str, Any]
        if is_error:
            block = {"type": "tool_result", "content": content, "is_error": True}
            block["tool_use_id"] = tool["id"]
            extra = "Error: " + content if extra is None else extra
        else:
            block = {"tool_use_id": tool["id"], "type": "tool_result", "content": content}
            block["is_error"] = False
            extra = {
                "stdout": content,
                "stderr": "",
                "interrupted": False,
                "isImage": False,
                "noOutputExpected": False,
            }
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [block]},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": uuid4(),
                "timestamp": _timestamp(),
                "tool_use_result": extra,
            }
        )

    def user_text(self, text: str) -> None:
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [{"type": "text", "text": text}]},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": uuid4(),
                "timestamp": _timestamp(),
            }
        )

    # -- results ---------------------------------------------------------------------------

    def _totals(self) -> tuple[float, Usage, Usage]:
        """(total_cost_usd, usage, modelUsage tokens) for the result line."""
        override = self.cost_override
        if override is None:
            # Priced from the token totals in one go, as the real CLI's numbers come out.
            cost = price(self.model, self.model_usage) if self.scale == 1.0 else self.cost
            return cost, self.main_usage, self.model_usage
        if abs(override - self.cost) <= 1e-9 * max(1.0, override) or not self.cost:
            return override, self.main_usage, self.model_usage
        f = override / self.cost
        return override, _scale(self.main_usage, f), _scale(self.model_usage, f)

    def _model_usage(self, cost: float, usage: Usage) -> dict[str, Any]:
        if usage == ZERO and cost == 0:
            return {}
        inp, create, read, out = usage
        return {
            self.model: {
                "inputTokens": inp,
                "outputTokens": out,
                "cacheReadInputTokens": read,
                "cacheCreationInputTokens": create,
                "webSearchRequests": 0,
                "costUSD": _num(cost),
                "contextWindow": 1000000 if self.model.endswith("[1m]") else 200000,
                "maxOutputTokens": _prices(self.model)[4],
            }
        }

    def _duration(self) -> int:
        """Wall-clock milliseconds since the fake started (the API's share is 80 % of it)."""
        elapsed = max(1, int((time.monotonic() - _T0) * 1000))
        self.api_ms = int(elapsed * 0.8) if self.calls else 0
        return elapsed

    def success(self, text: str) -> NoReturn:
        cost, usage, model_usage = self._totals()
        duration = self._duration()
        self.finish(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "api_error_status": None,
                "duration_ms": duration,
                "duration_api_ms": self.api_ms,
                "ttft_ms": self.api_ms // 4,
                "ttft_stream_ms": self.api_ms // 4,
                "time_to_request_ms": duration // 10,
                "num_turns": self.calls,
                "result": text,
                "stop_reason": "end_turn",
                "session_id": self.session_id,
                "total_cost_usd": _num(cost),
                "usage": _usage_json(usage, result=True),
                "modelUsage": self._model_usage(cost, model_usage),
                "permission_denials": self.denials,
                "terminal_reason": "completed",
                "fast_mode_state": "off",
                "uuid": uuid4(),
            },
            text + "\n",
        )

    def error_result(
        self,
        subtype: str,
        errors: list[str],
        *,
        num_turns: int,
        stop_reason: str | None,
        terminal_reason: str | None,
        text: str,
        exit_code: int = 1,
        zero_usage: bool = False,
    ) -> NoReturn:
        cost, usage, model_usage = self._totals()
        result: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "duration_ms": self._duration(),
            "duration_api_ms": 0 if zero_usage else self.api_ms,
            "is_error": True,
            "num_turns": num_turns,
            "stop_reason": stop_reason,
            "session_id": self.session_id,
            "total_cost_usd": _num(cost),
            "usage": _usage_json(ZERO if zero_usage else usage, result=True),
            "modelUsage": self._model_usage(cost, model_usage),
            "permission_denials": self.denials,
        }
        if terminal_reason is not None:
            result["terminal_reason"] = terminal_reason
        result.update({"fast_mode_state": "off", "uuid": uuid4(), "errors": errors})
        self.finish(result, text, exit_code)

    def api_error(self, status: int | None, text: str, error: str) -> NoReturn:
        message: dict[str, Any] = {
            "id": uuid4(),
            "container": None,
            "model": "<synthetic>",
            "role": "assistant",
            "stop_details": None,
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "type": "message",
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": None,
                "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                "inference_geo": None,
                "iterations": None,
                "speed": None,
            },
            "content": [{"type": "text", "text": text}],
            "context_management": None,
        }
        line: dict[str, Any] = {
            "type": "assistant",
            "message": message,
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": uuid4(),
            "error": error,
        }
        if status is not None:
            line["request_id"] = _rand_id("req_011")
        self.emit(line)
        cost, usage, model_usage = self._totals()
        self.finish(
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "api_error_status": status,
                "duration_ms": self._duration(),
                "duration_api_ms": 0,
                "num_turns": self.calls + 1,
                "result": text,
                "stop_reason": "stop_sequence",
                "session_id": self.session_id,
                "total_cost_usd": _num(cost),
                "usage": _usage_json(usage, result=True),
                "modelUsage": self._model_usage(cost, model_usage),
                "permission_denials": self.denials,
                "terminal_reason": "completed",
                "fast_mode_state": "off",
                "uuid": uuid4(),
            },
            text + "\n",
        )

    def interrupted(self) -> NoReturn:
        """SIGINT: what 2.1.197 prints when a turn is aborted (exit 0 while streaming, else 1)."""
        in_tool = self.phase == "tool" and self.pending_tool is not None
        if in_tool:
            self.tool_result(_REJECTED, is_error=True, extra="User rejected tool use")
            self.user_text("[Request interrupted by user for tool use]")
            stop, reason, code = "tool_use", "aborted_tools", 1
        else:
            self.user_text("[Request interrupted by user]")
            stop, reason, code = None, "aborted_streaming", 0
        self.error_result(
            "error_during_execution",
            [
                "[ede_diagnostic] result_type=user last_content_type=n/a "
                f"stop_reason={stop or 'null'}"
            ],
            num_turns=self.calls + 2,
            stop_reason=stop,
            terminal_reason=reason,
            text="Execution error",
            exit_code=code,
        )

    def finish(self, result: dict[str, Any], text: str, exit_code: int | None = None) -> NoReturn:
        self.emit(result)
        if self.format == "json":
            _out(_dumps(self.collected if self.verbose else result) + "\n")
        elif self.format == "text":
            _out(text)
        if exit_code is None:
            exit_code = 1 if result["is_error"] else 0
        raise Exit(exit_code)


_SKILLS = [
    "deep-research",
    "design-sync",
    "update-config",
    "verify",
    "debug",
    "code-review",
    "simplify",
    "batch",
    "fewer-permission-prompts",
    "loop",
    "claude-api",
    "run",
    "run-skill-generator",
]
_COMMANDS = [
    "clear",
    "compact",
    "config",
    "context",
    "heapdump",
    "init",
    "reload-skills",
    "review",
    "security-review",
    "usage",
    "insights",
    "goal",
    "team-onboarding",
]
_TOOLS = [
    "Task",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "DesignSync",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "Skill",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "TaskUpdate",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
]
_REJECTED = (
    "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it "
    "was a file edit, the new_string was NOT written to the file). STOP what you are doing and "
    "wait for the user to tell you how to proceed."
)
_DONT_ASK = (
    "Permission to use Bash has been denied because Claude Code is running in don't ask mode. "
    "IMPORTANT: You *may* attempt to accomplish this action using other tools that might "
    "naturally be used to accomplish this goal, e.g. using head instead of cat. But you *should "
    "not* attempt to work around this denial in malicious ways, e.g. do not use your ability to "
    "run tests to execute non-test actions. You should only try to work around this restriction "
    "in reasonable ways that do not attempt to bypass the intent behind this denial. If you "
    "believe this capability is essential to complete the user's request, STOP and explain to "
    "the user what you were trying to do and why you need this permission. Let the user decide "
    "how to proceed."
)


def _split_tools(values: list[str]) -> list[str]:
    """Comma- or space-separated tool rules; spaces inside parentheses stay."""
    rules: list[str] = []
    for value in values:
        depth, current = 0, ""
        for ch in value:
            if ch in ", " and depth == 0:
                if current:
                    rules.append(current)
                current = ""
                continue
            depth += (ch == "(") - (ch == ")")
            current += ch
        if current:
            rules.append(current)
    return rules


def _tool_list(opts: dict[str, Any]) -> list[str]:
    tools = list(_TOOLS)
    if "tools" in opts:
        names = _split_tools(opts["tools"])
        if names != ["default"]:
            tools = [t for t in tools if t in names]
    denied = set(_split_tools(opts.get("disallowedTools") or []))
    return [t for t in tools if t not in denied]


def _project_dir(cwd: str) -> str:
    return "".join(c if c.isalnum() and c.isascii() else "-" for c in cwd)


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _positive_int(value: Any) -> int | None:
    number = _js_number(value) if isinstance(value, str) else None
    if number is None or number <= 0:
        return None  # 0 and NaN are silently ignored, as in 2.1.197
    return int(number)


# ---------------------------------------------------------------------------------------------
# Scenarios.
# ---------------------------------------------------------------------------------------------


def _turn_usage(k: int, final: bool) -> Usage:
    """Usage of main-loop call k, shaped like sample-stream.jsonl (k = 0, 1, 2 reproduce it)."""
    if k == 0:
        return (3, 12431, 0, 52 if final else 84)
    creates = [12431] + [214 if i % 2 else 187 for i in range(1, k + 1)]
    return (1, creates[k], sum(creates[:k]), 52 if final else 66)


class Turn:
    """One planned API call: content blocks, then the tool's output (if any)."""

    def __init__(self, blocks: list[dict[str, Any]], output: str | None, *, writes: bool = False):
        self.blocks = blocks
        self.output = output
        self.writes = writes


def _bash(command: str, description: str) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": _rand_id("toolu_01"),
        "name": "Bash",
        "input": {"command": command, "description": description},
    }


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def agent_loop(run: Run, turns: list[Turn], final_text: str, *, cost: float | None) -> NoReturn:
    """Run planned tool turns then a final text, enforcing --max-turns and --max-budget-usd."""
    usages = [_turn_usage(k, k == len(turns)) for k in range(len(turns) + 1)]
    if cost is not None:
        base = sum(price(run.model, u) for u in usages)
        base += price(run.model, TITLE_USAGE) if run.title_pending else 0.0
        run.scale = cost / base if base else 0.0
    for k, turn in enumerate(turns):
        run.assistant(turn.blocks, usages[k])
        run.call_done(usages[k])
        check_budget(run)
        if turn.writes and not _may_write(run):
            _deny_write(run)
        else:
            run.tool_result(turn.output or "")
        if run.max_turns is not None and k + 1 >= run.max_turns:
            run.error_result(
                "error_max_turns",
                [f"Reached maximum number of turns ({run.max_turns})"],
                num_turns=k + 2,
                stop_reason="tool_use",
                terminal_reason="max_turns",
                text=f"Error: Reached max turns ({run.max_turns})",
            )
    if run.denials:
        final_text = "I couldn't create NOTES.md: writing it was not permitted."
    run.assistant([_text(final_text)], usages[-1])
    run.call_done(usages[-1])
    check_budget(run)
    run.cost_override = cost
    run.success(final_text)


def check_budget(run: Run) -> None:
    if run.budget is not None and run.cost >= run.budget:
        run.error_result(
            "error_max_budget_usd",
            [f"Reached maximum budget (${js_str(run.budget)})"],
            num_turns=run.calls,
            stop_reason="tool_use" if run.pending_tool else "end_turn",
            terminal_reason=None,
            text=f"Error: Exceeded USD budget ({js_str(run.budget)})",
            zero_usage=True,
        )


def _may_write(run: Run) -> bool:
    if run.permission_mode in ("acceptEdits", "auto", "bypassPermissions"):
        return True
    return "Bash" in run.allowed


def _deny_write(run: Run) -> None:
    tool = run.pending_tool or {}
    run.denials.append(
        {"tool_name": "Bash", "tool_use_id": tool.get("id"), "tool_input": tool.get("input")}
    )
    if run.permission_mode == "dontAsk":
        text = _DONT_ASK
    else:
        text = (
            f"Output redirection to '{run.cwd}/NOTES.md' was blocked. For security, Claude Code "
            f"may only write to files in the allowed working directories for this session: "
            f"'{run.cwd}'."
        )
    run.tool_result(text, is_error=True)


def _cost_param(params: dict[str, str]) -> float | None:
    value = params.get("cost")
    return None if value in (None, "") else float(value)


def sc_success(run: Run, params: dict[str, str]) -> NoReturn:
    turns = [
        Turn(
            [
                _text("I'll look at the project files first."),
                _bash("ls", "List files in the project"),
            ],
            "main.py",
        ),
        Turn(
            [
                _bash(
                    "printf '# Notes\\n' > NOTES.md && cat NOTES.md",
                    "Create NOTES.md with a heading",
                )
            ],
            "# Notes",
            writes=True,
        ),
    ]
    text = params.get("text") or "Created NOTES.md containing a `# Notes` heading."
    agent_loop(run, turns, text, cost=_cost_param(params))


def sc_tools(run: Run, params: dict[str, str]) -> NoReturn:
    n = int(params.get("turns") or 3)
    turns = []
    for k in range(n):
        blocks = [_bash(f"echo step {k + 1}", f"Run step {k + 1}")]
        if k == 0:
            blocks.insert(0, _text("Let me run the steps one by one."))
        turns.append(Turn(blocks, f"step {k + 1}"))
    text = params.get("text") or f"Ran {n} steps."
    agent_loop(run, turns, text, cost=_cost_param(params))


def sc_error_max_turns(run: Run, params: dict[str, str]) -> NoReturn:
    if run.max_turns is None:
        run.max_turns = int(params.get("max_turns") or 1)
    turns = [
        Turn([_bash(f"echo step {k + 1}", "Keep going")], f"step {k + 1}")
        for k in range(run.max_turns)
    ]
    turns[0].blocks.insert(0, _text("Let me keep going."))
    agent_loop(run, turns, "unreachable", cost=_cost_param(params))


def sc_error_max_budget_usd(run: Run, params: dict[str, str]) -> NoReturn:
    if run.budget is None:
        run.budget = float(params.get("budget") or 0.01)
    base: Usage = (2000, 10000, 0, 400)
    per_call = _cost_param(params)
    if per_call is None:
        per_call = run.budget * 1.62
    run.scale = per_call / price(run.model, base)
    run.title_pending = False
    k = 0
    while True:
        blocks = [_bash("echo hi", "Run the command")]
        if k == 0:
            blocks.insert(0, _text("Let me run it."))
        run.assistant(blocks, base)
        run.call_done(base)
        check_budget(run)
        run.tool_result("hi")
        k += 1


def sc_error_during_execution(run: Run, params: dict[str, str]) -> NoReturn:
    usage = _turn_usage(0, True)
    run.assistant([_text("Let me look into this.")], usage)
    run.call_done(usage)
    if (cost := _cost_param(params)) is not None:
        run.cost_override = cost
    message = params.get("message") or (
        "[ede_diagnostic] result_type=assistant last_content_type=text stop_reason=null"
    )
    run.error_result(
        "error_during_execution",
        [message],
        num_turns=run.calls + 1,
        stop_reason=None,
        terminal_reason="model_error",
        text="Execution error",
    )


_API_ERRORS: dict[int | None, tuple[str, str, str]] = {
    # status: (assistant error, api_retry error, text) as 2.1.197 reports them
    401: (
        "authentication_failed",
        "authentication_failed",
        "Invalid API key · Fix external API key",
    ),
    402: ("billing_error", "billing_error", "Credit balance is too low"),
    429: (
        "rate_limit",
        "rate_limit",
        "API Error: Request rejected (429) · Number of request tokens has exceeded your rate "
        "limit.",
    ),
    500: (
        "server_error",
        "server_error",
        "API Error: 500 Internal server error. This is a server-side issue, usually temporary "
        "— try again in a moment.",
    ),
    529: (
        "server_error",
        "overloaded",
        "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in "
        "a moment.",
    ),
    None: ("server_error", "unknown", "API Error: Unable to connect to API (ConnectionRefused)"),
}


def _status(params: dict[str, str]) -> int | None:
    value = (params.get("status") or "529").strip().lower()
    return None if value in ("null", "none", "") else int(value)


def sc_api_error(run: Run, params: dict[str, str]) -> NoReturn:
    status = _status(params)
    error, retry_error, text = _API_ERRORS.get(
        status, ("unknown", "unknown", f'API Error: {status} {{"type":"error"}}')
    )
    for attempt in range(1, int(params.get("retries") or 0) + 1):
        run.emit(
            {
                "type": "system",
                "subtype": "api_retry",
                "attempt": attempt,
                "max_retries": 10,
                "retry_delay_ms": 500.0 * 2 ** (attempt - 1) + 37.5,
                "error_status": status,
                "error": retry_error,
                "session_id": run.session_id,
                "uuid": uuid4(),
            }
        )
    run.api_error(status, params.get("message") or text, error)


def sc_rate_limit(run: Run, params: dict[str, str]) -> NoReturn:
    resets_at = int(params.get("resets_at") or int(time.time()) + 3600)
    run.emit(
        {
            "type": "rate_limit_event",
            "rate_limit_info": {
                "status": "rejected",
                "resetsAt": resets_at,
                "rateLimitType": "five_hour",
                "utilization": 1,
            },
            "uuid": uuid4(),
            "session_id": run.session_id,
        }
    )
    sc_api_error(run, {**params, "status": "429"})


def sc_huge_line(run: Run, params: dict[str, str]) -> NoReturn:
    size = int(float(params.get("mb") or 2) * 1024 * 1024)
    body = ("0123456789abcdef" * (size // 32 + 1))[: max(0, size // 2 - 200)]
    usage = _turn_usage(0, False)
    run.assistant([_bash("cat build.log", "Show the build log")], usage)
    run.call_done(usage)
    run.tool_result(body)
    usage = _turn_usage(1, True)
    text = params.get("text") or "The build log is long; the build succeeded."
    run.assistant([_text(text)], usage)
    run.call_done(usage)
    run.success(text)


def sc_garbage(run: Run, params: dict[str, str]) -> NoReturn:
    junk = iter(
        [
            "Warning: this line is not JSON",
            '{"type":"assistant","message":{"id":"msg_trunc',
            _dumps({"type": "fake_future_message", "data": {"x": 1}, "session_id": run.session_id}),
            _dumps(
                {"type": "system", "subtype": "fake_future_subtype", "session_id": run.session_id}
            ),
            "\x1b[31mnot json either\x1b[0m",
            "[1, 2, 3]",
            _dumps({"no_type": True}),
        ]
    )
    original = run.emit

    def emit(obj: dict[str, Any]) -> None:
        # One junk line before each message; whatever is left goes before the result.
        for line in junk if obj.get("type") == "result" else [next(junk, None)]:
            if line is not None and run.format == "stream-json":
                _out(line + "\n")
        original(obj)

    run.emit = emit  # type: ignore[method-assign]
    sc_success(run, params)


def sc_no_result(run: Run, params: dict[str, str]) -> NoReturn:
    run.assistant([_text("Let me look at the files.")], _turn_usage(0, False))
    _fail(
        params.get("message") or "Error: claude exited unexpectedly (fake no_result)",
        int(params.get("exit") or 1),
    )


def _sleeping(run: Run, params: dict[str, str]) -> NoReturn:
    cost = _cost_param(params)
    if cost is not None:
        run.cost_override = run.cost = cost
    run.assistant([_text("Working on it…")], _turn_usage(0, True))
    run.wait(float(params.get("sleep_s") or 30))
    run.call_done(_turn_usage(0, True))
    run.success(params.get("text") or "Done after a long wait.")


def sc_sleep(run: Run, params: dict[str, str]) -> NoReturn:
    _sleeping(run, params)


def sc_ignore_sigterm(run: Run, params: dict[str, str]) -> NoReturn:
    _install_signals(ignore=True)
    _sleeping(run, params)


_CHILDREN: list[int] = []


def _kill_children(params: dict[str, str]) -> None:
    if params.get("kill_children", "1").strip() in ("0", "false", "no"):
        return
    for pid in _CHILDREN:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def sc_grandchild(run: Run, params: dict[str, str]) -> NoReturn:
    if (cost := _cost_param(params)) is not None:
        run.cost_override = cost
        run.cost = cost
    seconds = params.get("child_sleep_s") or "300"
    usage = _turn_usage(0, False)
    run.assistant(
        [_text("Starting the server."), _bash(f"sleep {seconds}", "Start the server")], usage
    )
    run.call_done(usage)
    pid = os.fork()
    if pid == 0:  # the grandchild: its own session, stdio detached
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            if params.get("keep_stdout", "0").strip() in ("0", ""):
                os.dup2(null, 1)
            os.dup2(null, 2)
            os.execvp("sleep", ["sleep", seconds])
        finally:
            os._exit(127)
    _CHILDREN.append(pid)
    pidfile = params.get("pidfile") or "grandchild.pid"
    tmp = f"{pidfile}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, pidfile)
    run.wait(float(params.get("sleep_s") or 30))
    run.tool_result("")
    usage = _turn_usage(1, True)
    run.assistant([_text("The server ran.")], usage)
    run.call_done(usage)
    run.success(params.get("text") or "The server ran.")


def sc_stream(run: Run, params: dict[str, str]) -> NoReturn:
    total = int(float(params.get("mb") or 10) * 1024 * 1024)
    line_kb = float(params.get("line_kb") or 4)
    payload = ("lorem ipsum dolor sit amet " * int(line_kb * 40 + 1))[: int(line_kb * 1024)]
    sid = run.session_id
    usage = (1, 150, 12000, 50)
    # Two templates filled with fresh ids by string replacement: fast, and still valid JSON.
    a_line = _dumps(
        {
            "type": "assistant",
            "message": {
                "id": "@MSG@",
                "type": "message",
                "role": "assistant",
                "model": run.api_model,
                "content": [
                    {
                        "type": "tool_use",
                        "id": "@TOOL@",
                        "name": "Bash",
                        "input": {"command": "cat part.txt", "description": "Show the next part"},
                    }
                ],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage_json((1, 150, 12000, 1), result=False),
                "context_management": None,
            },
            "parent_tool_use_id": None,
            "session_id": sid,
            "uuid": "@UUID@",
            "request_id": "@REQ@",
        }
    )
    u_line = _dumps(
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {
                        "tool_use_id": "@TOOL@",
                        "type": "tool_result",
                        "content": payload,
                        "is_error": False,
                    }
                ],
            },
            "parent_tool_use_id": None,
            "session_id": sid,
            "uuid": "@UUID@",
            "timestamp": _timestamp(),
            "tool_use_result": {
                "stdout": payload,
                "stderr": "",
                "interrupted": False,
                "isImage": False,
                "noOutputExpected": False,
            },
        }
    )
    written = 0
    n = 0
    stream = run.format == "stream-json"
    write = sys.stdout.buffer.write
    flush = sys.stdout.buffer.flush
    while written < total:
        n += 1
        tool = f"toolu_01{n:022d}"
        a = a_line.replace("@MSG@", f"msg_01{n:022d}").replace("@TOOL@", tool)
        a = a.replace("@UUID@", uuid4()).replace("@REQ@", f"req_011{n:022d}") + "\n"
        u = u_line.replace("@TOOL@", tool).replace("@UUID@", uuid4()) + "\n"
        if stream:
            write(a.encode())
            flush()
            write(u.encode())
            flush()
        written += len(a) + len(u)
        run.calls += 1
        run.main_usage = _add(run.main_usage, usage)
        run.model_usage = _add(run.model_usage, usage)
        run.cost += price(run.model, usage)
        check_signals()
    final = _turn_usage(1, True)
    text = params.get("text") or f"Read {n} parts."
    run.assistant([_text(text)], final)
    run.call_done(final)
    run.success(text)


def sc_echo_env(run: Run, params: dict[str, str]) -> NoReturn:
    names = [n.strip() for n in (params.get("vars") or "").split(",") if n.strip()]
    env = {n: os.environ.get(n) for n in names} if names else dict(sorted(os.environ.items()))
    text = _dumps({"cwd": run.cwd, "env": env})
    usage = _turn_usage(0, True)
    run.assistant([_text(text)], usage)
    run.call_done(usage)
    run.success(text)


SCENARIOS = {
    "success": sc_success,
    "tools": sc_tools,
    "error_max_turns": sc_error_max_turns,
    "error_max_budget_usd": sc_error_max_budget_usd,
    "error_during_execution": sc_error_during_execution,
    "api_error": sc_api_error,
    "rate_limit": sc_rate_limit,
    "huge_line": sc_huge_line,
    "garbage": sc_garbage,
    "no_result": sc_no_result,
    "usage_error": None,  # handled before init
    "sleep": sc_sleep,
    "ignore_sigterm": sc_ignore_sigterm,
    "grandchild": sc_grandchild,
    "stream": sc_stream,
    "echo_env": sc_echo_env,
}


# ---------------------------------------------------------------------------------------------
# Prompt, parameters, recording.
# ---------------------------------------------------------------------------------------------


def read_stdin(timeout: float) -> str | None:
    """Read stdin to EOF like the real CLI: None for a TTY; wait `timeout` s for first data."""
    try:
        if os.isatty(0):
            return None
        ready, _, _ = select.select([0], [], [], timeout)
    except (OSError, ValueError):
        return None
    if not ready:
        _err(
            "Warning: no stdin data received in 3s, proceeding without it. If piping from a slow "
            "command, redirect stdin explicitly: < /dev/null to skip, or wait longer.\n"
        )
        return ""
    chunks = []
    while data := os.read(0, 1 << 16):
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def _stream_json_prompt(text: str) -> str:
    """--input-format stream-json: the text of the `user` lines."""
    parts = []
    for line in text.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("type") == "user":
            content = (msg.get("message") or {}).get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [b.get("text", "") for b in content if isinstance(b, dict)]
    return "\n".join(parts)


def prompt_params(prompt: str) -> dict[str, str]:
    """`fake-<name>: value` lines of the prompt."""
    params = {}
    for line in prompt.splitlines():
        line = line.strip()
        if line.startswith("fake-") and ":" in line:
            name, _, value = line[5:].partition(":")
            params[name.strip().replace("-", "_").lower()] = value.strip()
    return params


def env_params() -> dict[str, str]:
    return {
        key[12:].lower(): value
        for key, value in os.environ.items()
        if key.startswith("FAKE_CLAUDE_") and key not in ("FAKE_CLAUDE_RECORD",)
    }


class Recorder:
    def __init__(self, args: list[str]) -> None:
        self.dir = os.environ.get("FAKE_CLAUDE_RECORD")
        self.path: str | None = None
        self.data: dict[str, Any] = {
            "argv": [_ARGV0, *args],
            "args": args,
            "cwd": os.getcwd(),
            "stdin": None,
            "prompt": None,
            "env": dict(os.environ),
            "scenario": None,
            "params": {},
            "session_id": None,
            "pid": os.getpid(),
        }

    def write(self, **fields: Any) -> None:
        if not self.dir:
            return
        self.data.update(fields)
        sid = self.data["session_id"]
        if not sid or not is_uuid(sid):
            sid = self.data["session_id"] = uuid4()
        path = os.path.join(self.dir, f"{sid}.json")
        if self.path and self.path != path and os.path.exists(self.path):
            os.unlink(self.path)
        self.path = path
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, ensure_ascii=False)
        os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def _sessions_dir(cwd: str) -> str | None:
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    return os.path.join(config, "projects", _project_dir(cwd)) if config else None


def main(args: list[str], recorder: Recorder) -> NoReturn:
    opts, operands, unknown = parse_args(args)
    if any(a in ("-h", "--help") for a in unknown):
        _out(_help())
        raise Exit(0)
    if unknown:
        _fail(f"error: unknown option '{unknown[0]}'{_suggestion(unknown[0])}")

    if not opts.get("print"):
        _fail("fake claude: only print mode (-p/--print) is faked; the real CLI starts its UI", 2)

    # The action's checks, in 2.1.197's order.
    if opts.get("maxTurns") is None and (
        env_turns := os.environ.get("CLAUDE_CODE_MAX_TURNS", "").strip()
    ):
        number = _js_number(env_turns)
        if number is None or number <= 0 or number != int(number):
            _fail(f'CLAUDE_CODE_MAX_TURNS must be a positive integer; got "{env_turns}"')
        opts["maxTurns"] = env_turns
    if opts.get("effort") is not None and opts["effort"].lower() not in (
        "low",
        "medium",
        "high",
        "xhigh",
        "max",
    ):
        _err(
            f"Warning: Unknown --effort value '{opts['effort']}' — ignoring it and using the "
            "default effort. Valid values: low, medium, high, xhigh, max.\n"
        )
    session_id = opts.get("sessionId")
    resume = opts.get("resume")
    if session_id is not None:
        if (opts.get("continue") or resume) and not opts.get("forkSession"):
            _fail(
                "Error: --session-id can only be used with --continue or --resume if "
                "--fork-session is also specified."
            )
        if not is_uuid(session_id):
            _fail("Error: Invalid session ID. Must be a valid UUID.")
    for flag, pair in (
        ("systemPrompt", "systemPromptFile"),
        ("appendSystemPrompt", "appendSystemPromptFile"),
    ):
        if opts.get(flag) is not None and opts.get(pair) is not None:
            kebab = "".join("-" + c.lower() if c.isupper() else c for c in flag)
            _fail(f"Error: Cannot use both --{kebab} and --{kebab}-file. Please use only one.")
    input_format = opts.get("inputFormat") or "text"
    output_format = opts.get("outputFormat") or "text"
    if input_format == "stream-json" and output_format != "stream-json":
        _fail("Error: --input-format=stream-json requires output-format=stream-json.")
    bypass = opts.get("permissionMode") == "bypassPermissions" or opts.get(
        "dangerouslySkipPermissions"
    )
    if (
        bypass
        and os.getuid() == 0
        and os.environ.get("IS_SANDBOX") != "1"
        and not os.environ.get("CLAUDE_CODE_BUBBLEWRAP")
    ):
        _fail(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for "
            "security reasons"
        )

    if resume is True:
        _fail(
            "Error: --resume requires a valid session ID or session title when used with --print. "
            "Usage: claude -p --resume <session-id|title>"
        )
    timeout = float(os.environ.get("FAKE_CLAUDE_STDIN_TIMEOUT_S") or 3)
    _Signals.interruptible = True
    try:
        stdin = read_stdin(timeout)
    finally:
        _Signals.interruptible = False
    if input_format == "stream-json":
        prompt = _stream_json_prompt(stdin or "")
    else:
        positional = operands[0] if operands else ""
        prompt = f"{positional}\n{stdin}" if positional and stdin else positional or stdin or ""
    params = {**prompt_params(prompt), **env_params()}
    opts.setdefault("sessionId", uuid4())  # known from the start, like a pre-assigned id
    recorder.data["session_id"] = opts["sessionId"]
    scenario = params.get("scenario") or "success"
    _Signals.params = params
    if scenario == "ignore_sigterm":
        _install_signals(ignore=True)
    recorder.write(stdin=stdin, prompt=prompt, scenario=scenario, params=params)
    if not prompt and input_format == "text":
        _fail(
            "Error: Input must be provided either through stdin or as a prompt argument when "
            "using --print"
        )
    if output_format == "stream-json" and not opts.get("verbose"):
        _fail("Error: When using --print, --output-format=stream-json requires --verbose")
    if scenario not in SCENARIOS:
        _fail(f"fake claude: unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}", 2)
    if scenario == "usage_error":
        _fail(
            params.get("message") or "error: unknown option '--fake-usage-error'",
            int(params.get("exit") or 1),
        )

    # Sessions on disk (only under an explicit CLAUDE_CONFIG_DIR).
    sessions = _sessions_dir(os.getcwd())
    persist = sessions is not None and opts.get("sessionPersistence") is not False
    if sessions is not None:
        if isinstance(resume, str):
            if not os.path.exists(os.path.join(sessions, f"{resume}.jsonl")):
                _fail(f"No conversation found with session ID: {resume}")
            if not opts.get("forkSession"):
                opts["sessionId"] = resume
        elif opts.get("continue"):
            found = sorted(
                (e for e in os.scandir(sessions) if e.name.endswith(".jsonl"))
                if os.path.isdir(sessions)
                else [],
                key=lambda e: e.stat().st_mtime,
            )
            if not found:
                _fail("No conversation found to continue")
            if not opts.get("forkSession"):
                opts["sessionId"] = found[-1].name.removesuffix(".jsonl")
        elif session_id is not None and os.path.exists(
            os.path.join(sessions, f"{session_id}.jsonl")
        ):
            _fail(f"Error: Session ID {session_id} is already in use.")

    if not prompt.strip():
        if output_format == "stream-json":
            raise Exit(0)
        _fail("Error: No messages returned from query")

    run = Run(opts, params, prompt)
    recorder.write(session_id=run.session_id)  # --resume/--continue may have changed it
    if persist and sessions is not None:
        os.makedirs(sessions, exist_ok=True)
        run.transcript = os.path.join(sessions, f"{run.session_id}.jsonl")
    try:
        run.init()
        require_auth = params.get("require_auth", "0").strip() not in ("0", "", "false", "no")
        if require_auth and not any(
            os.environ.get(k)
            for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
        ):
            run.api_error(None, "Not logged in · Please run /login", "authentication_failed")
        handler = SCENARIOS[scenario]
        assert handler is not None
        handler(run, params)
    except Interrupted:
        _install_signals(ignore=True)  # the real CLI finishes its result after one SIGINT
        _kill_children(params)
        run.interrupted()


def entry() -> None:
    args = sys.argv[1:]
    recorder = Recorder(args)
    _install_signals()
    try:
        main(args, recorder)
    except Exit as e:
        code = e.code
    except Interrupted:  # SIGINT before the run started
        code = 130
    if (linger := float(_Signals.params.get("linger_s") or 0)) > 0:
        code = _linger(linger, code)
    recorder.data["exit_code"] = code
    try:
        recorder.write()
    except OSError as e:
        _err(f"fake claude: cannot write the record: {e}\n")
    os._exit(code)


def _linger(seconds: float, code: int) -> int:
    """`linger_s`: stdout closed (the reader sees EOF), the process still there."""
    sys.stdout.flush()
    os.close(1)
    _install_signals()  # after a result line they were ignored
    try:
        interruptible_sleep(seconds)
    except Interrupted:
        return 130
    except Exit as e:
        return e.code
    return code


if __name__ == "__main__":
    entry()
