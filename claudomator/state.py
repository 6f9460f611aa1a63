"""Task states and the one transition table every state change is checked against.

Kept free of heavy imports: the CLI's read path uses it.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    PENDING = "PENDING"  # recorded, not runnable yet: waiting for `run` or for dependencies
    QUEUED = "QUEUED"  # runnable; waits for a pool slot
    RUNNING = "RUNNING"  # an execution (a claude process) is alive for it
    COMPLETED = "COMPLETED"  # claude finished with success; final
    FAILED = "FAILED"  # claude failed (API error, max turns, crash, interrupted, ...)
    TIMED_OUT = "TIMED_OUT"  # our timeout ended the execution
    CANCELLED = "CANCELLED"  # cancelled by a person, a deleted file, or a failed dependency
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"  # the task's money limit was reached


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.QUEUED, State.CANCELLED}),
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED}),
    State.RUNNING: frozenset(
        {
            State.COMPLETED,
            State.FAILED,
            State.TIMED_OUT,
            State.CANCELLED,
            State.BUDGET_EXCEEDED,
            State.QUEUED,  # a requeue that uses no attempt (e.g. after a rate limit)
        }
    ),
    State.FAILED: frozenset({State.QUEUED}),  # retry, automatic or by hand
    State.TIMED_OUT: frozenset({State.QUEUED}),  # retry, automatic or by hand
    State.CANCELLED: frozenset({State.QUEUED}),  # by hand only
    State.BUDGET_EXCEEDED: frozenset({State.QUEUED}),  # by hand only
    State.COMPLETED: frozenset(),
}

FINAL_STATES = frozenset(
    {State.COMPLETED, State.FAILED, State.TIMED_OUT, State.CANCELLED, State.BUDGET_EXCEEDED}
)
# Final states that only a person may send back to QUEUED.
MANUAL_RETRY_ONLY = frozenset({State.CANCELLED, State.BUDGET_EXCEEDED})


def valid_transition(from_state: State | str, to_state: State | str) -> bool:
    """True when the table allows going from `from_state` to `to_state`."""
    try:
        return State(to_state) in TRANSITIONS[State(from_state)]
    except ValueError:
        return False
