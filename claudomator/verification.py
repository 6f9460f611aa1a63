"""What verify commands said, and what claude is told when one failed. Pure and stdlib-only.

A task's `verify:` commands decide whether its work is done: they run after claude ends with
success (`checks`); when one fails, claude is resumed in the same session with a prompt naming
the command, its exit code and the tail of its output (`retry_prompt`), up to `rounds` times.
"""

from __future__ import annotations

from dataclasses import dataclass

from claudomator.command import MIN_BUDGET_USD
from claudomator.duration import format_duration
from claudomator.outcome import Outcome, usd
from claudomator.records import JSONObject
from claudomator.state import State

TAIL_LINES = 200  # of a failed command's output, told to claude
TAIL_BYTES = 16384


@dataclass(frozen=True)
class Check:
    """One command's run."""

    command: str
    exit_code: int | None  # None: it was stopped (timed out, or cancelled)
    duration_ms: int
    timed_out: bool = False
    output_tail: str = ""  # its output's tail (`tail`), for the prompt; not recorded

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_json(self) -> JSONObject:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "duration_ms": self.duration_ms,
            "timed_out": self.timed_out,
        }


@dataclass(frozen=True)
class Verification:
    """The commands run, in order, up to the first that failed."""

    checks: tuple[Check, ...]
    log_path: str
    cancelled: bool = False  # a cancel stopped them

    @property
    def passed(self) -> bool:
        return not self.cancelled and all(check.passed for check in self.checks)

    @property
    def failed(self) -> Check | None:
        return next((check for check in self.checks if not check.passed), None)

    def to_json(self) -> JSONObject:
        return {
            "passed": self.passed,
            "commands": [check.to_json() for check in self.checks],
            "log_path": self.log_path,
        }


def tail(text: str, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> str:
    """The last `lines` lines of `text`, at most `limit` bytes of UTF-8 (cut at a line start
    where one is near, never inside a character)."""
    kept = "\n".join(text.rstrip("\n").split("\n")[-lines:])
    data = kept.encode()
    if len(data) <= limit:
        return kept
    cut = data[-limit:].decode("utf-8", "ignore")
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) // 2 else cut


def failure(check: Check, timeout_s: float) -> str:
    """What failed, for a reason and a prompt: `pytest -q exited 1`."""
    if check.timed_out:
        return f"{check.command} timed out after {format_duration(timeout_s)}"
    if check.exit_code is None:
        return f"{check.command} was stopped"
    return f"{check.command} exited {check.exit_code}"


def failed_reason(check: Check, timeout_s: float) -> str:
    return f"verify failed: {failure(check, timeout_s)}"


def retry_prompt(check: Check, timeout_s: float) -> str:
    """What a resumed claude is told of the check that failed."""
    output = check.output_tail.strip("\n")
    shown = (
        f"Its output ends with:\n\n```\n{output}\n```\n\n" if output else "It printed nothing.\n\n"
    )
    return (
        f"The work is checked by running `{check.command}` in the working directory. "
        f"That check failed: {failure(check, timeout_s)}.\n\n{shown}"
        "Fix the cause so that the check passes; do not change or skip the check itself. "
        "Then say briefly what you changed."
    )


def after_checks(
    verification: Verification,
    *,
    round_number: int,
    rounds: int,
    budget_usd: float | None,
    spent_usd: float,
    timeout_s: float,
    cancelled: bool,
) -> tuple[Outcome | None, str]:
    """What the checks after round `round_number` (0 first) mean: the execution's final outcome,
    or None and the reason when claude is resumed for another round (`rounds` at most after the
    first), which needs money left of `budget_usd` (the chain spent `spent_usd`)."""
    if verification.cancelled or cancelled:
        return Outcome(State.CANCELLED, "cancelled"), ""
    failed = verification.failed
    if failed is None:
        return Outcome(State.COMPLETED, ""), ""
    reason = failed_reason(failed, timeout_s)
    if round_number >= rounds:
        return Outcome(State.FAILED, reason), reason
    if budget_usd is not None and budget_usd - spent_usd < MIN_BUDGET_USD:
        spent = chain_budget_reason(budget_usd, spent_usd, round_number + 1)
        return Outcome(State.BUDGET_EXCEEDED, f"{spent}; {reason}"), reason
    return None, reason


def chain_budget_reason(budget_usd: float, spent_usd: float, rounds_run: int) -> str:
    across = f" across {rounds_run} rounds" if rounds_run > 1 else ""
    return f"budget {usd(budget_usd)} reached{across} (${spent_usd:.4f})"
