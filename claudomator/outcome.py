"""What an execution's end means for its task: everything known once the process is gone (`Ending`)
-> a final `State` and a short reason (`Outcome`). Pure and stdlib-only, table-tested."""

from __future__ import annotations

import dataclasses
import signal
from dataclasses import dataclass
from typing import Literal

from claudomator.duration import format_duration
from claudomator.records import JSONObject
from claudomator.state import State
from claudomator.streamjson import as_int, as_list, as_num, as_str, one_line
from claudomator.watchdog import Watch

REASON_MAX = 300  # characters of a reason
_API_ERROR_UNREACHABLE = frozenset({"server_error", "unknown"})
_RATE_LIMIT_ERRORS = frozenset({"rate_limit", "overloaded"})
_NOT_RETRYABLE = frozenset({"error_max_turns", "error_max_structured_output_retries"})
_NO_WATCH = Watch(startup_s=0.0, stall_s=0.0)
DENIALS_SHOWN = 3  # permission denials named in a reason; more are counted

# why the runner stopped claude: its timeout, a cancel, a watchdog (no system/init line in time;
# no stdout line for too long), or a stdout closed while the process stayed
Killed = Literal["timeout", "cancel", "no_start", "stall", "billing", "stdout_closed"]
# an ending that stops the whole pool until `claudomator resume`: claude cannot authenticate
# (every task would fail the same way), or it would bill outside the billing lane
Guard = Literal["auth", "billing"]
_AUTH_ERRORS = frozenset(
    {
        "authentication_failed",
        "oauth_org_not_allowed",
        "account_on_hold",
        "verification_required",
        "cloud_credential_error",
    }
)
_AUTH_TEXTS = ("Please run /login", "Invalid API key", "Not logged in", "OAuth token has expired")


@dataclass(frozen=True)
class Ending:
    """Everything known when the process is gone."""

    killed: Killed | None  # the runner stopped it, and why
    exit_code: int | None  # negative: killed by that signal
    stderr_tail: str
    budget_usd: float | None  # the task's max_budget_usd
    result: JSONObject | None  # StreamState.result
    api_error: str | None = None
    rate_limit_status: str | None = None
    rate_limit_resets_at: float | None = None
    watch: Watch = _NO_WATCH  # the watchdogs' limits, for the reason of one that fired
    refused: str = ""  # why the runner stopped it at its init line ("billing")


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: str  # "" for COMPLETED
    api_error_status: int | None = None
    rate_limited: bool = False  # 429/529 or a rejected rate limit: pause, requeue
    resets_at: float | None = None
    guard: Guard | None = None  # pause the pool until resumed by hand


def decide(ending: Ending) -> Outcome:
    """The final state of an execution. Order matters: what the runner did first, then money,
    then what claude said. Reasons come only from the stream and stderr, clipped."""
    if ending.killed == "timeout":
        return Outcome(State.TIMED_OUT, "timeout")
    if ending.killed == "cancel":
        return Outcome(State.CANCELLED, "cancelled")
    if ending.killed == "stall":
        return Outcome(
            State.TIMED_OUT, f"stalled: no output for {format_duration(ending.watch.stall_s)}"
        )
    if ending.killed == "billing":
        return Outcome(State.FAILED, one_line(ending.refused, REASON_MAX), guard="billing")
    if ending.killed == "no_start":
        reason = f"no start: no system/init line within {format_duration(ending.watch.startup_s)}"
        last = _last_line(ending.stderr_tail)
        return _failed(f"{reason}: {last}" if last else reason, False, None)
    result = ending.result
    cost = as_num(result.get("total_cost_usd")) if result is not None else None
    budget = ending.budget_usd if ending.budget_usd and ending.budget_usd > 0 else None
    if result is not None and (
        result.get("subtype") == "error_max_budget_usd"
        or (budget is not None and cost is not None and cost >= budget)
    ):
        limit = usd(budget) if budget is not None else "limit"
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
        failed = _failed(reason, limited, resets_at, status)
        if status == 401 or ending.api_error in _AUTH_ERRORS or any(t in text for t in _AUTH_TEXTS):
            return dataclasses.replace(failed, rate_limited=False, resets_at=None, guard="auth")
        return failed
    errors = "; ".join(e for e in as_list(result.get("errors")) if isinstance(e, str) and e)
    detail = errors or as_str(result.get("terminal_reason")) or as_str(result.get("result")) or ""
    reason = f"{subtype}: {detail}" if detail.strip() else subtype
    return _failed(reason, rejected and subtype not in _NOT_RETRYABLE, resets_at)


def with_denials(reason: str, result: JSONObject | None) -> str:
    """`reason` with the permission denials the result lists named (the first few, by tool and
    what it was asked: `permission denied: Write(NOTES.md)`), so that a denial is never
    silent; clipped to REASON_MAX."""
    denials = [d for d in as_list((result or {}).get("permission_denials")) if isinstance(d, dict)]
    if not denials:
        return reason
    named = [denial_summary(d) for d in denials[:DENIALS_SHOWN]]
    more = len(denials) - DENIALS_SHOWN
    note = "permission denied: " + ", ".join(named) + (f" and {more} more" if more > 0 else "")
    return one_line(f"{reason}; {note}" if reason else note, REASON_MAX)


def denial_summary(denial: JSONObject) -> str:
    """One permission denial as `with_denials` names it: the tool and what it was asked for (a
    file path, a command, ...), `Write(/x/NOTES.md)`; the tool alone when it says nothing."""
    tool = as_str(denial.get("tool_name")) or "a tool"
    given = denial.get("tool_input")
    asked = ""
    if isinstance(given, dict):
        for key in ("file_path", "command", "path", "url", "pattern", "notebook_path"):
            if value := as_str(given.get(key)):
                asked = value
                break
    return f"{tool}({one_line(asked, 60)})" if asked else tool


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


def usd(amount: float) -> str:
    cents = amount * 100
    return f"${amount:.2f}" if abs(cents - round(cents)) < 1e-6 else f"${amount:g}"
