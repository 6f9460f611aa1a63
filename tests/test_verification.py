"""What verify commands said and what it means: tails, verdicts after a round, the prompt.
Pure, tables."""

from __future__ import annotations

import pytest

from claudomator.outcome import Outcome
from claudomator.state import State
from claudomator.verification import (
    TAIL_BYTES,
    TAIL_LINES,
    Check,
    Verification,
    after_checks,
    failed_reason,
    retry_prompt,
    tail,
)

PASS = Check("ruff check .", 0, 120)
FAIL = Check("pytest -q", 1, 2300, output_tail="E   assert 1 == 2\n1 failed")
SLOW = Check("pytest -q", None, 600000, timed_out=True)


def test_tail_keeps_the_last_lines_within_the_byte_limit() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    kept = tail(text)
    assert kept.splitlines() == [f"line {i}" for i in range(1000 - TAIL_LINES, 1000)]
    wide = "".join(f"{i:04d}" + "é" * 100 + "\n" for i in range(300))  # ~200 bytes a line
    cut = tail(wide)
    assert len(cut.encode()) <= TAIL_BYTES
    assert cut.splitlines()[-1].startswith("0299") and cut.splitlines()[0][:4].isdigit()
    one = "x" * (3 * TAIL_BYTES)  # one line longer than the limit: its end, whole characters
    assert tail(one) == "x" * TAIL_BYTES
    assert tail("") == "" and tail("a\n") == "a"


def test_verification_json_and_failed() -> None:
    done = Verification((PASS, FAIL), "/x/verify.log")
    assert not done.passed and done.failed == FAIL
    assert done.to_json() == {
        "passed": False,
        "commands": [
            {"command": "ruff check .", "exit_code": 0, "duration_ms": 120, "timed_out": False},
            {"command": "pytest -q", "exit_code": 1, "duration_ms": 2300, "timed_out": False},
        ],
        "log_path": "/x/verify.log",
    }
    assert Verification((PASS,), "l").passed
    assert not Verification((PASS,), "l", cancelled=True).passed


V_PASS = Verification((PASS,), "l")
V_FAIL = Verification((PASS, FAIL), "l")
V_SLOW = Verification((SLOW,), "l")
V_CANCEL = Verification((), "l", cancelled=True)


@pytest.mark.parametrize(
    ("verification", "kw", "outcome", "reason"),
    [
        (V_PASS, {}, Outcome(State.COMPLETED, ""), ""),
        (V_FAIL, {}, None, "verify failed: pytest -q exited 1"),  # round 0 of 2: again
        (V_FAIL, {"round_number": 1}, None, "verify failed: pytest -q exited 1"),
        (V_FAIL, {"round_number": 2}, Outcome(State.FAILED, "verify failed: pytest -q exited 1"),
         "verify failed: pytest -q exited 1"),  # no rounds left
        (V_FAIL, {"rounds": 0}, Outcome(State.FAILED, "verify failed: pytest -q exited 1"),
         "verify failed: pytest -q exited 1"),
        (V_SLOW, {"rounds": 0}, Outcome(State.FAILED, "verify failed: pytest -q timed out after 10m"),
         "verify failed: pytest -q timed out after 10m"),
        (V_FAIL, {"budget_usd": 1.0, "spent_usd": 0.4}, None, "verify failed: pytest -q exited 1"),
        (V_FAIL, {"budget_usd": 1.0, "spent_usd": 1.0},
         Outcome(State.BUDGET_EXCEEDED, "budget $1.00 reached ($1.0000); verify failed: pytest -q exited 1"),
         "verify failed: pytest -q exited 1"),
        (V_FAIL, {"round_number": 1, "budget_usd": 0.5, "spent_usd": 0.49995},
         Outcome(State.BUDGET_EXCEEDED,
                 "budget $0.50 reached across 2 rounds ($0.5000); verify failed: pytest -q exited 1"),
         "verify failed: pytest -q exited 1"),  # less than --max-budget-usd can say is nothing
        (V_CANCEL, {}, Outcome(State.CANCELLED, "cancelled"), ""),
        (V_FAIL, {"cancelled": True}, Outcome(State.CANCELLED, "cancelled"), ""),
    ],
)  # fmt: skip
def test_after_checks(
    verification: Verification, kw: dict[str, object], outcome: Outcome | None, reason: str
) -> None:
    given: dict[str, object] = {
        "round_number": 0, "rounds": 2, "budget_usd": None, "spent_usd": 0.0,
        "timeout_s": 600.0, "cancelled": False, **kw,
    }  # fmt: skip
    assert after_checks(verification, **given) == (outcome, reason)  # type: ignore[arg-type]


def test_retry_prompt_names_the_command_its_exit_and_its_output() -> None:
    prompt = retry_prompt(FAIL, 600)
    assert "`pytest -q`" in prompt and "exited 1" in prompt
    assert "```\nE   assert 1 == 2\n1 failed\n```" in prompt
    assert "nothing" in retry_prompt(Check("make", 2, 5), 600)
    assert "timed out after 10m" in retry_prompt(SLOW, 600)
    assert failed_reason(Check("x", None, 1), 60) == "verify failed: x was stopped"
