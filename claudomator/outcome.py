"""What an execution's end means for its task: everything known once the process is gone (`Ending`)
-> a final `State` and a short reason (`Outcome`). Pure and stdlib-only, table-tested."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Literal

from claudomator.records import JSONObject
from claudomator.state import State
from claudomator.streamjson import as_int, as_list, as_num, as_str, one_line

REASON_MAX = 300  # characters of a reason
_API_ERROR_UNREACHABLE = frozenset({"server_error", "unknown"})
_RATE_LIMIT_ERRORS = frozenset({"rate_limit", "overloaded"})
_NOT_RETRYABLE = frozenset({"error_max_turns", "error_max_structured_output_retries"})


@dataclass(frozen=True)
class Ending:
    """Everything known when the process is gone."""

    # the runner stopped it, and why ("stdout_closed": it closed its stdout and did not exit)
    killed: Literal["timeout", "cancel", "stdout_closed"] | None
    exit_code: int | None  # negative: killed by that signal
    stderr_tail: str
    budget_usd: float | None  # the task's max_budget_usd
    result: JSONObject | None  # StreamState.result
    api_error: str | None = None
    rate_limit_status: str | None = None
    rate_limit_resets_at: float | None = None


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: str  # "" for COMPLETED
    api_error_status: int | None = None
    rate_limited: bool = False  # 429/529 or a rejected rate limit: pause, requeue
    resets_at: float | None = None


def decide(ending: Ending) -> Outcome:
    """The final state of an execution. Order matters: what the runner did first, then money,
    then what claude said. Reasons come only from the stream and stderr, clipped."""
    if ending.killed == "timeout":
        return Outcome(State.TIMED_OUT, "timeout")
    if ending.killed == "cancel":
        return Outcome(State.CANCELLED, "cancelled")
    result = ending.result
    cost = as_num(result.get("total_cost_usd")) if result is not None else None
    budget = ending.budget_usd if ending.budget_usd and ending.budget_usd > 0 else None
    if result is not None and (
        result.get("subtype") == "error_max_budget_usd"
        or (budget is not None and cost is not None and cost >= budget)
    ):
        limit = _usd(budget) if budget is not None else "limit"
        return Outcome(State.BUDGET_EXCEEDED, f"budget {limit} reached (${cost or 0.0:.4f})")

    rejected = ending.rate_limit_status == "rejected"
    resets_at = ending.rate_limit_resets_at
    if result is None:
        reason = f"no result ({_exit(ending.exit_code)})"
        if ending.killed == "stdout_closed":
            reason = "no result: claude closed its stdout and did not exit, so it was stopped"
        last = _last_line(ending.stderr_tail)
        return _failed(f"{reason}: {last}" if last else reason, rejected, resets_at)

    subtype = as_str(result.get("subtype")) or "result without subtype"
    if subtype == "success" and not result.get("is_error"):
        return Outcome(State.COMPLETED, "")
    if subtype == "success":
        status = as_int(result.get("api_error_status"))
        if status is not None:
            label = str(status)
        elif ending.api_error and ending.api_error not in _API_ERROR_UNREACHABLE:
            label = ending.api_error
        else:
            label = "unreachable"
        limited = rejected or status in (429, 529) or ending.api_error in _RATE_LIMIT_ERRORS
        text = as_str(result.get("result")) or ""
        reason = f"api_error {label}: {text}" if text.strip() else f"api_error {label}"
        return _failed(reason, limited, resets_at, status)
    errors = "; ".join(e for e in as_list(result.get("errors")) if isinstance(e, str) and e)
    detail = errors or as_str(result.get("terminal_reason")) or as_str(result.get("result")) or ""
    reason = f"{subtype}: {detail}" if detail.strip() else subtype
    return _failed(reason, rejected and subtype not in _NOT_RETRYABLE, resets_at)


def _failed(reason: str, limited: bool, resets: float | None, status: int | None = None) -> Outcome:
    resets = resets if limited else None
    return Outcome(State.FAILED, one_line(reason, REASON_MAX), status, limited, resets)


def _exit(code: int | None) -> str:
    """`exit 1`, `exit 143 SIGTERM`, `signal 9 SIGKILL`, or `no exit code`."""
    if code is None:
        return "no exit code"
    number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    name = next((f" {s.name}" for s in signal.Signals if number and s.value == number), "")
    return f"signal {-code}{name}" if code < 0 else f"exit {code}{name}"


def _last_line(text: str) -> str:
    lines = text[-4 * REASON_MAX :].strip().splitlines() if text else []
    return lines[-1].strip() if lines else ""


def _usd(amount: float) -> str:
    cents = amount * 100
    return f"${amount:.2f}" if abs(cents - round(cents)) < 1e-6 else f"${amount:g}"
