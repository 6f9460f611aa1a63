"""The scenarios: what one run does, chosen by the ``scenario`` parameter (see the package
docstring for each one and its parameters)."""

from __future__ import annotations

import os
import sys
import time

from .agent import Turn, agent_loop, bash, check_budget, cost_param, text_block, turn_usage
from .console import Exit, err, fail, out
from .models import Usage, add, price, usage_json
from .run import Run
from .signals import CHILDREN, check_signals, interruptible_sleep
from .values import dumps, timestamp, uuid4

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


def sc_success(run: Run, params: dict[str, str]) -> NoReturn:
    turns = [
        Turn(
            [
                text_block("I'll look at the project files first."),
                bash("ls", "List files in the project"),
            ],
            "main.py",
        ),
        Turn(
            [
                bash(
                    "printf '# Notes\\n' > NOTES.md && cat NOTES.md",
                    "Create NOTES.md with a heading",
                )
            ],
            "# Notes",
            writes=True,
        ),
    ]
    text = params.get("text") or "Created NOTES.md containing a `# Notes` heading."
    agent_loop(run, turns, text, cost=cost_param(params))


def sc_tools(run: Run, params: dict[str, str]) -> NoReturn:
    n = int(params.get("turns") or 3)
    turns = []
    for k in range(n):
        blocks = [bash(f"echo step {k + 1}", f"Run step {k + 1}")]
        if k == 0:
            blocks.insert(0, text_block("Let me run the steps one by one."))
        turns.append(Turn(blocks, f"step {k + 1}"))
    text = params.get("text") or f"Ran {n} steps."
    agent_loop(run, turns, text, cost=cost_param(params))


def sc_error_max_turns(run: Run, params: dict[str, str]) -> NoReturn:
    if run.max_turns is None:
        run.max_turns = 1
    turns = [
        Turn([bash(f"echo step {k + 1}", "Keep going")], f"step {k + 1}")
        for k in range(run.max_turns)
    ]
    turns[0].blocks.insert(0, text_block("Let me keep going."))
    agent_loop(run, turns, "unreachable", cost=cost_param(params))


def sc_error_max_budget_usd(run: Run, params: dict[str, str]) -> NoReturn:
    if run.budget is None:
        run.budget = 0.01
    base: Usage = (2000, 10000, 0, 400)
    per_call = cost_param(params)
    if per_call is None:
        per_call = run.budget * 1.62
    run.scale = per_call / price(run.model, base)
    run.title_pending = False
    k = 0
    while True:
        blocks = [bash("echo hi", "Run the command")]
        if k == 0:
            blocks.insert(0, text_block("Let me run it."))
        run.assistant(blocks, base)
        run.call_done(base)
        check_budget(run)
        run.tool_result("hi")
        k += 1


def sc_error_during_execution(run: Run, params: dict[str, str]) -> NoReturn:
    usage = turn_usage(0, True)
    run.assistant([text_block("Let me look into this.")], usage)
    run.call_done(usage)
    if (cost := cost_param(params)) is not None:
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


def sc_not_logged_in(run: Run, params: dict[str, str]) -> NoReturn:
    """No credentials at all, as 2.1.197 ends then: authentication_failed, no status."""
    run.api_error(None, "Not logged in · Please run /login", "authentication_failed")


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
    usage = turn_usage(0, False)
    run.assistant([bash("cat build.log", "Show the build log")], usage)
    run.call_done(usage)
    run.tool_result(body)
    usage = turn_usage(1, True)
    text = params.get("text") or "The build log is long; the build succeeded."
    run.assistant([text_block(text)], usage)
    run.call_done(usage)
    run.success(text)


def sc_garbage(run: Run, params: dict[str, str]) -> NoReturn:
    junk = iter(
        [
            "Warning: this line is not JSON",
            '{"type":"assistant","message":{"id":"msg_trunc',
            dumps({"type": "fake_future_message", "data": {"x": 1}, "session_id": run.session_id}),
            dumps(
                {"type": "system", "subtype": "fake_future_subtype", "session_id": run.session_id}
            ),
            "\x1b[31mnot json either\x1b[0m",
            "[1, 2, 3]",
            dumps({"no_type": True}),
        ]
    )
    original = run.emit

    def emit(obj: dict[str, Any]) -> None:
        # One junk line before each message; whatever is left goes before the result.
        for line in junk if obj.get("type") == "result" else [next(junk, None)]:
            if line is not None and run.format == "stream-json":
                out(line + "\n")
        original(obj)

    run.emit = emit  # type: ignore[method-assign]
    sc_success(run, params)


def sc_no_result(run: Run, params: dict[str, str]) -> NoReturn:
    run.assistant([text_block("Let me look at the files.")], turn_usage(0, False))
    fail(
        params.get("message") or "Error: claude exited unexpectedly (fake no_result)",
        int(params.get("exit") or 1),
    )


def sc_sleep(run: Run, params: dict[str, str]) -> NoReturn:
    """Also ignore_sigterm: `main` ignores its signals from the start."""
    cost = cost_param(params)
    if cost is not None:
        run.cost_override = run.cost = cost
    run.assistant([text_block("Working on it…")], turn_usage(0, True))
    run.wait(float(params.get("sleep_s") or 30))
    run.call_done(turn_usage(0, True))
    run.success(params.get("text") or "Done after a long wait.")


def sc_stall(run: Run, params: dict[str, str]) -> NoReturn:
    """A hung CLI: one text line, then silence; it never writes a result by itself."""
    cost = cost_param(params)
    if cost is not None:
        run.cost_override = run.cost = cost
    run.assistant([text_block(params.get("text") or "Working on it…")], turn_usage(0, True))
    run.wait(float(params.get("sleep_s") or 30))
    raise Exit(int(params.get("exit") or 1))


NO_INIT_MESSAGE = (
    "Failed to fetch remote settings: Unable to connect. Is the computer able to access the url?"
)


def sc_no_init(params: dict[str, str]) -> NoReturn:
    """A CLI stuck in its start-up: a note on stderr, nothing on stdout (called before init; a
    signal ends it at once: SIGINT 130 through `main.entry`, SIGTERM 143, SIGHUP 129)."""
    err((params.get("message") or NO_INIT_MESSAGE) + "\n")
    interruptible_sleep(float(params.get("sleep_s") or 30))
    raise Exit(int(params.get("exit") or 1))


def sc_grandchild(run: Run, params: dict[str, str]) -> NoReturn:
    if (cost := cost_param(params)) is not None:
        run.cost_override = cost
        run.cost = cost
    seconds = "300"  # outlives every test: whoever owns the process tree must end it
    usage = turn_usage(0, False)
    run.assistant(
        [text_block("Starting the server."), bash(f"sleep {seconds}", "Start the server")], usage
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
    CHILDREN.append(pid)
    pidfile = params.get("pidfile") or "grandchild.pid"
    tmp = f"{pidfile}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, pidfile)
    run.wait(float(params.get("sleep_s") or 30))
    run.tool_result("")
    usage = turn_usage(1, True)
    run.assistant([text_block("The server ran.")], usage)
    run.call_done(usage)
    run.success(params.get("text") or "The server ran.")


def sc_stream(run: Run, params: dict[str, str]) -> NoReturn:
    total = int(float(params.get("mb") or 10) * 1024 * 1024)
    line_kb = float(params.get("line_kb") or 4)
    payload = ("lorem ipsum dolor sit amet " * int(line_kb * 40 + 1))[: int(line_kb * 1024)]
    sid = run.session_id
    usage = (1, 150, 12000, 50)
    # Two templates filled with fresh ids by string replacement: fast, and still valid JSON.
    a_line = dumps(
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
                "usage": usage_json((1, 150, 12000, 1), result=False),
                "context_management": None,
            },
            "parent_tool_use_id": None,
            "session_id": sid,
            "uuid": "@UUID@",
            "request_id": "@REQ@",
        }
    )
    u_line = dumps(
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
            "timestamp": timestamp(),
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
        run.main_usage = add(run.main_usage, usage)
        run.model_usage = add(run.model_usage, usage)
        run.cost += price(run.model, usage)
        check_signals()
    final = turn_usage(1, True)
    text = params.get("text") or f"Read {n} parts."
    run.assistant([text_block(text)], final)
    run.call_done(final)
    run.success(text)


def sc_echo_env(run: Run, params: dict[str, str]) -> NoReturn:
    names = [n.strip() for n in (params.get("vars") or "").split(",") if n.strip()]
    env = {n: os.environ.get(n) for n in names} if names else dict(sorted(os.environ.items()))
    text = dumps({"cwd": run.cwd, "env": env})
    usage = turn_usage(0, True)
    run.assistant([text_block(text)], usage)
    run.call_done(usage)
    run.success(text)


SCENARIOS: dict[str, Callable[[Run, dict[str, str]], NoReturn] | None] = {
    "success": sc_success,
    "tools": sc_tools,
    "error_max_turns": sc_error_max_turns,
    "error_max_budget_usd": sc_error_max_budget_usd,
    "error_during_execution": sc_error_during_execution,
    "api_error": sc_api_error,
    "not_logged_in": sc_not_logged_in,
    "rate_limit": sc_rate_limit,
    "huge_line": sc_huge_line,
    "garbage": sc_garbage,
    "no_result": sc_no_result,
    "usage_error": None,  # handled before init
    "sleep": sc_sleep,
    "ignore_sigterm": sc_sleep,
    "stall": sc_stall,
    "no_init": None,  # handled before init (sc_no_init)
    "grandchild": sc_grandchild,
    "stream": sc_stream,
    "echo_env": sc_echo_env,
}
