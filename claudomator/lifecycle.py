"""An execution's life, from the start that gives its task a slot to its recorded end.

1. start: QUEUED → RUNNING, with a new execution row, by compare-and-set in one transaction for
   up to as many tasks as the pool has free slots (nodes racing for the queue never collide),
   only tasks whose workspace overlaps none running here (`workspaces`);
2. execute: its workspace prepared (a worktree: made, set up), the runner spawns claude (the
   spool's file has moved queued/ → running/ by then, before the spawn), its progress recorded
   in batches, then what it left concluded (committed on its branch, the diff saved, pushed);
3. record: the result, scrubbed of secrets, then what the retry policy says (QUEUED again, or a
   final state) in the same transaction; a rate limit pauses the pool until its reset;
4. the worktree of a final task is released and its dependents are settled.

Every execution started here ends recorded, however it ends (a crash of the runner, a shutdown,
this node found lost); a result the database refuses waits, holding its slot, until it is taken.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog

from claudomator import failpoint
from claudomator.config import Config
from claudomator.dependents import Dependents
from claudomator.errors import DatabaseUnavailable, LeaseLost
from claudomator.faults import Faults
from claudomator.gate import PoolGate
from claudomator.node import Node
from claudomator.outcome import Outcome
from claudomator.pool import Pool
from claudomator.records import Event
from claudomator.runner import Runner, RunResult
from claudomator.schedule import after_execution
from claudomator.secret import scrub
from claudomator.state import FINAL_STATES, State
from claudomator.store.db import Store
from claudomator.stored import ExecutionEnd, RetryCounts, Started, StartedTask
from claudomator.stream import Progress, StreamState
from claudomator.task import RetryPolicy, TaskSpec
from claudomator.workspaces import Workspaces

log = structlog.get_logger("claudomator.lifecycle")

RECORD_RETRY_S = 0.5  # a result the database refused is tried again, doubling up to 30 s
PROGRESS_S = 0.25  # progress is written at most this often (and with the final record)

ProgressEvent = tuple[str, str, str, dict[str, Any]]  # type, task id, execution id, data


class Lifecycle:
    def __init__(
        self,
        config: Config,
        store: Store,
        runner: Runner,
        pool: Pool,
        node: Node,
        *,
        publish: Callable[[Iterable[Event]], None],
        dependents: Dependents,
        gate: PoolGate,
        faults: Faults,
        workspaces: Workspaces,
    ) -> None:
        self.config, self.store, self.runner, self.pool, self.node = (
            config,
            store,
            runner,
            pool,
            node,
        )
        self.publish, self.dependents, self.gate, self.faults = publish, dependents, gate, faults
        self.workspaces = workspaces
        self.max_requeues = config.max_requeues  # `run --fail-on-rate-limit`: 0
        self._started: dict[str, Started] = {}  # task id -> started, not yet executing
        self._executions: dict[str, str] = {}  # task id -> its execution running here
        self._lost: set[str] = set()  # executions to stop: this node's lease was lost

    def start(self, n: int, dispatcher: str = "") -> list[str]:
        """Start up to `n` QUEUED tasks (of `dispatcher`: a `run`) in one transaction; returns
        their ids, for `execute` to run each. Nothing starts while executions stopped for a
        lost lease still wind down: a task of theirs retried elsewhere would start here again
        beside its old execution, which the pool would never run nor end."""
        if self._lost:
            return []
        try:
            started = self.store.start(
                n,
                time.time(),
                self.config.data_dir.executions,
                dispatcher,
                self.workspaces.admission,
                **self.node.process.owner(self.node.id),
            )
        except LeaseLost:
            self.node.doubt()
            return []
        for one in started:
            self._started[one.event["task_id"]] = one
        self.publish([one.event for one in started])
        return [one.event["task_id"] for one in started]

    async def execute(self, task_id: str, cancel: asyncio.Event) -> None:
        """One execution of a task `start` started, to its recorded end. Never leaves it
        RUNNING."""
        started = self._started.pop(task_id, None)
        if started is None:
            return
        execution_id, row = started.execution_id, started.task
        self._executions[task_id] = execution_id
        spec = TaskSpec.model_validate_json(row["config_json"])
        batch = ProgressBatch(self, task_id, execution_id, spec.name)

        async def record(result: RunResult, workspace: str = "") -> list[Event]:
            pending = batch.close()
            self._executions.pop(task_id, None)
            if execution_id in self._lost:  # stopped because this node was found lost
                self._lost.discard(execution_id)
                result = dataclasses.replace(result, outcome=Outcome(State.FAILED, "node lost"))
            # the database may be away for a while (a network cut): the result waits, holding
            # its slot, until it is recorded (or, if this node lost its lease meanwhile, refused)
            for attempt in itertools.count():
                try:
                    return self._record(
                        task_id, execution_id, row, spec, result, pending, workspace
                    )
                except DatabaseUnavailable as e:
                    if attempt == 0:  # said once; it is recorded the moment the database is back
                        log.warning(
                            "execution.record_waits", execution_id=execution_id, error=str(e)
                        )
                    await asyncio.sleep(min(RECORD_RETRY_S * 2**attempt, 30.0))
            raise AssertionError("unreachable")  # the loop above returns or raises

        try:
            prepared = await self.workspaces.prepare(task_id, execution_id, spec)
            if prepared.failure is not None:
                result = _crashed(State.FAILED, prepared.failure)
            else:
                result = await self.runner.run(
                    spec,
                    execution_id,
                    cancel=cancel,
                    on_spawn=lambda pid, t: failpoint.reached("spawned"),
                    on_progress=batch.add,
                    cwd=prepared.cwd,
                )
            workspace, failure = await self.workspaces.conclude(
                prepared,
                spec,
                task_id,
                execution_id,
                succeeded=result.outcome.state is State.COMPLETED,
            )
            if failure is not None and result.outcome.state is State.COMPLETED:
                result = dataclasses.replace(result, outcome=Outcome(State.FAILED, failure))
        except asyncio.CancelledError:  # a worktree left as it was: recovery concludes it
            await record(_crashed(State.CANCELLED, "cancelled: shutdown"))
            raise
        except Exception as e:
            log.exception("execution.crashed", task_id=task_id, execution_id=execution_id)
            await record(_crashed(State.FAILED, f"runner error: {e!r}"))
            return
        events = await record(result, json.dumps(workspace.to_json()))
        if events and events[-1].get("state") in FINAL_STATES:
            await self.workspaces.release(task_id, prepared)

    def _record(
        self,
        task_id: str,
        execution_id: str,
        row: StartedTask,
        spec: TaskSpec,
        result: RunResult,
        progress: list[ProgressEvent],
        workspace: str,
    ) -> list[Event]:
        outcome, stream = result.outcome, result.stream
        final = stream.result or {}
        # what claude said may quote a secret of ours or of the task's env: never record it
        task_env = spec.claude.env

        def clean(text: str) -> str:
            return scrub(scrub(text), task_env)

        outcome = dataclasses.replace(outcome, reason=clean(outcome.reason))
        events = self.finish(
            task_id,
            execution_id,
            row,
            outcome,
            retry=spec.retry,
            progress=progress,
            end=ExecutionEnd(
                exit_code=result.exit_code,
                cost_usd=stream.cost_usd,
                input_tokens=stream.input_tokens,
                output_tokens=stream.output_tokens,
                cache_read_tokens=stream.cache_read_tokens,
                cache_creation_tokens=stream.cache_creation_tokens,
                model_usage_json=json.dumps(stream.model_usage),
                session_id=stream.session_id or "",
                num_turns=stream.num_turns,
                duration_ms=stream.duration_ms,
                cli_version=stream.cli_version or "",
                model=stream.model or "",
                result_text=clean(str(final.get("result") or "")),
                errors_json=clean(json.dumps(final.get("errors") or [])),
                permission_denials_json=json.dumps(final.get("permission_denials") or []),
                api_error_status=outcome.api_error_status,
                workspace_json=workspace,
            ),
        )
        self.gate.spent_changed()
        failpoint.reached("finished")
        self._ended(task_id, events)
        return events

    def finish(
        self,
        task_id: str,
        execution_id: str,
        row: RetryCounts,
        outcome: Outcome,
        retry: RetryPolicy | None = None,
        progress: Sequence[ProgressEvent] = (),
        end: ExecutionEnd | None = None,
    ) -> list[Event]:
        """Record an execution's end and what the retry policy says of its task. `row` holds the
        task's attempts (this execution counted), requeues and retry policy (`retry`: the same,
        already parsed)."""
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
            if events:  # a stale result (this node was found lost) pauses nobody
                until = time.strftime("%H:%M:%S", time.localtime(after.not_before))
                self.gate.set(
                    rate_limited_until=after.not_before,
                    rate_limit_reason=f"rate limited until {until}: {outcome.reason}"[:300],
                )
            return events
        then = None
        if after.state is State.QUEUED:
            then = (State.QUEUED, after.reason, {"not_before": after.not_before})
        return self.store.finish_execution(
            execution_id,
            task_id,
            state=outcome.state,
            reason=outcome.reason,
            then=then,
            progress=progress,
            end=end,
        )

    def fail(self, task_id: str, execution_id: str, reason: str) -> None:
        """End an execution whose process is gone (`interrupted`, `node lost`): FAILED, then the
        retry policy applies."""
        row = self.store.task_row(task_id)
        counts: RetryCounts = row or {"attempts": 0, "requeues": 0, "retry_json": "{}"}
        self._ended(
            task_id, self.finish(task_id, execution_id, counts, Outcome(State.FAILED, reason))
        )

    def _ended(self, task_id: str, events: list[Event]) -> None:
        self.publish(events)
        if events and events[-1].get("state") in FINAL_STATES:
            failpoint.reached("settling")
            self.dependents.settle(task_id)

    def stop_lost(self) -> None:
        """This node was found lost: stop what it runs; each records `node lost`, or nothing
        when another node did first (every result is a compare-and-set)."""
        for task_id in list(self.pool.running):
            if execution_id := self._executions.get(task_id):
                self._lost.add(execution_id)
            self.pool.cancel(task_id)

    def check_cancels(self) -> None:
        """Stop the executions running here whose cancel was asked for elsewhere."""
        for task_id in self.store.cancel_requested(self.pool.running):
            self.pool.cancel(task_id)


class ProgressBatch:
    """One execution's progress, written in batches, with the final record or every
    `PROGRESS_S`, and coalesced: the latest of each kind per batch (a tool call carries the count
    so far), so that a chatty execution neither floods the events table nor slows the pool."""

    def __init__(self, lifecycle: Lifecycle, task_id: str, execution_id: str, name: str) -> None:
        self.lifecycle, self.task_id, self.execution_id, self.name = (
            lifecycle,
            task_id,
            execution_id,
            name,
        )
        self.pending: dict[str, ProgressEvent] = {}
        self.flushing: list[asyncio.TimerHandle] = []
        self.loop = asyncio.get_running_loop()

    def add(self, progress: Progress, stream: StreamState) -> None:
        data = {"name": self.name, **progress.fields}
        if progress.kind == "tool_call":
            data["tool_calls"] = stream.tool_calls
        self.pending[progress.kind] = (
            f"execution.{progress.kind}",
            self.task_id,
            self.execution_id,
            data,
        )
        if not self.flushing:
            self.flushing.append(self.loop.call_later(PROGRESS_S, self.flush))

    def flush(self) -> None:
        self.flushing.clear()
        batch = dict(self.pending)
        self.pending.clear()
        lifecycle = self.lifecycle
        with lifecycle.faults.carry_on("progress"):
            try:
                lifecycle.publish(lifecycle.store.add_events(list(batch.values())))
            except (DatabaseUnavailable, OSError):  # kept for the next flush or the record
                self.pending.update({k: v for k, v in batch.items() if k not in self.pending})
                raise

    def close(self) -> list[ProgressEvent]:
        """No more flushes: what is still pending goes with the final record."""
        for handle in self.flushing:
            handle.cancel()
        return list(self.pending.values())


def _crashed(state: State, reason: str) -> RunResult:
    return RunResult(Outcome(state, reason), StreamState(), None, 0, "")


__all__ = ["Lifecycle", "ProgressBatch"]
