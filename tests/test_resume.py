"""Whether a retry resumes the session before it: `resume.plan` and the refusal it falls back on.
Pure, tables."""

from __future__ import annotations

import pytest

from claudomator.resume import Plan, carry_on_prompt, plan, session_missing, with_note
from claudomator.stored import PreviousExecution


def previous(state: str = "FAILED", session: str = "S1", host: str = "here") -> PreviousExecution:
    return {"id": "E1", "state": state, "reason": "x", "session_id": session, "owner_host": host}


@pytest.mark.parametrize(
    ("last", "enabled", "expected"),
    [
        (None, True, Plan()),  # a first execution
        (previous(), True, Plan("S1", "E1")),  # FAILED here: resumed
        (previous("TIMED_OUT"), True, Plan("S1", "E1")),
        (previous(), False, Plan()),  # retry: {resume: false}
        (previous("CANCELLED"), True, Plan()),  # retried by hand after a cancel: start over
        (previous("BUDGET_EXCEEDED"), True, Plan()),
        (previous("COMPLETED"), True, Plan()),
        (previous(session=""), True, Plan()),  # it ended before claude began a session
        (previous(host="other"), True, Plan(note="fresh session: the last one ran on other")),
        (previous(host=""), True, Plan(note="fresh session: the last one ran on another node")),
    ],
)
def test_plan(last: PreviousExecution | None, enabled: bool, expected: Plan) -> None:
    assert plan(last, host="here", enabled=enabled) == expected


NOT_FOUND = "No conversation found with session ID: 5b1e…\n"


@pytest.mark.parametrize(
    ("exit_code", "stderr", "initialized", "missing"),
    [
        (1, NOT_FOUND, False, True),  # the CLI's own answer (exit 1, nothing on stdout)
        (1, "warning\n" + NOT_FOUND, False, True),
        (0, NOT_FOUND, False, False),
        (1, NOT_FOUND, True, False),  # it began: whatever it said later is its own
        (1, "Error: Invalid session ID. Must be a valid UUID.", False, False),
        (None, NOT_FOUND, False, False),
    ],
)
def test_session_missing(
    exit_code: int | None, stderr: str, initialized: bool, missing: bool
) -> None:
    assert (
        session_missing(exit_code=exit_code, stderr_tail=stderr, initialized=initialized) is missing
    )


def test_prompts_and_notes() -> None:
    assert "(timeout)" in carry_on_prompt("timeout") and "Carry on" in carry_on_prompt("")
    assert with_note("", "n") == "n" and with_note("r", "") == "r" and with_note("r", "n") == "r; n"


def test_session_missing_said_in_the_result_line() -> None:
    # with stream-json the CLI also writes one error_during_execution result, no init line
    said = [NOT_FOUND.strip()]
    assert session_missing(exit_code=1, stderr_tail="", initialized=False, errors=said)
    assert not session_missing(exit_code=1, stderr_tail="", initialized=False, errors=["other"])
    assert not session_missing(exit_code=1, stderr_tail="", initialized=False, errors="odd")
