"""The fake's main line: the real CLI's checks in 2.1.197's order, the prompt and parameters, the
session, then the scenario; `entry` writes the record and exits with the code."""

from __future__ import annotations

import os
import sys

from .console import Exit, err, fail
from .options import parse_args, suggestion
from .prompt import env_params, prompt_params, read_stdin
from .record import Recorder
from .run import Run
from .scenarios import SCENARIOS, sc_no_init
from .sessions import resolve, transcript
from .signals import Interrupted, Signals, install_signals, interruptible_sleep, kill_children
from .values import is_uuid, uuid4

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# what the fake does not emulate: it says so (exit 2) rather than behave otherwise than the CLI
_NOT_FAKED = {
    "includePartialMessages": "--include-partial-messages",
    "continue": "--continue",
    "forkSession": "--fork-session",
    "sessionPersistence": "--no-session-persistence",
}


def main(args: list[str], recorder: Recorder) -> NoReturn:
    opts, operands, unknown = parse_args(args)
    if any(a in ("-h", "--help") for a in unknown):
        fail("fake claude: --help is not faked", 2)
    if unknown:
        fail(f"error: unknown option '{unknown[0]}'{suggestion(unknown[0])}")
    if not opts.get("print"):
        fail("fake claude: only print mode (-p/--print) is faked; the real CLI starts its UI", 2)

    # The action's checks, in 2.1.197's order.
    session_id = opts.get("sessionId")
    resuming = "resume" in opts or "continue" in opts
    if session_id is not None and resuming and not opts.get("forkSession"):
        fail(
            "Error: --session-id can only be used with --continue or --resume if "
            "--fork-session is also specified."
        )
    if session_id is not None and not is_uuid(session_id):
        fail("Error: Invalid session ID. Must be a valid UUID.")
    input_format = opts.get("inputFormat") or "text"
    output_format = opts.get("outputFormat") or "text"
    if input_format == "stream-json" and output_format != "stream-json":
        fail("Error: --input-format=stream-json requires output-format=stream-json.")
    bypass = opts.get("permissionMode") == "bypassPermissions" or opts.get(
        "dangerouslySkipPermissions"
    )
    if bypass and os.getuid() == 0 and os.environ.get("IS_SANDBOX") != "1":
        fail(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for "
            "security reasons"
        )
    if opts.get("resume") is True:
        fail(
            "Error: --resume requires a valid session ID or session title when used with --print. "
            "Usage: claude -p --resume <session-id|title>"
        )
    if input_format == "stream-json":
        fail("fake claude: --input-format stream-json is not faked", 2)
    for attr, flag in _NOT_FAKED.items():
        if attr in opts:
            fail(f"fake claude: {flag} is not faked", 2)

    Signals.interruptible = True
    try:
        stdin = read_stdin()
    finally:
        Signals.interruptible = False
    positional = operands[0] if operands else ""
    prompt = f"{positional}\n{stdin}" if positional and stdin else positional or stdin or ""
    params = {**prompt_params(prompt), **env_params()}
    opts.setdefault("sessionId", uuid4())  # known from the start, like a pre-assigned id
    recorder.data["session_id"] = opts["sessionId"]
    scenario = params.get("scenario") or "success"
    Signals.params = params
    if scenario == "ignore_sigterm":
        install_signals(ignore=True)
    recorder.write(stdin=stdin, prompt=prompt, scenario=scenario, params=params)
    sessions = resolve(opts, session_id, output_format)  # --resume=<id> may change the id
    recorder.write(began=True)  # past the checks: a refused --resume never gets here
    if not prompt:
        fail(
            "Error: Input must be provided either through stdin or as a prompt argument when "
            "using --print"
        )
    if output_format == "stream-json" and not opts.get("verbose"):
        fail("Error: When using --print, --output-format=stream-json requires --verbose")
    if scenario not in SCENARIOS:
        fail(f"fake claude: unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}", 2)
    if scenario == "usage_error":
        fail(
            params.get("message") or "error: unknown option '--fake-usage-error'",
            int(params.get("exit") or 1),
        )
    if edit := params.get("edit"):  # `fake-edit: path=text`: a file written, as claude edits
        _append(edit)
    if isinstance(opts.get("resume"), str) and (edit := params.get("resume_edit")):
        _append(edit)  # only a resumed run (of a session that was found) edits this one
    if scenario == "no_init":
        sc_no_init(params)
    if not prompt.strip():
        if output_format == "stream-json":
            raise Exit(0)
        fail("Error: No messages returned from query")

    run = Run(opts, params, prompt)
    recorder.write(session_id=run.session_id)
    if sessions is not None:
        run.transcript = transcript(sessions, run.session_id)
    try:
        run.init()
        handler = SCENARIOS[scenario]
        assert handler is not None
        handler(run, params)
    except Interrupted:
        install_signals(ignore=True)  # the real CLI finishes its result after one SIGINT
        kill_children()
        run.interrupted()


def _append(edit: str) -> None:
    """`path=text`: `text` and a newline appended to that file of the working folder."""
    name, _, text = edit.partition("=")
    with open(name, "a", encoding="utf-8") as out:
        out.write(text + "\n")


def entry() -> None:
    """Run the fake with sys.argv; never returns (os._exit, after the record is written)."""
    argv0 = os.environ.pop("FAKE_CLAUDE_ARGV0", None) or sys.argv[0]
    args = sys.argv[1:]
    recorder = Recorder(argv0, args)
    install_signals()
    try:
        main(args, recorder)
    except Exit as e:
        code = e.code
    except Interrupted:  # SIGINT before the run started
        code = 130
    if (linger := float(Signals.params.get("linger_s") or 0)) > 0:
        code = _linger(linger, code)
    recorder.data["exit_code"] = code
    try:
        recorder.write()
    except OSError as e:
        err(f"fake claude: cannot write the record: {e}\n")
    os._exit(code)


def _linger(seconds: float, code: int) -> int:
    """`linger_s`: stdout closed (the reader sees EOF), the process still there."""
    sys.stdout.flush()
    os.close(1)
    install_signals()  # after a result line they were ignored
    try:
        interruptible_sleep(seconds)
    except Interrupted:
        return 130
    except Exit as e:
        return e.code
    return code
