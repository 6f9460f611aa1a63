from __future__ import annotations

import errno
from typing import Any

import pytest

from claudomator.schedule import (
    MIN_FREE_BYTES,
    After,
    Gate,
    after_execution,
    dependency_verdict,
    disk_full,
    owner_gone,
    pool_gate,
)
from claudomator.state import State
from claudomator.stored import PoolState

S = State
NOW = 1_000_000.0
BASE: dict[str, Any] = dict(
    reason="boom",
    rate_limited=False,
    resets_at=None,
    attempts=1,
    requeues=0,
    max_attempts=1,
    backoff_s=30.0,
    retry_timeouts=False,
    max_requeues=10,
    now=NOW,
    jitter=0.0,
)


@pytest.mark.parametrize(
    ("state", "changes", "expected"),
    [
        (S.COMPLETED, {}, After(S.COMPLETED, "boom")),
        (S.FAILED, {}, After(S.FAILED, "boom")),
        (S.FAILED, {"max_attempts": 3}, After(S.QUEUED, "retry 2/3 after: boom", NOW + 30)),
        (
            S.FAILED,
            {"max_attempts": 3, "attempts": 2},
            After(S.QUEUED, "retry 3/3 after: boom", NOW + 60),
        ),
        (S.FAILED, {"max_attempts": 3, "attempts": 3}, After(S.FAILED, "boom")),
        (
            S.FAILED,
            {"max_attempts": 2, "jitter": 0.5},
            After(S.QUEUED, "retry 2/2 after: boom", NOW + 33.75),
        ),
        (S.TIMED_OUT, {"max_attempts": 3}, After(S.TIMED_OUT, "boom")),
        (
            S.TIMED_OUT,
            {"max_attempts": 3, "retry_timeouts": True},
            After(S.QUEUED, "retry 2/3 after: boom", NOW + 30),
        ),
        (S.BUDGET_EXCEEDED, {"max_attempts": 3}, After(S.BUDGET_EXCEEDED, "boom")),
        (S.CANCELLED, {"max_attempts": 3}, After(S.CANCELLED, "boom")),
        (
            S.FAILED,
            {"rate_limited": True, "resets_at": NOW + 500},
            After(S.QUEUED, "requeued: boom", NOW + 500, requeue=True),
        ),
        (
            S.FAILED,
            {"rate_limited": True},
            After(S.QUEUED, "requeued: boom", NOW + 60, requeue=True),
        ),
        (
            S.FAILED,
            {"rate_limited": True, "requeues": 2},
            After(S.QUEUED, "requeued: boom", NOW + 240, requeue=True),
        ),
        (
            S.FAILED,
            {"rate_limited": True, "resets_at": NOW - 5},
            After(S.QUEUED, "requeued: boom", NOW + 60, requeue=True),
        ),
        (S.FAILED, {"rate_limited": True, "requeues": 10}, After(S.FAILED, "boom")),
        (
            S.FAILED,
            {"rate_limited": True, "requeues": 10, "max_attempts": 2},
            After(S.QUEUED, "retry 2/2 after: boom", NOW + 30),
        ),
        # a failed authentication: back to the queue at once, no attempt used (the pool pauses)
        (S.FAILED, {"guard": "auth", "requeues": 30},
         After(S.QUEUED, "requeued: boom", NOW, requeue=True)),
        (S.FAILED, {"guard": "billing", "max_attempts": 3}, After(S.FAILED, "boom")),  # never
        # the retry breaker: the task's executions together spent retry.max_cost_usd
        (S.FAILED, {"max_attempts": 3, "spent_usd": 2.0, "max_cost_usd": 2.0},
         After(S.FAILED, "boom; no retry: its executions spent $2.00 of retry.max_cost_usd $2.00")),
        (S.FAILED, {"max_attempts": 3, "spent_usd": 1.99, "max_cost_usd": 2.0},
         After(S.QUEUED, "retry 2/3 after: boom", NOW + 30)),
        (S.TIMED_OUT, {"max_attempts": 3, "retry_timeouts": True, "spent_usd": 5.0,
                       "max_cost_usd": 1.0},
         After(S.TIMED_OUT, "boom; no retry: its executions spent $5.00 of retry.max_cost_usd $1.00")),
    ],
)  # fmt: skip
def test_after_execution(state: State, changes: dict[str, Any], expected: After) -> None:
    assert after_execution(outcome_state=state, **{**BASE, **changes}) == expected


@pytest.mark.parametrize(
    ("state", "spent", "budget", "by_hand", "gate"),
    [
        ({}, 0.0, 0.0, True, Gate(True)),
        ({"paused": True, "reason": "maintenance"}, 0.0, 0.0, True, Gate(False, "maintenance")),
        ({"paused": True}, 0.0, 0.0, False, Gate(True)),
        ({"draining": True}, 0.0, 0.0, True, Gate(False, "draining")),
        ({"draining": True}, 0.0, 0.0, False, Gate(True)),
        (
            {"rate_limited_until": NOW + 60, "rate_limit_reason": "429"},
            0.0,
            0.0,
            False,
            Gate(False, "429", NOW + 60),
        ),
        ({"rate_limited_until": NOW - 1}, 0.0, 0.0, True, Gate(True)),
        ({}, 4.99, 5.0, True, Gate(True)),
        ({}, 5.0, 5.0, False, Gate(False, "daily budget reached ($5.00 of $5.00)")),
        ({}, 50.0, 0.0, True, Gate(True)),  # 0 = no daily limit
    ],
)
def test_pool_gate(
    state: PoolState, spent: float, budget: float, by_hand: bool, gate: Gate
) -> None:
    assert (
        pool_gate(state, now=NOW, spent_today=spent, daily_budget=budget, by_hand=by_hand) == gate
    )


@pytest.mark.parametrize(
    ("state", "free", "gate"),
    [
        ({}, None, Gate(True)),  # not measured (`run`'s own checks)
        ({}, MIN_FREE_BYTES, Gate(True)),
        ({}, MIN_FREE_BYTES - 1, Gate(False, "disk full: 31 MiB free in the data dir")),
        ({}, 0, Gate(False, "disk full: 0 MiB free in the data dir")),
        ({"paused": True}, 0, Gate(False, "paused")),  # what a person said comes first
        ({"rate_limited_until": NOW + 5}, 0, Gate(False, "disk full: 0 MiB free in the data dir")),
    ],
)
def test_pool_gate_and_the_disk(state: PoolState, free: int | None, gate: Gate) -> None:
    assert pool_gate(state, now=NOW, spent_today=0, daily_budget=0, free_bytes=free) == gate


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EROFS, "Read-only file system"), False),
        (Exception("database or disk is full"), True),  # SQLite's words, wrapped
        (Exception("database is locked"), False),
    ],
)
def test_disk_full(error: BaseException, full: bool) -> None:
    assert disk_full(error) is full


@pytest.mark.parametrize(
    ("deps", "verdict"),
    [
        ([], ("ready", "")),
        ([("a", S.COMPLETED), ("b", S.COMPLETED)], ("ready", "")),
        ([("a", S.COMPLETED), ("b", S.RUNNING)], ("wait", "")),
        ([("a", S.PENDING)], ("wait", "")),
        ([("a", S.QUEUED), ("b", S.FAILED)], ("cancel", "dependency b FAILED")),
        ([("a", S.TIMED_OUT)], ("cancel", "dependency a TIMED_OUT")),
        ([("a", S.CANCELLED)], ("cancel", "dependency a CANCELLED")),
        ([("a", S.BUDGET_EXCEEDED)], ("cancel", "dependency a BUDGET_EXCEEDED")),
    ],
)
def test_dependency_verdict(deps: list[tuple[str, State]], verdict: tuple[str, str]) -> None:
    assert dependency_verdict(deps) == verdict


@pytest.mark.parametrize(
    ("host", "alive_started", "gone"),
    [
        ("here", None, True),  # no such process
        ("here", 100.0, False),  # the same process
        ("here", 100.4, False),  # clock rounding
        ("here", 250.0, True),  # pid reused by a newer process
        ("elsewhere", None, False),  # cannot judge another host
    ],
)
def test_owner_gone(host: str, alive_started: float | None, gone: bool) -> None:
    assert (
        owner_gone(
            owner_host=host,
            owner_pid=42,
            owner_started=100.0,
            this_host="here",
            alive_started=alive_started,
        )
        is gone
    )
