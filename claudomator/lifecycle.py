"""An execution's life, from the start that gives its task a slot to its recorded end.

1. start: QUEUED → RUNNING, with a new execution row, by compare-and-set in one transaction for
   up to as many tasks as the pool has free slots (nodes racing for the queue never collide),
   only tasks whose workspace overlaps none running here (`workspaces`);
2. execute: its workspace prepared (a worktree: made, set up), the attempt's rounds run
   (`rounds`: claude spawned by the runner, the spool's file moved queued/ → running/ by then;
   its verify checks; claude resumed in a new execution while a check fails, each such round
   recorded as it ends), progress recorded in batches, then what the last round left
   concluded (committed on its branch, the diff saved, pushed);
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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import structlog

from claudomator import failpoint
from claudomator.budget import TagRound, memo, money_left
from claudomator.config import Config
from claudomator.dependents import Dependents
from claudomator.errors import DatabaseUnavailable, LeaseLost
from claudomator.faults import Faults
from claudomator.finish import Finish
from claudomator.gate import PoolGate
from claudomator.limits import Caps, LimitRound
from claudomator.node import Node
from claudomator.outcome import Outcome, with_denials
from claudomator.pool import Pool
from claudomator.progress import ProgressBatch, ProgressEvent
from claudomator.records import Event
from claudomator.rounds import Rounds, Step
from claudomator.runner import Runner, RunResult
from claudomator.secret import scrub
from claudomator.state import FINAL_STATES, State
from claudomator.store.db import Store
from claudomator.stored import (
    Admission,
    AdmissionRound,
    ExecutionEnd,
    RetryCounts,
    Started,
    StartedTask,
)
from claudomator.stream import StreamState
from claudomator.task import TaskSpec
from claudomator.workspaces import Workspaces

log = structlog.get_logger("claudomator.lifecycle")

RECORD_RETRY_S = 0.5  # a result the database refused is tried again, doubling up to 30 s

T = TypeVar("T")


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
        self.config, self.store, self.pool, self.node = config, store, pool, node
        self.publish, self.dependents, self.gate, self.faults = publish, dependents, gate, faults
        self.workspaces = workspaces
        self.rounds = Rounds(config, runner, store, node.process.host)  # it runs claude
        self.finish = Finish(store, gate)
        self.caps = Caps(dict(config.tag_limits), dict(config.model_limits), config.claude_model)
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
                self._admission(),
                **self.node.process.owner(self.node.id),
            )
        except LeaseLost:
            self.node.doubt()
            return []
        for one in started:
            self._started[one.event["task_id"]] = one
        self.publish([one.event for one in started])
        return [one.event["task_id"] for one in started]

    @property
    def max_requeues(self) -> int:
        """Rate-limit requeues of a task before it fails (`run --fail-on-rate-limit`: 0)."""
        return self.finish.max_requeues

    @max_requeues.setter
    def max_requeues(self, value: int) -> None:
        self.finish.max_requeues = value

    def _admission(self) -> Admission:
        """The workspaces' admission, within the concurrency limits (counted on every node),
        less the tasks of a tag over its budget today."""
        over = self.gate.over_tags()
        caps = self.caps
        if not over and not (caps.tags or caps.models):
            return self.workspaces.admission

        def admission(
            running: Sequence[str],
            configs: Callable[[Sequence[str]], Mapping[str, str]],
            everywhere: Callable[[], Sequence[str]],
        ) -> AdmissionRound:
            read = memo(configs)
            judge: AdmissionRound = self.workspaces.admission(running, read)
            if caps.tags or caps.models:
                judge = LimitRound(judge, read, everywhere(), caps)
            return TagRound(judge, read, over) if over else judge

        return admission

    async def execute(self, task_id: str, cancel: asyncio.Event) -> None:
        """One attempt of a task `start` started (its verify rounds included), to its recorded
        end. Never leaves it RUNNING."""
        started = self._started.pop(task_id, None)
        if started is None:
            return
        row = started.task
        self._executions[task_id] = started.execution_id
        spec = TaskSpec.model_validate_json(row["config_json"])
        step = Step(started.execution_id, started.session_id, self._batch(task_id, started, spec))

        async def record(result: RunResult, workspace: str = "") -> list[Event]:
            pending = step.batch.close()
            self._executions.pop(task_id, None)
            if step.execution_id in self._lost:  # stopped because this node was found lost
                self._lost.discard(step.execution_id)
                result = dataclasses.replace(result, outcome=Outcome(State.FAILED, "node lost"))
            end = self._end(spec, result, step, workspace)
            return await self._until_recorded(
                step.execution_id,
                lambda: self._record(
                    task_id, step.execution_id, row, spec, result, pending, end, step.spent_usd
                ),
            )

        async def advance(done: Step, result: RunResult, reason: str, task_reason: str) -> Any:
            if cancel.is_set() or done.execution_id in self._lost:
                return None  # no new round: the last record says why
            # the round's work kept as any execution's (committed on the branch, its diff)
            kept, _ = await self.workspaces.conclude(
                prepared, spec, task_id, done.execution_id, succeeded=False
            )
            workspace = json.dumps(kept.to_json())
            return await self._advance(
                task_id, row, spec, done, result, (reason, task_reason), workspace
            )

        limits = self.gate.limits(spec.tags, row["batch_id"], row["batch_budget_usd"])
        budget, reached = money_left(spec.claude.max_budget_usd, limits)
        if reached:  # a batch's or a tag's money is spent: this execution never starts claude
            await record(_crashed(State.BUDGET_EXCEEDED, reached))
            return
        try:
            prepared = await self.workspaces.prepare(task_id, step.execution_id, spec)
            if prepared.failure is not None:
                result = _crashed(State.FAILED, prepared.failure)
            else:
                where = (prepared.cwd, budget)
                ran = await self.rounds.run(task_id, row, spec, step, where, cancel, advance)
                if ran is None:  # a round's record was refused: this node was found lost
                    return
                step, result = ran
            workspace, failure = await self.workspaces.conclude(
                prepared,
                spec,
                task_id,
                step.execution_id,
                succeeded=result.outcome.state is State.COMPLETED,
            )
            if failure is not None and result.outcome.state is State.COMPLETED:
                result = dataclasses.replace(result, outcome=Outcome(State.FAILED, failure))
        except asyncio.CancelledError:  # a worktree left as it was: recovery concludes it
            await record(_crashed(State.CANCELLED, "cancelled: shutdown"))
            raise
        except Exception as e:
            log.exception("execution.crashed", task_id=task_id, execution_id=step.execution_id)
            await record(_crashed(State.FAILED, f"runner error: {e!r}"))
            return
        events = await record(result, json.dumps(workspace.to_json()))
        if events and events[-1].get("state") in FINAL_STATES:
            await self.workspaces.release(task_id, prepared)

    def _batch(self, task_id: str, started: Started, spec: TaskSpec) -> ProgressBatch:
        return ProgressBatch(
            self.store, self.publish, self.faults, task_id, started.execution_id, spec.name
        )

    async def _until_recorded(self, execution_id: str, write: Callable[[], T]) -> T:
        """`write` done, however long the database is away (a network cut): the result waits,
        holding its slot, until it is recorded (or, if this node lost its lease meanwhile,
        refused)."""
        for attempt in itertools.count():
            try:
                return write()
            except DatabaseUnavailable as e:
                if attempt == 0:  # said once; it is recorded the moment the database is back
                    log.warning("execution.record_waits", execution_id=execution_id, error=str(e))
                await asyncio.sleep(min(RECORD_RETRY_S * 2**attempt, 30.0))
        raise AssertionError("unreachable")  # the loop above returns or raises

    async def _advance(
        self,
        task_id: str,
        row: StartedTask,
        spec: TaskSpec,
        done: Step,
        result: RunResult,
        reasons: tuple[str, str],
        workspace: str,
    ) -> Step | None:
        """Record a round that another follows (FAILED with the first of `reasons`, its task
        RUNNING still with the second) and start the next one's execution, resuming its
        session."""
        reason, task_reason = reasons
        pending = done.batch.close()
        end = self._end(spec, result, done, workspace)
        clean = _cleaner(spec)

        def write() -> tuple[list[Event], Started] | None:
            return self.store.next_round(
                done.execution_id,
                task_id,
                state=State.FAILED,
                reason=clean(with_denials(reason, result.stream.result)),
                end=end,
                progress=pending,
                executions_dir=self.config.data_dir.executions,
                task_reason=clean(task_reason),
                round=done.number + 1,
                resumed_from=done.execution_id,
                session_id=end.session_id or done.session_id,
                **self.node.process.owner(self.node.id),
            )

        recorded = await self._until_recorded(done.execution_id, write)
        self.gate.spent_changed()
        if recorded is None:
            return None
        events, started = recorded
        self._executions[task_id] = started.execution_id
        self.publish([*events, started.event])
        batch = self._batch(task_id, started, spec)
        return Step(started.execution_id, started.session_id, batch, done.number + 1,
                    resumed_from=done.execution_id)  # fmt: skip

    def _end(self, spec: TaskSpec, result: RunResult, step: Step, workspace: str) -> ExecutionEnd:
        """What an execution reported, as its row records it: scrubbed of secrets."""
        stream, clean = result.stream, _cleaner(spec)
        final = stream.result or {}
        return ExecutionEnd(
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
            api_error_status=result.outcome.api_error_status,
            workspace_json=workspace,
            verify_json=json.dumps(step.verification.to_json()) if step.verification else "",
            resumed_from=step.resumed_from,
        )

    def _record(
        self,
        task_id: str,
        execution_id: str,
        row: StartedTask,
        spec: TaskSpec,
        result: RunResult,
        progress: list[ProgressEvent],
        end: ExecutionEnd,
        step_spent: float = 0.0,
    ) -> list[Event]:
        """Record the last execution of an attempt (`step_spent`: what its earlier rounds
        spent)."""
        reason = with_denials(result.outcome.reason, result.stream.result)
        outcome = dataclasses.replace(result.outcome, reason=_cleaner(spec)(reason))
        spent = row["cost"] + step_spent + end.cost_usd  # the task's executions, this one's
        events = self.finish(
            task_id,
            execution_id,
            row,
            outcome,
            retry=spec.retry,
            progress=progress,
            end=end,
            spent_usd=spent,
        )
        self.gate.spent_changed()
        failpoint.reached("finished")
        self._ended(task_id, events)
        return events

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


def _cleaner(spec: TaskSpec) -> Callable[[str], str]:
    """What claude said may quote a secret of ours or of the task's env: never record it."""
    return lambda text: scrub(scrub(text), spec.claude.env)


def _crashed(state: State, reason: str) -> RunResult:
    return RunResult(Outcome(state, reason), StreamState(), None, 0, "")


__all__ = ["Lifecycle"]
