"""stream, outcome, transcript: claude's stream-json lines -> what the execution did -> its
final state; and the same lines for people."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudomator.outcome import REASON_MAX, Ending, decide, with_denials
from claudomator.state import State
from claudomator.stream import FAST_SKIP_BYTES, Progress, StreamState, feed
from claudomator.transcript import render
from claudomator.watchdog import Watch

SAMPLE = Path(__file__).parent / "data" / "sample-stream.jsonl"
SESSION = "1044c6d1-0182-4204-9764-ee1c4b119c8d"
BIG = 5 * 1024 * 1024
# keys the service already puts in an event: a Progress field must not overwrite them
EVENT_KEYS = {"id", "type", "at", "name", "state", "task_id", "execution_id"}


def line(**msg: Any) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


def feed_all(lines: list[bytes]) -> tuple[StreamState, list[Progress]]:
    state = StreamState()
    progress = [p for raw in lines if (p := feed(state, raw)) is not None]
    return state, progress


def result(subtype: str = "success", is_error: bool = False, **fields: Any) -> dict[str, Any]:
    return {"type": "result", "subtype": subtype, "is_error": is_error, **fields}


def assistant(
    mid: str, *blocks: dict[str, Any], model: str = "claude-sonnet-5", **extra: Any
) -> bytes:
    usage = extra.pop("usage", {"input_tokens": 1, "output_tokens": 1})
    message = {"id": mid, "model": model, "content": list(blocks), "usage": usage}
    return line(type="assistant", message=message, **extra)


def tool_use(name: str, tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_1", "name": name, "input": tool_input}


def tool_result(content: Any, is_error: bool = False) -> bytes:
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": content}
    return line(type="user", message={"role": "user", "content": [{**block, "is_error": is_error}]})


def end(
    res: dict[str, Any] | None = None,
    *,
    killed: Any = None,
    exit_code: int | None = 1,
    stderr: str = "",
    budget: float | None = None,
    **extra: Any,
) -> Ending:
    return Ending(killed, exit_code, stderr, budget, res, **extra)


OK = result(result="Done.", total_cost_usd=0.06, num_turns=3)
ERR_429 = result(is_error=True, api_error_status=429, result="API Error: 429 rate limited")
BUN_TRACE = (
    "1 | (function…\n    at <anonymous>\n\nerror: --max-budget-usd must be a positive number"
)
REJECTED: dict[str, Any] = {"rate_limit_status": "rejected", "rate_limit_resets_at": 1795480000.0}

S = State


def row(
    id: str, ending: Ending, state: State, reason: str, limited: bool = False, status: Any = None
) -> Any:
    return pytest.param(ending, state, reason, limited, status, id=id)


def r(subtype: str = "success", text: str | None = None, **fields: Any) -> dict[str, Any]:
    """A result line: is_error follows the subtype unless given; `text` is its `result`."""
    fields.setdefault("is_error", subtype != "success")
    return result(subtype, **fields) if text is None else result(subtype, result=text, **fields)


MAX_TURNS = r("error_max_turns", errors=["Reached maximum number of turns (1)"])
SIGINT = r("error_during_execution", total_cost_usd=0.2, errors=["[ede_diagnostic] x"])
BUDGET_HIT = r("error_max_budget_usd", total_cost_usd=0.0162, errors=["Reached maximum budget"])
OFFLINE = "API Error: Unable to connect to API (ConnectionRefused)"

DECIDE = [
    row("success", end(OK, exit_code=0), S.COMPLETED, ""),
    row("success, is_error absent", end({"subtype": "success"}), S.COMPLETED, ""),
    row("success after a rejected rate limit", end(OK, **REJECTED), S.COMPLETED, ""),
    row("timeout, no result", end(killed="timeout", exit_code=-9), S.TIMED_OUT, "timeout"),
    row("timeout that printed success", end(OK, killed="timeout"), S.TIMED_OUT, "timeout"),
    row("timeout beats budget", end(OK, killed="timeout", budget=0.01), S.TIMED_OUT, "timeout"),
    row(
        "timeout beats api error",
        end(ERR_429, killed="timeout", **REJECTED),
        S.TIMED_OUT,
        "timeout",
    ),
    row("cancel, no result", end(killed="cancel", exit_code=143), S.CANCELLED, "cancelled"),
    row("cancel after SIGINT printed cost", end(SIGINT, killed="cancel"), S.CANCELLED, "cancelled"),
    row(
        "error_max_budget_usd",
        end(BUDGET_HIT, budget=0.01),
        S.BUDGET_EXCEEDED,
        "budget $0.01 reached ($0.0162)",
    ),
    row("budget unknown", end(BUDGET_HIT), S.BUDGET_EXCEEDED, "budget limit reached ($0.0162)"),
    row(
        "success over budget: money limits are hard",
        end(r(total_cost_usd=1.0162), exit_code=0, budget=1.0),
        S.BUDGET_EXCEEDED,
        "budget $1.00 reached ($1.0162)",
    ),
    row("at budget", end(r(total_cost_usd=0.5), budget=0.5), S.BUDGET_EXCEEDED, "budget $0.50"),
    row("just under budget", end(r(total_cost_usd=0.4999), budget=0.5), S.COMPLETED, ""),
    row("odd budget", end(r(total_cost_usd=0.006), budget=0.005), S.BUDGET_EXCEEDED, "$0.005"),
    row(
        "api error over budget is budget",
        end({**ERR_429, "total_cost_usd": 2.0}, budget=1.0),
        S.BUDGET_EXCEEDED,
        "budget $1.00 reached ($2.0000)",
    ),
    row("api error 429", end(ERR_429), S.FAILED, "api_error 429: API Error: 429 rate", True, 429),
    row(
        "api error 529",
        end(r(text="Overloaded", is_error=True, api_error_status=529), api_error="overloaded"),
        S.FAILED,
        "api_error 529: Overloaded",
        True,
        529,
    ),
    row(
        "api error 401",
        end(
            r(text="Bad key", is_error=True, api_error_status=401),
            api_error="authentication_failed",
        ),
        S.FAILED,
        "api_error 401: Bad key",
        False,
        401,
    ),
    row(
        "api error 402",
        end(
            r(text="Credit too low", is_error=True, api_error_status=402), api_error="billing_error"
        ),
        S.FAILED,
        "api_error 402: Credit too low",
        False,
        402,
    ),
    row(
        "api unreachable",
        end(r(text=OFFLINE, is_error=True, api_error_status=None), api_error="server_error"),
        S.FAILED,
        "api_error unreachable: API Error: Unable to connect to API",
    ),
    row(
        "not logged in: no status",
        end(r(text="Not logged in", is_error=True), api_error="authentication_failed"),
        S.FAILED,
        "api_error authentication_failed: Not logged in",
    ),
    row(
        "rate_limit error without a status",
        end(r(text="x", is_error=True), api_error="rate_limit"),
        S.FAILED,
        "api_error rate_limit: x",
        True,
    ),
    row(
        "api error after a rejected rate limit",
        end(r(text="x", is_error=True), **REJECTED),
        S.FAILED,
        "api_error unreachable: x",
        True,
    ),
    row(
        "api error without text",
        end(r(is_error=True, api_error_status=500)),
        S.FAILED,
        "api_error 500",
        False,
        500,
    ),
    row(
        "max turns",
        end(MAX_TURNS),
        S.FAILED,
        "error_max_turns: Reached maximum number of turns (1)",
    ),
    row("max turns is no rate limit", end(MAX_TURNS, **REJECTED), S.FAILED, "error_max_turns"),
    row(
        "error_during_execution",
        end(r("error_during_execution", errors=["[ede_diagnostic] boom", "two"]), exit_code=0),
        S.FAILED,
        "error_during_execution: [ede_diagnostic] boom; two",
    ),
    row(
        "error_during_execution, terminal_reason only",
        end(r("error_during_execution", terminal_reason="aborted_tools")),
        S.FAILED,
        "error_during_execution: aborted_tools",
    ),
    row(
        "error_max_structured_output_retries",
        end(r("error_max_structured_output_retries", errors=[])),
        S.FAILED,
        "error_max_structured_output_retries",
    ),
    row("unknown subtype", end(r("error_brand_new")), S.FAILED, "error_brand_new"),
    row("no subtype", end({"is_error": True}), S.FAILED, "result without subtype"),
    row(
        "usage error on stderr",
        end(stderr="error: unknown option '--no-such-flag'\n"),
        S.FAILED,
        "no result (exit 1): error: unknown option '--no-such-flag'",
    ),
    row(
        "usage error after a Bun stack trace",
        end(stderr=BUN_TRACE),
        S.FAILED,
        "no result (exit 1): error: --max-budget-usd must be",
    ),
    row("SIGTERM before the result", end(exit_code=143), S.FAILED, "no result (exit 143 SIGTERM)"),
    row("SIGHUP", end(exit_code=129, stderr="\n\n"), S.FAILED, "no result (exit 129 SIGHUP)"),
    row("killed by a signal", end(exit_code=-9), S.FAILED, "no result (signal 9 SIGKILL)"),
    row("exit 0, nothing printed", end(exit_code=0), S.FAILED, "no result (exit 0)"),
    row("no exit code", end(exit_code=None), S.FAILED, "no result (no exit code)"),
    row("no result, rate limited", end(**REJECTED), S.FAILED, "no result (exit 1)", True),
    # the watchdogs: a stall is a timeout of its own kind; no start is a failure, with stderr
    row(
        "stalled",
        end(OK, killed="stall", watch=Watch(startup_s=120, stall_s=600)),
        S.TIMED_OUT,
        "stalled: no output for 10m",
    ),
    row(
        "no start, stderr said why",
        end(killed="no_start", stderr="warn\nwaiting for keychain\n", watch=Watch(90, 600)),
        S.FAILED,
        "no start: no system/init line within 1m30s: waiting for keychain",
    ),
    row("no start, silent", end(killed="no_start", watch=Watch(2, 0)), S.FAILED,
        "no start: no system/init line within 2s"),
]  # fmt: skip


@pytest.mark.parametrize(("ending", "state", "reason", "rate_limited", "status"), DECIDE)
def test_decide(
    ending: Ending, state: State, reason: str, rate_limited: bool, status: int | None
) -> None:
    outcome = decide(ending)
    assert outcome.state is state
    assert reason in outcome.reason
    assert (outcome.reason == "") is (state is State.COMPLETED)
    assert outcome.rate_limited is rate_limited
    assert outcome.api_error_status == status
    assert outcome.resets_at == (ending.rate_limit_resets_at if rate_limited else None)


def denial(tool: str, **given: str) -> dict[str, Any]:
    return {"tool_name": tool, "tool_use_id": "toolu_01", "tool_input": given}


WRITE = denial("Write", file_path="/w/NOTES.md", content="x")
BASH = denial("Bash", command="rm -rf build", description="Clean")


@pytest.mark.parametrize(
    ("reason", "denials", "shown"),
    [
        ("", [], ""),
        ("", None, ""),
        ("", [WRITE], "permission denied: Write(/w/NOTES.md)"),
        ("error_max_turns", [BASH], "error_max_turns; permission denied: Bash(rm -rf build)"),
        ("", [WRITE, BASH, denial("WebFetch", url="http://x"), denial("Edit", file_path="a"),
              denial("Glob")],
         "permission denied: Write(/w/NOTES.md), Bash(rm -rf build), WebFetch(http://x) and 2 more"),
        ("", [{"tool_input": "odd"}, "not a denial"], "permission denied: a tool"),
        ("", [denial("Bash", command="x" * 100)], f"permission denied: Bash({'x' * 59}…)"),
    ],
)  # fmt: skip
def test_with_denials_names_them_in_the_reason(
    reason: str, denials: list[Any] | None, shown: str
) -> None:
    assert with_denials(reason, {"permission_denials": denials}) == shown
    assert len(with_denials("x" * 400, {"permission_denials": [WRITE]})) <= REASON_MAX


@pytest.mark.parametrize(
    ("ending", "guard"),
    [
        (end(r(text="Invalid API key · Fix external API key", is_error=True, api_error_status=401)),
         "auth"),
        (end(r(text="Not logged in · Please run /login", is_error=True),
             api_error="authentication_failed"), "auth"),  # no credentials at all: no status
        (end(r(text="OAuth token has expired. Please run /login", is_error=True)), "auth"),
        (end(r(text="Your organization is not allowed", is_error=True),
             api_error="oauth_org_not_allowed"), "auth"),
        (end(r(text="x", is_error=True), api_error="account_on_hold"), "auth"),  # 2.1.330
        (end(killed="billing", refused="billing lane: expected subscription, claude would bill "
             "ANTHROPIC_API_KEY"), "billing"),
        (end(r(text="Credit balance is too low", is_error=True, api_error_status=402)), None),
        (end(ERR_429, **REJECTED), None),
        (end(OK), None),
    ],
)  # fmt: skip
def test_endings_that_pause_the_pool(ending: Ending, guard: str | None) -> None:
    outcome = decide(ending)
    assert outcome.guard == guard
    if guard is not None:
        assert outcome.state is State.FAILED and not outcome.rate_limited
    if guard == "billing":
        assert outcome.reason.startswith("billing lane: expected subscription")


def test_decide_reasons_are_one_short_line() -> None:
    text = "API Error: " + "very long explanation\nover lines " * 100
    outcome = decide(end(result(is_error=True, api_error_status=400, result=text)))
    assert outcome.reason.startswith("api_error 400: API Error: very long explanation over lines")
    assert len(outcome.reason) <= REASON_MAX and "\n" not in outcome.reason
    assert outcome.reason.endswith("…")
    tail = decide(end(stderr="x" * 10_000 + "\nerror: " + "y" * 1000))
    assert (
        tail.reason.startswith("no result (exit 1): error: yyy") and len(tail.reason) <= REASON_MAX
    )


def test_feed_sample_stream() -> None:
    state, progress = feed_all(SAMPLE.read_bytes().splitlines())
    assert state.session_id == SESSION
    assert (state.cli_version, state.model) == ("2.1.197", "claude-sonnet-5")
    assert state.cost_usd == 0.0600318
    assert state.result is not None and state.result["subtype"] == "success"
    # the result's usage, main loop only; never the assistant lines' start-of-message usage
    tokens = (state.input_tokens, state.output_tokens, state.cache_read_tokens)
    assert (*tokens, state.cache_creation_tokens) == (5, 202, 25076, 12832)
    assert state.model_usage["claude-sonnet-5"]["costUSD"] == 0.0600318
    assert (state.num_turns, state.duration_ms, state.tool_calls) == (3, 17421, 2)
    assert (state.lines, state.skipped_lines, state.api_error) == (8, 0, None)
    # three distinct message ids at Sonnet prices: 5 in, 3 out, 25076 cache read, 12832 written
    assert state.estimated_cost_usd == pytest.approx(
        (5 * 3 + 3 * 15 + 25076 * 0.3 + 12832 * 3.75) / 1e6
    )
    assert state.spent_usd == 0.0600318
    assert [p.kind for p in progress] == [
        "started",
        "text",
        "tool_call",
        "tool_call",
        "text",
        "cost",
    ]
    assert progress[0].fields == {
        "session_id": SESSION,
        "model": "claude-sonnet-5",
        "cli_version": "2.1.197",
    }
    assert progress[2].fields["tool"] == "Bash" and progress[2].fields["summary"] == "ls"
    assert progress[3].fields["summary"] == "printf '# Notes\\n' > NOTES.md && cat NOTES.md"
    assert progress[-1].fields["cost_usd"] == 0.0600318 and progress[-1].fields["final"] is True
    for p in progress:
        assert not p.fields.keys() & EVENT_KEYS
        json.dumps(p.fields)


def test_feed_then_decide_sample_completes() -> None:
    state, _ = feed_all(SAMPLE.read_bytes().splitlines(keepends=True))
    assert state.lines == 8
    ending = end(state.result, exit_code=0, budget=1.0, api_error=state.api_error)
    assert decide(ending).state is State.COMPLETED


# line, lines counted, lines skipped
ODD_LINES = [
    (b"", 0, 0),
    (b"\n", 0, 0),
    (b"  \r\n", 0, 0),
    (b"not json at all", 1, 1),
    (b"\xff\xfe\x00\x80 garbage", 1, 1),
    (b'{"type":"assistant","message":{"content":[{"type":"text","text":"\xff"}]}}', 1, 1),
    (b'{"type":"user","message":', 1, 1),
    (b"[1, 2]", 1, 1),
    (b'"a string"', 1, 1),
    (b"42", 1, 1),
    (b"null", 1, 1),
    (b"1" * 5000, 1, 1),  # more digits than int() allows
    (b"[" * 100_000, 1, 1),  # deeper than the parser's recursion limit
    (b'{"no_type": 1}', 1, 1),
    (b'{"type": 5}', 1, 1),
    (b'{"type": "brand_new_kind", "x": 1}', 1, 1),
    (b'{"type":"stream_event","event":{}}', 1, 0),
    (b'{"type":"tool_progress","tool_name":"Bash"}', 1, 0),
    (b'{"type":"system"}', 1, 0),
    (b'{"type":"system","subtype":"brand_new"}', 1, 0),
    (b'{"type":"assistant"}', 1, 0),
    (b'{"type":"assistant","message":"text"}', 1, 0),
    (b'{"type":"assistant","message":{"content":"text","usage":[]}}', 1, 0),
    (b'{"type":"assistant","message":{"id":7,"content":[1,null,"x",{"type":[]}]}}', 1, 0),
    (b'{"type":"user","message":{"content":null}}', 1, 0),
    (b'{"type":"rate_limit_event","rate_limit_info":[]}', 1, 0),
    (b'{"type":"rate_limit_event","rate_limit_info":{"status":3,"resetsAt":"soon"}}', 1, 0),
]


@pytest.mark.parametrize(("raw", "lines", "skipped"), ODD_LINES, ids=lambda v: repr(v)[:40])
def test_feed_odd_lines_never_raise(raw: bytes, lines: int, skipped: int) -> None:
    state = StreamState()
    feed(state, raw)
    assert (state.lines, state.skipped_lines) == (lines, skipped)
    assert state.result is None and state.cost_usd == 0.0 and state.tool_calls == 0


def test_feed_result_with_odd_fields() -> None:
    state = StreamState()
    odd = b'{"type":"result","total_cost_usd":NaN,"usage":[],"modelUsage":5,"num_turns":true,'
    odd += b'"duration_ms":"1"}'
    assert feed(state, odd) is not None
    assert state.result is not None and state.cost_usd == 0.0
    assert (state.input_tokens, state.model_usage, state.num_turns, state.duration_ms) == (
        0,
        {},
        None,
        None,
    )
    feed(state, line(type="result", total_cost_usd="1.5", usage={"input_tokens": "3"}))
    assert state.cost_usd == 0.0 and state.input_tokens == 0


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_feed_and_render_never_raise_on_any_bytes(raw: bytes) -> None:
    feed(StreamState(), raw)
    render(raw)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
# fmt: off
KEYS = st.sampled_from([
    "type", "subtype", "message", "content", "usage", "id", "model", "name", "input", "error",
    "result", "total_cost_usd", "is_error", "rate_limit_info", "status", "resetsAt", "text",
    "modelUsage", "api_error_status", "errors", "session_id", "tool_use_result", "cache_creation",
])
# fmt: on
SHAPED = st.recursive(
    JSON | st.sampled_from(["assistant", "user", "result", "system", "init", "tool_use", "text"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None, database=None)
@given(
    st.sampled_from(["assistant", "user", "result", "system", "rate_limit_event"]),
    st.dictionaries(KEYS, SHAPED, max_size=6),
)
def test_feed_and_render_never_raise_on_misshapen_messages(kind: str, body: dict[str, Any]) -> None:
    raw = json.dumps({**body, "type": kind}).encode()
    state = StreamState()
    progress = feed(state, raw)
    assert state.skipped_lines == 0
    if progress is not None:
        assert not progress.fields.keys() & EVENT_KEYS
    out = render(raw)
    assert out is None or isinstance(out, str)


BIG_OUTPUT = ('def f(x):\n    return "quoted" + x  # ünïcode\n' * (BIG // 40))[:BIG]


def big_user_line(type_position: str) -> bytes:
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": BIG_OUTPUT}
    body: dict[str, Any] = {"message": {"role": "user", "content": [block]}}
    body["tool_use_result"] = {"stdout": BIG_OUTPUT, "stderr": "", "interrupted": False}
    fields = {
        "first": {"type": "user", **body, "session_id": SESSION},
        "middle": {"message": body["message"], "type": "user", "session_id": SESSION, **body},
        "last": {**body, "session_id": SESSION, "type": "user"},
    }[type_position]
    return line(**fields)


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_feed_five_megabyte_user_line(position: str) -> None:
    raw = big_user_line(position)
    assert len(raw) > 2 * BIG
    state = StreamState()
    assert feed(state, raw + b"\n") is None
    assert (state.lines, state.skipped_lines, state.tool_calls) == (1, 0, 0)
    more = BIG_OUTPUT.strip().count("\n")
    assert more > 200_000
    assert render(raw) == f"← ok: def f(x): (+{more} lines)"


def test_feed_counts_a_huge_user_line_without_parsing_it() -> None:
    # the fast path: only the head is looked at, so a broken middle goes unnoticed...
    broken = b'{"type":"user","message":' + b"x" * FAST_SKIP_BYTES + b"}"
    state = StreamState()
    feed(state, broken)
    assert (state.lines, state.skipped_lines) == (1, 0)
    # ...while a short one is parsed and found broken
    feed(state, broken[:1000] + b"}")
    assert (state.lines, state.skipped_lines) == (2, 1)


def test_feed_huge_lines_that_only_contain_user_objects_are_parsed() -> None:
    nested = {"type": "user", "note": "y" * BIG}
    tool = tool_use("Write", {"file_path": "big.txt", "content": "z" * BIG, "meta": nested})
    raw = assistant("msg_big", tool, tail={"a": 1, "type": "user"})
    state, progress = feed_all([raw])
    assert state.tool_calls == 1 and progress[0].fields["summary"] == "big.txt"
    big_result = line(result="r" * BIG, subtype="success", total_cost_usd=0.5, type="result")
    state, _ = feed_all([big_result])
    assert state.cost_usd == 0.5


def test_feed_five_megabyte_garbage_is_skipped() -> None:
    state = StreamState()
    assert feed(state, b"\x00\xff" * (BIG // 2)) is None
    assert feed(state, b"{" + b'"k":' * BIG) is None
    assert (state.lines, state.skipped_lines) == (2, 2)


def test_feed_last_result_wins_and_cost_is_the_last_reported() -> None:
    first = result(total_cost_usd=0.5, num_turns=2, usage={"input_tokens": 10, "output_tokens": 1})
    second = result(
        "error_max_turns",
        True,
        total_cost_usd=0.7,
        num_turns=4,
        usage={"output_tokens": 3},
        modelUsage={"m": {"costUSD": 0.7}},
        session_id="s2",
    )
    state, progress = feed_all([line(**first), line(**second)])
    assert state.result == second
    assert (state.cost_usd, state.num_turns, state.session_id) == (0.7, 4, "s2")
    assert (state.input_tokens, state.output_tokens, state.model_usage) == (
        0,
        3,
        {"m": {"costUSD": 0.7}},
    )
    assert [p.fields["cost_usd"] for p in progress] == [0.5, 0.7]
    feed(state, line(**result(num_turns=5)))  # a result without a cost keeps the last one
    assert (state.cost_usd, state.num_turns) == (0.7, 5)


def test_feed_captures_rate_limit_events() -> None:
    info = {"status": "rejected", "resetsAt": 1795480000, "rateLimitType": "five_hour"}
    state = StreamState()
    progress = feed(state, line(type="rate_limit_event", rate_limit_info=info, uuid="u"))
    assert (state.rate_limit_status, state.rate_limit_resets_at) == ("rejected", 1795480000.0)
    assert progress == Progress(
        "rate_limit", {"status": "rejected", "resets_at": 1795480000.0, "limit": "five_hour"}
    )
    feed(
        state,
        line(
            type="rate_limit_event",
            rate_limit_info={"status": "allowed", "resetsAt": 1795480000123},
        ),
    )
    assert (state.rate_limit_status, state.rate_limit_resets_at) == ("allowed", 1795480000.123)


def test_feed_captures_the_last_assistant_error() -> None:
    synthetic = assistant(
        "msg_x", {"type": "text", "text": "API Error: 429"}, model="<synthetic>", error="rate_limit"
    )
    state, _ = feed_all([synthetic])
    assert state.api_error == "rate_limit"
    assert state.estimated_cost_usd > 0
    feed(state, line(**ERR_429))
    ending = end(state.result, api_error=state.api_error)
    assert decide(ending).rate_limited is True
    feed(state, assistant("msg_y", {"type": "text", "text": "recovered"}))
    assert state.api_error is None


def test_feed_api_retry_progress() -> None:
    retry = line(
        type="system",
        subtype="api_retry",
        attempt=1,
        max_retries=10,
        retry_delay_ms=546.3,
        error_status=None,
        error="unknown",
        session_id="s",
        uuid="u",
    )
    state, progress = feed_all([retry])
    assert progress == [
        Progress(
            "api_retry",
            {
                "attempt": 1,
                "max_retries": 10,
                "retry_delay_ms": 546.3,
                "error_status": None,
                "error": "unknown",
            },
        )
    ]
    assert state.session_id is None


# model, usage, dollars
ESTIMATES = [
    ("claude-sonnet-5", {"input_tokens": 1_000_000}, 3.0),
    ("claude-sonnet-5", {"output_tokens": 1_000_000}, 15.0),
    ("claude-sonnet-5", {"cache_read_input_tokens": 1_000_000}, 0.3),
    ("claude-sonnet-5", {"cache_creation_input_tokens": 1_000_000}, 3.75),
    (
        "claude-sonnet-5",
        {
            "cache_creation_input_tokens": 1_000_000,
            "cache_creation": {"ephemeral_1h_input_tokens": 400_000},
        },
        0.6 * 3.75 + 0.4 * 6.0,
    ),
    ("claude-opus-4-8[1m]", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, 30.0),
    ("claude-opus-4-1-20250805", {"input_tokens": 1_000_000}, 15.0),
    ("claude-haiku-4-5", {"input_tokens": 1_000_000}, 1.0),
    ("some-future-model", {"input_tokens": 1_000_000}, 5.0),
    ("claude-sonnet-5", {"input_tokens": "many", "service_tier": "standard"}, 0.0),
    ("claude-sonnet-5", None, 0.0),
]


@pytest.mark.parametrize(("model", "usage", "dollars"), ESTIMATES, ids=lambda v: str(v)[:30])
def test_estimate_per_distinct_message(model: str, usage: Any, dollars: float) -> None:
    text = {"type": "text", "text": "hi"}
    # one line per content block: the same message id twice is one message
    state, _ = feed_all([assistant("msg_a", text, model=model, usage=usage)] * 2)
    assert state.estimated_cost_usd == pytest.approx(dollars)
    assert state.spent_usd == pytest.approx(dollars)
    feed(state, assistant("msg_b", text, model=model, usage=usage))
    assert state.estimated_cost_usd == pytest.approx(2 * dollars)


def test_feed_progress_for_blocks() -> None:
    thinking = assistant(
        "msg_t", {"type": "thinking", "thinking": "hmm"}, usage={"input_tokens": 10}
    )
    both = assistant(
        "msg_u",
        {"type": "text", "text": "Let me\nlook."},
        tool_use("Grep", {"pattern": "def main", "path": "src"}),
        tool_use("Read", {"file_path": "a.py"}),
    )
    state, progress = feed_all(
        [thinking, thinking, both, assistant("msg_v", {"type": "text", "text": "  "})]
    )
    assert [p.kind for p in progress] == ["cost", "tool_call", "cost"]
    assert progress[0].fields["estimated_cost_usd"] == pytest.approx(30 / 1e6)
    assert progress[1].fields["tool"] == "Grep" and progress[1].fields["summary"] == "def main"
    assert state.tool_calls == 2
    _, progress = feed_all([assistant("msg_w", {"type": "text", "text": "x" * 500})])
    assert progress[0].kind == "text" and len(progress[0].fields["text"]) == 120


T_RESET = 1795480000
AT = time.strftime("%H:%M", time.localtime(T_RESET))  # people read local time
# line, rendered
RENDER = [
    (b"", None),
    (b"\n", None),
    (b"Warning: no stdin data received in 3s\n", "Warning: no stdin data received in 3s"),
    (b"\xff not utf-8\n", "\ufffd not utf-8"),
    (b"[1, 2]", "[1, 2]"),
    (line(type="system", subtype="status", status="requesting"), None),
    (line(type="stream_event", event={"type": "message_start"}), None),
    (line(type="brand_new"), None),
    (line(type="system", subtype="init", model="m"), "[init] model m, cli ?, session ?"),
    (
        line(
            type="system",
            subtype="api_retry",
            attempt=2,
            max_retries=10,
            error_status=529,
            error="overloaded",
        ),
        "[retry] attempt 2/10: overloaded (status 529)",
    ),
    (
        line(type="system", subtype="compact_boundary", compact_metadata={"trigger": "auto"}),
        "[compact] auto",
    ),
    (assistant("m", {"type": "text", "text": "Two\nlines as-is."}), "Two\nlines as-is."),
    (assistant("m", {"type": "thinking", "thinking": "secret thoughts"}), None),
    (assistant("m", tool_use("Write", {"file_path": "a.py", "content": "x\ny"})), "→ Write: a.py"),
    (
        assistant("m", tool_use("Bash", {"command": "cd src &&\n  make   test"})),
        "→ Bash: cd src && make test",
    ),
    (
        assistant("m", tool_use("TodoWrite", {"todos": [{"content": "a"}], "n": 2, "ok": True})),
        '→ TodoWrite: todos=[{"content": "a"}], n=2, ok=true',
    ),
    (assistant("m", tool_use("Mystery", {})), "→ Mystery"),
    (
        assistant("m", tool_use("Bash", {"command": "ls " + "a" * 300})),
        "→ Bash: ls " + "a" * 116 + "…",
    ),
    (
        assistant(
            "m", {"type": "text", "text": "Running it."}, tool_use("Bash", {"command": "ls"})
        ),
        "Running it.\n→ Bash: ls",
    ),
    (tool_result("main.py"), "← ok: main.py"),
    (
        tool_result("\nExit code 1\nTraceback\nValueError\n", is_error=True),
        "← error: Exit code 1 (+2 lines)",
    ),
    (tool_result(""), "← ok: (no output)"),
    (
        tool_result([{"type": "text", "text": "page 1\npage 2"}, {"type": "image"}]),
        "← ok: page 1 (+2 lines)",
    ),
    (tool_result("y" * 300), "← ok: " + "y" * 199 + "…"),
    (
        line(type="user", message={"role": "user", "content": "do the thing\nplease"}),
        "[user] do the thing (+1 line)",
    ),
    (
        line(
            type="user",
            message={"content": [{"type": "text", "text": "[Request interrupted by user]"}]},
        ),
        "[user] [Request interrupted by user]",
    ),
    (
        line(
            **result(
                "error_max_turns",
                True,
                errors=["Reached maximum number of turns (1)"],
                total_cost_usd=0.0123,
                num_turns=1,
                duration_ms=3140,
            )
        ),
        "[result] error_max_turns: Reached maximum number of turns (1) — $0.0123, 1 turn, 3.1s",
    ),
    (line(**ERR_429), "[result] api_error 429: API Error: 429 rate limited"),
    (
        line(**result(is_error=True, api_error_status=None, result="API Error: offline")),
        "[result] api_error unreachable: API Error: offline",
    ),
    (line(**result(result="")), "[result] success"),
    (
        line(type="rate_limit_event", rate_limit_info={"status": "allowed", "resetsAt": T_RESET}),
        None,
    ),
    (
        line(type="rate_limit_event", rate_limit_info={"status": "rejected"}),
        "[rate limit] rejected",
    ),
    (
        line(
            type="rate_limit_event",
            rate_limit_info={
                "status": "rejected",
                "resetsAt": T_RESET,
                "rateLimitType": "five_hour",
            },
        ),
        f"[rate limit] rejected until {AT} (five_hour)",
    ),
    (
        line(
            type="rate_limit_event",
            rate_limit_info={"status": "allowed_warning", "resetsAt": T_RESET * 1000},
        ),
        f"[rate limit] allowed_warning until {AT}",
    ),
]


@pytest.mark.parametrize(("raw", "shown"), RENDER, ids=lambda v: repr(v)[:50])
def test_render(raw: bytes, shown: str | None) -> None:
    assert render(raw) == shown
    assert render(raw + b"\n") == shown


def test_render_sample_stream() -> None:
    shown = [render(raw) for raw in SAMPLE.read_bytes().splitlines(keepends=True)]
    assert shown == [
        f"[init] model claude-sonnet-5, cli 2.1.197, session {SESSION}",
        "I'll look at the project files first.",
        "→ Bash: ls",
        "← ok: main.py",
        "→ Bash: printf '# Notes\\n' > NOTES.md && cat NOTES.md",
        "← ok: # Notes",
        "Created NOTES.md containing a `# Notes` heading.",
        "[result] success: Created NOTES.md containing a `# Notes` heading."
        " — $0.0600, 3 turns, 17.4s",
    ]
