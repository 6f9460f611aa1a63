"""What an execution's end means for its task, recorded: the retry policy's verdict
(`schedule.after_execution`: QUEUED again, at once or after a back-off, or a final state), in
the one transaction that records the execution's end; and what it means for the pool: a rate
limit pauses it until the reset, a failed authentication or a run outside the billing lane
until `claudomator resume` (the guards)."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import structlog

from claudomator.gate import PoolGate
from claudomator.outcome import Outcome
from claudomator.progress import ProgressEvent
from claudomator.records import Event
from claudomator.schedule import after_execution
from claudomator.state import State
from claudomator.store.db import Store
from claudomator.stored import ExecutionEnd, RetryCounts
from claudomator.streamjson import one_line
from claudomator.task import RetryPolicy

log = structlog.get_logger("claudomator.finish")


class Finish:
    def __init__(self, store: Store, gate: PoolGate) -> None:
        self.store, self.gate = store, gate
        self.max_requeues = gate.config.max_requeues

    def __call__(
        self,
        task_id: str,
        execution_id: str,
        row: RetryCounts,
        outcome: Outcome,
        retry: RetryPolicy | None = None,
        progress: Sequence[ProgressEvent] = (),
        end: ExecutionEnd | None = None,
        spent_usd: float = 0.0,
    ) -> list[Event]:
        """Record an execution's end and what the retry policy says of its task. `row` holds the
        task's attempts (this execution counted), requeues and retry policy (`retry`: the same,
        already parsed); `spent_usd` what the task's executions spent, this one's included. A
        failed authentication, or a run outside the billing lane, pauses the pool."""
        if retry is None:
            retry = RetryPolicy.model_validate_json(row["retry_json"] or "{}")
        after = after_execution(
            outcome_state=outcome.state,
            reason=outcome.reason,
            rate_limited=outcome.rate_limited,
            resets_at=outcome.resets_at,
            attempts=row["attempts"],
            requeues=row["requeues"],
            max_attempts=retry.max_attempts,
            backoff_s=retry.backoff,
            retry_timeouts=retry.on_timeout,
            max_requeues=self.max_requeues,
            now=time.time(),
            jitter=random.random(),
            guard=outcome.guard,
            spent_usd=spent_usd,
            max_cost_usd=retry.max_cost_usd,
        )
        if after.requeue:
            events = self.store.finish_execution(
                execution_id,
                task_id,
                state=outcome.state,
                reason=outcome.reason,
                task_state=State.QUEUED,
                task_reason=after.reason,
                task_values={
                    "not_before": after.not_before,
                    "attempts": row["attempts"] - 1,
                    "requeues": row["requeues"] + 1,
                },
                progress=progress,
                end=end,
            )
            if events and outcome.guard is None:  # a stale result (node lost) pauses nobody
                self.gate.set(  # until when is said apart: every reader shows it once
                    rate_limited_until=after.not_before,
                    rate_limit_reason=f"rate limited: {outcome.reason}"[:300],
                )
            elif events:
                self._guard(outcome)
            return events
        then = None
        if after.state is State.QUEUED:
            then = (State.QUEUED, after.reason, {"not_before": after.not_before})
        events = self.store.finish_execution(
            execution_id,
            task_id,
            state=outcome.state,
            reason=outcome.reason,
            task_reason=None if then else after.reason,  # a final state: why no retry, too
            then=then,
            progress=progress,
            end=end,
        )
        if events and outcome.guard is not None:  # the billing lane
            self._guard(outcome)
        return events

    def _guard(self, outcome: Outcome) -> None:
        """Pause the whole pool, with no end, until `claudomator resume`: every start would
        fail to authenticate, or bill outside the lane, the same way."""
        what = "authentication failed" if outcome.guard == "auth" else "billing lane"
        then = "log in again (or fix the key)" if outcome.guard == "auth" else "fix the credentials"
        reason = f"{what}: {outcome.reason} — {then}, then `claudomator resume`"
        log.warning("pool.guarded", guard=outcome.guard, reason=outcome.reason)
        self.gate.set(paused=True, reason=one_line(reason, 300), guard=outcome.guard)


__all__ = ["Finish"]
