"""Which task runs next and when: retries, rate-limit requeues, dependencies, ownership. Pure."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass

from claudomator.state import State
from claudomator.stored import PoolState

RATE_LIMIT_BACKOFF_S = 60.0


@dataclass(frozen=True)
class After:
    """What becomes of a task once an execution ended."""

    state: State  # the task's next state
    reason: str
    not_before: float = 0.0  # epoch seconds; 0 = at once
    requeue: bool = False  # a requeue that uses no attempt


def after_execution(
    *,
    outcome_state: State,
    reason: str,
    rate_limited: bool,
    resets_at: float | None,
    attempts: int,
    requeues: int,
    max_attempts: int,
    backoff_s: float,
    retry_timeouts: bool,
    max_requeues: int,
    now: float,
    jitter: float,
    guard: str | None = None,
    spent_usd: float = 0.0,
    max_cost_usd: float | None = None,
) -> After:
    """The task's next state. `jitter` in [0, 1) spreads retries; rate limits requeue without
    using an attempt until `max_requeues`; so does a failed authentication (`guard` "auth": the
    pool is paused until resumed by hand), at once; a run outside the billing lane (`guard`
    "billing") is never retried; FAILED (and TIMED_OUT when asked) retry with exponential
    back-off while attempts remain and the task's executions together (`spent_usd`) have not
    spent `max_cost_usd`; BUDGET_EXCEEDED and CANCELLED never retry."""
    if guard == "auth" and outcome_state is State.FAILED:
        return After(State.QUEUED, f"requeued: {reason}", now, requeue=True)
    if guard == "billing":
        return After(outcome_state, reason)
    if rate_limited and outcome_state is State.FAILED and requeues < max_requeues:
        if resets_at and resets_at > now:
            until = resets_at
        else:
            until = now + RATE_LIMIT_BACKOFF_S * 2 ** min(requeues, 6)
        return After(State.QUEUED, f"requeued: {reason}", until, requeue=True)
    retryable = outcome_state is State.FAILED or (
        outcome_state is State.TIMED_OUT and retry_timeouts
    )
    if retryable and attempts < max_attempts and max_cost_usd and spent_usd >= max_cost_usd:
        return After(
            outcome_state,
            f"{reason}; no retry: its executions spent ${spent_usd:.2f} of retry.max_cost_usd "
            f"${max_cost_usd:.2f}",
        )
    if retryable and attempts < max_attempts:
        delay = backoff_s * 2 ** (attempts - 1) * (1 + 0.25 * jitter)
        return After(
            State.QUEUED, f"retry {attempts + 1}/{max_attempts} after: {reason}", now + delay
        )
    return After(outcome_state, reason)


@dataclass(frozen=True)
class Gate:
    """Whether the pool may start executions now, and if not, why and until when."""

    open: bool
    reason: str = ""
    until: float | None = None


MIN_FREE_BYTES = 32 * 2**20  # below this, no execution starts: its log and records need room


def disk_full(error: BaseException) -> bool:
    """Whether an error says the disk (or a quota) is full: an OSError, or SQLite's words."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "disk is full" in str(error) or "No space left" in str(error)


def pool_gate(
    state: PoolState,
    *,
    now: float,
    spent_today: float,
    daily_budget: float,
    by_hand: bool = True,
    free_bytes: int | None = None,
) -> Gate:
    """From the stored pool state: paused by hand or draining (unless `by_hand` is False: `run`
    answers to its own user), paused by a guard (a failed authentication, the billing lane:
    `run` too), a data dir without room for logs and records (`free_bytes` below
    MIN_FREE_BYTES), a rate-limit pause, the daily budget."""
    if state.get("paused") and (by_hand or state.get("guard")):
        return Gate(False, str(state.get("reason") or "paused"))
    if by_hand and state.get("draining"):
        return Gate(False, "draining")
    if free_bytes is not None and free_bytes < MIN_FREE_BYTES:
        return Gate(False, f"disk full: {free_bytes // 2**20} MiB free in the data dir")
    until = state.get("rate_limited_until")
    if isinstance(until, int | float) and until > now:
        return Gate(False, str(state.get("rate_limit_reason") or "rate limited"), float(until))
    if daily_budget and spent_today >= daily_budget:
        return Gate(False, f"daily budget reached (${spent_today:.2f} of ${daily_budget:.2f})")
    return Gate(True)


def dependency_verdict(dependencies: Sequence[tuple[str, State]]) -> tuple[str, str]:
    """("ready", "") when every dependency COMPLETED; ("cancel", reason) when one ended otherwise;
    else ("wait", "")."""
    for name, state in dependencies:
        if state in (State.FAILED, State.TIMED_OUT, State.CANCELLED, State.BUDGET_EXCEEDED):
            return "cancel", f"dependency {name} {state.value}"
    if all(state is State.COMPLETED for _, state in dependencies):
        return "ready", ""
    return "wait", ""


def owner_gone(
    *,
    owner_host: str,
    owner_pid: int,
    owner_started: float,
    this_host: str,
    alive_started: float | None,
) -> bool:
    """Whether a RUNNING execution's owner process is gone. `alive_started` is the start time of
    the process now holding `owner_pid` on this host (None when there is none): a different start
    time means the pid was reused. Owners on other hosts cannot be judged from here."""
    if owner_host != this_host:
        return False
    if alive_started is None:
        return True
    return abs(alive_started - owner_started) > 1.0
