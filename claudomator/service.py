"""`Claudomator`: wires config, store, runner, pool and hub; the CLI and the API are thin adapters
over it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from claudomator import failpoint
from claudomator.config import Config
from claudomator.errors import (
    DatabaseUnavailable,
    LeaseLost,
    NotFoundError,
    TransitionError,
)
from claudomator.events import Event, Hub
from claudomator.lock import DispatcherLock
from claudomator.pool import Pool
from claudomator.runner import (
    Runner,
    RunResult,
    kill_tree,
    leftovers,
    process_started,
    process_tree,
)
from claudomator.schedule import (
    Gate,
    after_execution,
    dependency_verdict,
    disk_full,
    owner_gone,
    pool_gate,
)
from claudomator.secret import scrub
from claudomator.state import FINAL_STATES, MANUAL_RETRY_ONLY, State
from claudomator.store.db import NewTask, Store
from claudomator.store.nodes import Nodes
from claudomator.store.reader import Reader, start_of_today
from claudomator.stream import Outcome, Progress, StreamState
from claudomator.task import PRIORITY_RANK, RetryPolicy, TaskSpec
from claudomator.taskfile import ParsedFile, parse_file

if TYPE_CHECKING:
    from claudomator.intake import Intake
    from claudomator.node import Membership

log = structlog.get_logger("claudomator.service")

RECORD_RETRY_S = 0.5  # a result the database refused is tried again, doubling up to 30 s


class Claudomator:
    """One data dir's store, pool and hub."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.data_dir.ensure()
        self.store = Store(config.database, aging_s=config.aging_s)
        self.reader = Reader(config.database)
        self.hub = Hub()
        self.runner = Runner(config)
        self.pool = Pool(config.max_concurrency)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = process_started(self.pid) or time.time()
        self._open: set[str] | None = None  # `run`: the tasks it waits for
        self._open_all: set[str] = set()
        self.intake: Intake | None = None  # `serve` only: `run` leaves the folders alone
        self.max_requeues = config.max_requeues
        self._spent: tuple[float, float, float] | None = None  # (day, spent, when summed)
        self._spent_dirty = False
        self.nodes = Nodes(self.store)
        self.membership: Membership | None = None  # `serve` and `run`: this process as a node
        self._claimed: dict[str, tuple[str, Event, dict[str, Any]]] = {}  # claimed, not started
        self._lost: set[str] = set()  # executions to stop: this node's lease was lost
        self._executions: dict[str, str] = {}  # task id -> its execution running here
        self._away: set[str] = set()  # what failed on the database, told once until it works

    @property
    def node_id(self) -> str:
        return self.membership.id if self.membership else ""

    def close(self) -> None:
        self.reader.close()
        self.store.close()

    def publish(self, events: Iterable[Event]) -> None:
        """Tell the hub (after the commit that wrote them), then let the folders follow."""
        files: dict[str, None] = {}
        for event in events:
            if moves_file(event):
                files[event["file_id"]] = None
            if self._open is not None and event.get("task_id") in self._open_all:
                if event["type"] == "task.finished":
                    self._open.discard(event["task_id"])
                elif event["type"] == "task.queued":
                    self._open.add(event["task_id"])
            log.info(event["type"], **{k: v for k, v in event.items() if k != "type"})
            self.hub.publish(event)
            self.pool.wake()
        if self.intake is not None and files:
            try:  # folders follow right after, not before, the work (e.g. the spawn) at hand
                asyncio.get_running_loop().call_soon(self._sync_files, list(files))
            except RuntimeError:
                self._sync_files(list(files))

    def publish_remote(self, events: Iterable[Event]) -> None:
        """Events another node committed: to the hub (the API's clients), and the folders of the
        files this node ingested follow whichever node ran their tasks."""
        files: dict[str, None] = {}
        for event in events:
            if moves_file(event):
                files[event["file_id"]] = None
            if event["type"] == "task.finished":
                self._spent_dirty = True  # the daily budget is the cluster's
            self.hub.publish(event, remote=True)
        self.pool.wake()
        if files:
            self._sync_files(list(files))

    def _sync_files(self, file_ids: list[str]) -> None:
        if self.intake is not None:
            with self._carry_on("mirror"):  # a move that failed is done again at the sweep
                self.intake.mirror.sync(file_ids)

    # -- intake --------------------------------------------------------------------------------

    def submit_files(self, paths: list[Path], *, source: str) -> list[str]:
        """Parse every file first (all valid or nothing is recorded), then record them in order so
        that a later file may depend on an earlier one's tasks."""
        from claudomator.errors import TaskFileError

        names: set[str] = set()
        parsed_files, errors = [], []
        for path in paths:
            try:
                parsed = parse_file(
                    path,
                    known_name=lambda n: n in names or self.store.resolve_name(n) is not None,
                    unknown_dependency="error",
                    max_bytes=self.config.max_file_bytes,
                )
            except TaskFileError as e:
                errors.extend(e.errors)
                continue
            names.update(t.name for t in parsed.tasks)
            parsed_files.append(parsed)
        if errors:
            raise TaskFileError(errors)
        ids: list[str] = []
        for parsed in parsed_files:
            ids += self.submit(parsed, source=source, dispatcher=self.identity)
        return ids

    def new_tasks(
        self,
        parsed: ParsedFile,
        *,
        source: str,
        source_path: str = "",
        held: bool = False,
        dispatcher: str = "",
        provenance_json: str = "{}",
    ) -> list[NewTask]:
        return [
            NewTask(
                name=spec.name,
                spec_json=spec.model_dump_json(),
                priority=spec.priority,
                priority_rank=PRIORITY_RANK[spec.priority],
                tags=list(spec.tags),
                depends_on=list(spec.depends_on),
                retry_json=spec.retry.model_dump_json(),
                source=source,
                source_path=source_path or parsed.path,
                held=held,
                dispatcher=dispatcher,
                provenance_json=provenance_json,
            )
            for spec in parsed.tasks
        ]

    def submit(self, parsed: ParsedFile, *, source: str, **options: Any) -> list[str]:
        """Record the tasks of one file (`options` as for `new_tasks`); QUEUED unless held or
        waiting for dependencies."""
        new = self.new_tasks(parsed, source=source, **options)
        ids, events = self.store.add_tasks(new)
        self.publish(events)
        return ids

    def submit_object(self, data: object, *, run: bool, source: str = "api") -> list[str]:
        """A task or batch from JSON (the API): PENDING until `run`, or QUEUED at once."""
        from claudomator.taskfile import parse_object

        parsed = parse_object(
            data,
            source,
            known_name=lambda n: self.store.resolve_name(n) is not None,
            unknown_dependency="error",
        )
        return self.submit(parsed, source=source, held=not run)

    def run_task(self, task_id: str) -> dict[str, Any]:
        """A task held PENDING (created without `run`) becomes runnable: QUEUED, or PENDING until
        its dependencies complete."""
        row = self.store.task_row(task_id)
        if row is None:
            raise NotFoundError(f"no task with id {task_id!r}")
        if row["state"] != State.PENDING.value or not row["held"]:
            raise TransitionError(
                f"task {task_id} is {row['state']}: only a task waiting for run can be run"
            )
        self.store.release_hold(task_id)
        verdict, reason = dependency_verdict(self.store.dependency_states(task_id))
        if verdict == "ready":
            event = self.store.transition(task_id, State.QUEUED, expect=[State.PENDING])
            self.publish([event] if event else [])
        elif verdict == "cancel":
            self.cancel_if(task_id, [State.PENDING], reason)
        return self.task(task_id)

    # -- actions -------------------------------------------------------------------------------

    def task(self, task_id: str) -> dict[str, Any]:
        data = self.reader.task(task_id)
        if data is None:
            raise NotFoundError(f"no task with id {task_id!r}")
        return data

    def cancel_if(self, task_id: str, expect: list[State], reason: str) -> bool:
        """Cancel a task that has not started; its dependents follow."""
        event = self.store.transition(task_id, State.CANCELLED, expect=expect, reason=reason)
        if event is None:
            return False
        self.publish([event])
        self._settle_dependents(task_id)
        return True

    def cancel(self, task_id: str) -> dict[str, Any]:
        """PENDING/QUEUED → CANCELLED at once; a RUNNING task's execution is stopped by its owner."""
        row = self.task(task_id)
        state = State(row["state"])
        if state in (State.PENDING, State.QUEUED):
            if self.cancel_if(task_id, [state], "cancelled"):
                return self.task(task_id)
            state = State(self.task(task_id)["state"])
        if state is State.RUNNING:
            if not self.pool.cancel(task_id):
                self.store.request_cancel(task_id)  # its owner stops it within a second
                self.recover()  # or, if its owner is gone, it ends now (FAILED `interrupted`)
            return self.task(task_id)
        raise TransitionError(
            f"task {task_id} is {state.value}: only PENDING, QUEUED or RUNNING can be cancelled"
        )

    def retry(self, task_id: str) -> dict[str, Any]:
        """A final task that did not complete goes back to QUEUED, by hand."""
        state = State(self.task(task_id)["state"])
        if state not in (State.FAILED, State.TIMED_OUT) and state not in MANUAL_RETRY_ONLY:
            raise TransitionError(
                f"task {task_id} is {state.value}: only a failed, timed out, cancelled or budget-exceeded task can be retried"
            )
        event = self.store.transition(
            task_id, State.QUEUED, expect=[state], reason="retry by hand", not_before=0.0
        )
        if event is None:
            raise TransitionError(f"task {task_id} changed state meanwhile; try again")
        self.publish([event])
        return self.task(task_id)

    # -- executions ----------------------------------------------------------------------------

    async def execute(self, task_id: str, cancel: asyncio.Event) -> None:
        """One execution of a task `_claim` started, to its recorded end. Never leaves it
        RUNNING."""
        started = self._claimed.pop(task_id, None)
        if started is None:
            return
        execution_id, _, row = started
        self._executions[task_id] = execution_id
        spec = TaskSpec.model_validate_json(row["config_json"])
        # Progress is written in batches, with the final record or every quarter second, and
        # coalesced: the latest of each kind per batch (a tool call carries the count so far),
        # so a chatty execution neither floods the events table nor slows the pool.
        pending: dict[str, tuple[str, str, str, dict[str, Any]]] = {}
        flushing: list[asyncio.TimerHandle] = []
        loop = asyncio.get_running_loop()

        def flush() -> None:
            flushing.clear()
            batch = dict(pending)
            pending.clear()
            with self._carry_on("progress"):
                try:
                    self.publish(self.store.add_events(list(batch.values())))
                except (DatabaseUnavailable, OSError):  # kept for the next flush or the record
                    pending.update({k: v for k, v in batch.items() if k not in pending})
                    raise

        def on_progress(progress: Progress, stream: StreamState) -> None:
            data = {"name": spec.name, **progress.fields}
            if progress.kind == "tool_call":
                data["tool_calls"] = stream.tool_calls
            pending[progress.kind] = (f"execution.{progress.kind}", task_id, execution_id, data)
            if not flushing:
                flushing.append(loop.call_later(0.25, flush))

        async def record(result: RunResult) -> None:
            for handle in flushing:
                handle.cancel()
            self._executions.pop(task_id, None)
            if execution_id in self._lost:  # stopped because this node was found lost
                self._lost.discard(execution_id)
                result = dataclasses.replace(result, outcome=Outcome(State.FAILED, "node lost"))
            # the database may be away for a while (a network cut): the result waits, holding
            # its slot, until it is recorded (or, if this node lost its lease meanwhile, refused)
            for attempt in itertools.count():
                try:
                    self._record(task_id, execution_id, row, result, list(pending.values()))
                    return
                except DatabaseUnavailable as e:
                    if attempt == 0:  # said once; it is recorded the moment the database is back
                        log.warning(
                            "execution.record_waits", execution_id=execution_id, error=str(e)
                        )
                    await asyncio.sleep(min(RECORD_RETRY_S * 2**attempt, 30.0))

        try:
            result = await self.runner.run(
                spec,
                execution_id,
                cancel=cancel,
                on_spawn=lambda pid, t: failpoint.reached("spawned"),
                on_progress=on_progress,
            )
        except asyncio.CancelledError:
            await record(_crashed(State.CANCELLED, "cancelled: shutdown"))
            raise
        except Exception as e:
            log.exception("execution.crashed", task_id=task_id, execution_id=execution_id)
            await record(_crashed(State.FAILED, f"runner error: {e!r}"))
            return
        await record(result)

    def _record(
        self,
        task_id: str,
        execution_id: str,
        row: dict[str, Any],
        result: RunResult,
        progress: list[tuple[str, str, str, dict[str, Any]]],
    ) -> None:
        outcome, stream = result.outcome, result.stream
        final = stream.result or {}
        # what claude said may quote a secret of ours or of the task's env: never record it
        task_env = json.loads(row["config_json"]).get("claude", {}).get("env") or {}

        def clean(text: str) -> str:
            return scrub(scrub(text), task_env)

        outcome = dataclasses.replace(outcome, reason=clean(outcome.reason))
        events = self._finish(
            task_id,
            execution_id,
            row,
            outcome,
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
            progress=progress,
        )
        self._spent_dirty = True
        failpoint.reached("finished")
        self.publish(events)
        if events and events[-1].get("state") in FINAL_STATES:
            failpoint.reached("settling")
            self._settle_dependents(task_id)

    def _finish(
        self, task_id: str, execution_id: str, row: dict[str, Any], outcome: Outcome, **values: Any
    ) -> list[Event]:
        """`row` holds the task's attempts (this execution counted), requeues and retry policy."""
        retry = RetryPolicy.model_validate_json(row.get("retry_json") or "{}")
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
                **values,
            )
            if events:  # a stale result (this node was found lost) pauses nobody
                until = time.strftime("%H:%M:%S", time.localtime(after.not_before))
                self.set_pool(
                    rate_limited_until=after.not_before,
                    rate_limit_reason=f"rate limited until {until}: {outcome.reason}"[:300],
                )
            return events
        then = None
        if after.state is State.QUEUED:
            then = (State.QUEUED, after.reason, {"not_before": after.not_before})
        return self.store.finish_execution(
            execution_id, task_id, state=outcome.state, reason=outcome.reason, then=then, **values
        )

    def _settle_dependents(self, task_id: str) -> None:
        """Queue dependents whose dependencies all COMPLETED; cancel those whose dependency did not."""
        for dep in self.store.dependents(task_id):
            self._settle(dep["id"], dep["dependencies"], dep["held"])

    def settle_waiting(self) -> int:
        """Settle every PENDING task whose dependencies are already final: a crash (or a node
        lost) between a dependency's final state and the settling of its dependents leaves them
        waiting on a state that will never change again. Returns how many were settled."""
        return sum(
            self._settle(task_id, deps, held=False)
            for task_id, deps in self.store.waiting_dependents().items()
        )

    def _settle(self, task_id: str, dependencies: list[tuple[str, State]], held: bool) -> bool:
        verdict, reason = dependency_verdict(dependencies)
        if verdict == "ready" and not held:
            event = self.store.transition(task_id, State.QUEUED, expect=[State.PENDING])
        elif verdict == "cancel":
            event = self.store.transition(
                task_id, State.CANCELLED, expect=[State.PENDING], reason=reason
            )
        else:
            return False
        if event is None:
            return False
        self.publish([event])
        if verdict == "cancel":
            self._settle_dependents(task_id)
        return True

    def recover(self) -> list[str]:
        """Executions left RUNNING by a process on this host that is gone end FAILED
        `interrupted` (then the retry policy applies), and whatever is left of their process tree
        is ended; so do those of nodes found lost (`reap`)."""
        interrupted = []
        for ex in self.store.running_executions():
            alive = process_started(ex["owner_pid"]) if ex["owner_pid"] else None
            if owner_gone(
                owner_host=ex["owner_host"],
                owner_pid=ex["owner_pid"],
                owner_started=ex["owner_started"],
                this_host=self.host,
                alive_started=alive,
            ):
                # every process of the execution carries its id in the environment
                kill_tree(process_tree(None, ex["id"]))
                self._fail_execution(ex["task_id"], ex["id"], "interrupted")
                interrupted.append(ex["id"])
        for dispatcher in self.store.dispatchers():
            _, host, pid, started = [*dispatcher.split(":"), "", "", "0", "0"][:4]
            if dispatcher != self.identity and owner_gone(
                owner_host=host,
                owner_pid=int(pid),
                owner_started=float(started),
                this_host=self.host,
                alive_started=process_started(int(pid)),
            ):
                self._abandon_run(dispatcher)
        self.reap()
        return interrupted

    def _fail_execution(self, task_id: str, execution_id: str, reason: str) -> None:
        row = self.store.task_row(task_id) or {}
        events = self._finish(task_id, execution_id, row, Outcome(State.FAILED, reason))
        self.publish(events)
        if events and events[-1].get("state") in FINAL_STATES:
            failpoint.reached("settling")
            self._settle_dependents(task_id)

    def _abandon_run(self, dispatcher: str) -> None:
        """A `run` that died: what it never started ends CANCELLED, never runs unasked."""
        for task in self.reader.list_tasks(limit=None, dispatcher=dispatcher):
            if task["state"] in (State.PENDING.value, State.QUEUED.value):
                self.cancel_if(task["id"], [State(task["state"])], "interrupted")
        self.store.release_dispatcher(dispatcher)

    # -- the cluster ---------------------------------------------------------------------------

    def join(self, kind: str) -> None:
        """Become a node (`serve`: the data dir's node id; `run`: its own identity) and hold a
        lease; refused while another live process holds the same id."""
        from claudomator import __version__
        from claudomator.node import Membership, node_id_for

        config = self.config
        if kind == "run":
            node_id = self.identity
        else:
            node_id = node_id_for(config.data_dir, config.node_id, self.host)
        membership = Membership(
            self.nodes,
            node_id,
            kind=kind,
            host=self.host,
            pid=self.pid,
            process_started=self.started,
            heartbeat_s=config.heartbeat_s,
            lease_s=config.lease_s,
            data_dir=str(config.data_dir.root),
            slots=self.pool.slots,
            version=__version__,
        )
        self.publish([membership.join(process_started)])
        self.membership = membership
        if kind == "serve":
            self.store.node = node_id
            self.nodes.adopt_files(node_id)
            # what this node ran before it was lost or killed, and is no longer its to run
            for execution_id, procs in leftovers().items():
                if self.nodes.execution_owner(execution_id) == node_id:
                    log.warning("node.leftover_killed", execution_id=execution_id)
                    kill_tree(procs)

    def leave(self) -> None:
        """A clean exit: `stopped` (a database away now only means the lease will expire)."""
        if self.membership is not None:
            try:
                event = self.membership.leave()
            except DatabaseUnavailable as e:
                log.warning("node.leave_failed", error=str(e))
                return
            self.publish([event] if event else [])

    def reap(self) -> None:
        """Other nodes whose lease expired are lost: their RUNNING executions end FAILED `node
        lost` (then the retry policy applies), their `run` tasks not started end CANCELLED."""
        expired, any_lost = self.nodes.expired()
        for node_id in expired:
            if node_id != self.node_id and (event := self.nodes.mark_lost(node_id)):
                log.warning("node.lost", node=node_id)
                self.publish([event])
                any_lost = True
        if not any_lost:
            return
        lost = [ex for ex in self.nodes.lost_executions() if ex["owner_node"] != self.node_id]
        if lost:  # a lost node on this host may have left its claude processes running
            here = leftovers()
            for ex in lost:
                kill_tree(here.get(ex["id"], []))
                self._fail_execution(ex["task_id"], ex["id"], "node lost")
        for dispatcher in self.nodes.lost_runs():
            if dispatcher != self.node_id:
                self._abandon_run(dispatcher)

    def _lease_lost(self) -> None:
        """This node was found lost (it was stalled or cut off past its lease): stop what it runs
        (each records nothing, or `node lost` if no other node has yet), then join again."""
        for task_id in list(self.pool.running):
            if execution_id := self._executions.get(task_id):
                self._lost.add(execution_id)
            self.pool.cancel(task_id)
        if self.membership is not None:
            self.publish([self.membership.join(process_started)])

    def _doubt(self) -> None:
        if self.membership is not None:
            self.membership.doubt.set()

    def _owner(self) -> dict[str, Any]:
        return {
            "owner_host": self.host,
            "owner_pid": self.pid,
            "owner_started": self.started,
            "owner_node": self.node_id,
        }

    # -- the pool's state ----------------------------------------------------------------------

    def set_pool(self, **changes: Any) -> dict[str, Any]:
        state, event = self.store.set_pool_state(**changes)
        if event is not None:
            self.publish([event])
        return state

    def gate(self, by_hand: bool = True) -> Gate:
        return pool_gate(
            self.store.pool_state(),
            now=time.time(),
            spent_today=self.spent_today(),
            daily_budget=self.config.daily_budget_usd,
            by_hand=by_hand,
            free_bytes=self.free_bytes(),
        )

    def free_bytes(self) -> int:
        """Room left for logs, spool moves and (SQLite) the database, on the fuller disk."""
        folders = {self.config.data_dir.root}
        if self.store.path is not None:
            folders.add(self.store.path.parent)
        free = []
        for folder in folders:
            st = os.statvfs(folder)
            free.append(st.f_bavail * st.f_frsize)
        return min(free)

    def spent_today(self) -> float:
        """Today's spend, summed again when an execution ended here, the day changed, or 5 s
        passed (other processes spend too): the dispatch loop asks four times a second."""
        day, now = start_of_today(), time.monotonic()
        cached = self._spent
        if cached is None or cached[0] != day or now - cached[2] > 5.0 or self._spent_dirty:
            self._spent_dirty = False
            self._spent = cached = (day, self.reader.cost_since(day), now)
        return cached[1]

    def _check_cancels(self) -> None:
        for task_id in self.store.cancel_requested(self.pool.running):
            self.pool.cancel(task_id)

    @property
    def identity(self) -> str:
        """How a `run` process names itself as the dispatcher of its tasks."""
        return f"run:{self.host}:{self.pid}:{self.started:.2f}"

    async def run_tasks(self, task_ids: list[str]) -> None:
        """`claudomator run`: execute only its own tasks (and their retries) until all are final."""
        self._open_all = set(task_ids)
        states = {t["id"]: t["state"] for t in self.reader.list_tasks(ids=task_ids, limit=None)}
        self._open = {t for t in task_ids if states.get(t) not in FINAL_STATES}

        told = ""

        def pick(n: int) -> list[str]:
            nonlocal told
            gate = self.gate(by_hand=False)  # money and rate limits hold `run` too
            if not gate.open:
                if gate.reason != told:  # say once why nothing starts, and until when
                    told = gate.reason
                    self.hub.publish(
                        {"type": "pool.waiting", "reason": gate.reason, "until": gate.until}
                    )
                return []
            told = ""
            return self._claim(n, self.identity)

        self.join("run")
        stop = asyncio.Event()
        beside = asyncio.create_task(self._membership(stop), name="node")
        try:
            await self.pool.run(
                pick, self.execute, lambda: not self._open, tick=self._check_cancels
            )
        finally:
            stop.set()
            await beside
            self.leave()

    async def _membership(self, stop: asyncio.Event) -> None:
        if self.membership is not None:
            await self.membership.run(stop, self.reap, self._lease_lost)

    async def _relay(self, stop: asyncio.Event) -> None:
        """Other nodes' events into this node's hub (PostgreSQL only)."""
        if self.store.postgresql:
            from claudomator.store.relay import Relay

            relay = Relay(
                self.config.database_url,
                self.store.channel,
                self.node_id,
                self.reader,
                self.publish_remote,
            )
            await relay.run(stop)

    async def serve(
        self, also: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        """`claudomator serve`: the directory runner. Holds the dispatcher lock, repairs what a
        crash left, watches the inbox and runs the pool until SIGTERM/SIGINT (a second signal
        cancels running executions at once). `also(stop)` runs beside it on the same loop (the
        HTTP API) and must return once `stop` is set."""
        from claudomator.intake import Intake
        from claudomator.recovery import recover
        from claudomator.sources.inbox import InboxWatcher

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        stopping: list[asyncio.Task[None]] = []

        def on_signal() -> None:
            stop.set()
            grace = 0.0 if stopping else self.config.stop_grace_s
            log.info("serve.stopping", grace_s=grace)
            stopping.append(asyncio.create_task(self.pool.stop(grace)))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        lock = DispatcherLock(self.config.data_dir.root / "dispatcher.lock")
        try:
            lock.acquire(f"pid {self.pid} on {self.host}")
            self.join("serve")
            intake = Intake(self)
            sources = None
            if self.config.sources:
                from claudomator.sources.git import GitSources

                sources = GitSources(self, intake)  # before recovery: it sets intake.base_dirs
            recover(self, intake)
            watcher = InboxWatcher(
                intake.spool.inbox,
                {f: intake.spool.folder(f) for f in ("queued", "done", "rejected")},
                on_files=self.carrying_on("intake", intake.offer),
                on_deleted=self.carrying_on("intake", intake.deleted),
                sweep=lambda: self._sweep(intake),
                sweep_interval_s=self.config.sweep_interval_s,
                debounce_s=self.config.debounce_s,
                step_s=self.config.step_s,
                poll=self.config.intake_poll,
            )
            watching = asyncio.create_task(watcher.run(stop), name="inbox:watch")
            beside = asyncio.create_task(also(stop), name="serve:also") if also else None
            done = asyncio.Event()  # the lease is held until the last execution ended
            cluster = [
                asyncio.create_task(self._membership(done), name="node"),
                asyncio.create_task(self._relay(done), name="node:relay"),
            ]
            gitting = (
                asyncio.create_task(sources.run(stop), name="sources:git") if sources else None
            )
            log.info(
                "serve.started",
                data_dir=str(self.config.data_dir.root),
                node=self.node_id,
                slots=self.pool.slots,
            )
            try:
                await self.pool.run(self._pick, self.execute, lambda: False, 0.25, self._tick)
            finally:
                stop.set()
                await watching
                if gitting is not None:
                    await gitting
                if beside is not None:
                    await beside
                done.set()
                await asyncio.gather(*cluster)
                self.leave()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self.intake = None
            lock.release()
        log.info("serve.stopped")

    def _sweep(self, intake: Intake) -> None:
        """Every `intake.sweep_interval` (and after a watcher error): the inbox, claims a fault
        cut short, files whose tasks changed unheard of, dependents a lost node left waiting;
        each step on its own, so that one failing does not hold up the others."""
        for what, step in (
            ("intake", intake.sweep),
            ("staging", intake.finish_claims),
            ("mirror", intake.mirror.resync),
            ("dependents", self.settle_waiting),
        ):
            with self._carry_on(what):
                step()

    def _pick(self, n: int) -> list[str]:
        with self._carry_on("pick"):
            gate = self.gate()
            if gate.reason.startswith("disk full"):
                self._trouble("disk.full", gate.reason)
            elif "disk.full" in self._away:
                self._away.discard("disk.full")
                log.info("disk.recovered")
            return self._claim(n) if gate.open else []
        return []

    def _claim(self, n: int, dispatcher: str = "") -> list[str]:
        """Claim up to `n` tasks in one transaction; `execute` then runs each."""
        try:
            claimed = self.store.claim(
                n, time.time(), self.config.data_dir.executions, dispatcher, **self._owner()
            )
        except LeaseLost:
            self._doubt()
            return []
        for started in claimed:
            self._claimed[started[1]["task_id"]] = started
        self.publish([started[1] for started in claimed])
        return [started[1]["task_id"] for started in claimed]

    def _tick(self) -> None:
        """Every round of the serve loop: cancel requests, files still being written."""
        with self._carry_on("tick"):
            if self.pool.running:
                self._check_cancels()
            if self.intake is not None:
                self.intake.recheck_pending()

    @contextlib.contextmanager
    def _carry_on(self, what: str) -> Iterator[None]:
        """`serve` outlives a database away for a while, a full disk and spool folders it cannot
        write: it says so once, and what failed is done again (the dispatch loop on its next
        round, the folders and the inbox at the next sweep; nothing recorded is lost)."""
        try:
            yield
        except (DatabaseUnavailable, OSError) as e:
            self._trouble("disk.full" if disk_full(e) else f"{what}.waits", str(e))
        else:
            if f"{what}.waits" in self._away:
                log.info(f"{what}.recovered")
            self._away.discard(f"{what}.waits")

    def _trouble(self, key: str, error: str) -> None:
        if key not in self._away:
            log.warning(key, error=error)
        self._away.add(key)

    def carrying_on(self, what: str, call: Callable[..., object]) -> Callable[..., None]:
        """`call`, under `_carry_on(what)`: for the watcher's and the loop's callbacks."""

        def guarded(*args: Any) -> None:
            with self._carry_on(what):
                call(*args)

        return guarded

    async def interrupt(self, reason: str) -> None:
        """Ctrl-C on `run`: cancel what has not started, stop what runs (whole process trees)."""
        for task_id in sorted(self._open or ()):
            event = self.store.transition(
                task_id, State.CANCELLED, expect=[State.PENDING, State.QUEUED], reason=reason
            )
            if event is not None:
                self.publish([event])
        await self.pool.stop(0)


def moves_file(event: Event) -> bool:
    """Whether an event may move its task's spool file: a start, an end, or a task queued
    again (a retry, or a dependency settled), not a task queued as it is created."""
    if not event.get("file_id"):
        return False
    kind = event["type"]
    return kind in ("task.started", "task.finished") or (
        kind == "task.queued" and "reason" in event
    )


def _crashed(state: State, reason: str) -> RunResult:
    return RunResult(Outcome(state, reason), StreamState(), None, 0, "")
