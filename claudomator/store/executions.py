"""The executions table: starting executions (`start`: QUEUED → RUNNING with a new execution row),
recording how one ended (with its task's state change and last progress, in one transaction), and
the cancel flag its owner watches.

A start is one UPDATE that picks and starts up to n tasks, which exactly one of any number of
racing nodes wins per task on both databases; a node starts tasks only while its lease holds. An empty
queue costs one read and no write transaction once a start has found nothing (`_idle`).

With an admission (which tasks may run beside those running on this node: `workspace.admit`),
the queue is read in pick order, a page at a time, in the same transaction; the admitted tasks
start by one UPDATE of their ids (still only those QUEUED), and the reason of a task that waits
says on what, written only when it changes.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from claudomator.errors import LeaseLost
from claudomator.ids import new_id
from claudomator.logfiles import execution_logs
from claudomator.records import Event
from claudomator.state import State
from claudomator.store.events import write_event
from claudomator.store.nodes import UP, lease_expired
from claudomator.store.schema import EXECUTIONS, NODES, TASKS
from claudomator.store.tasks import CHANGED, PICK, Tasks, in_pick_order, task_event
from claudomator.stored import (
    Admission,
    ExecutionEnd,
    LiveExecution,
    Started,
    StartedTask,
)
from claudomator.workspace import WAITING

ADMIT_PAGE = 8  # an admission reads the queue n + this many at first, then four times more
ADMIT_MAX = 4096  # queued tasks an admission looks at, at most, per start


class Executions(Tasks):
    """The part of `Store` that starts and finishes executions."""

    _idle = True  # the last start found nothing

    def start(
        self,
        limit: int,
        now: float,
        executions_dir: Path,
        dispatcher: str = "",
        admission: Admission | None = None,
        **values: Any,
    ) -> list[Started]:
        """Up to `limit` tasks `pick` would choose, started in one transaction whose one UPDATE
        picks and starts them: nodes racing for the queue never collide on a task. Each gets an
        execution row (attempt n+1, its log paths under `executions_dir`); `values` name the
        owner (`owner_node` etc.). An empty queue costs one read, no write transaction."""
        params = {"p_dispatcher": dispatcher, "p_now": now, "p_limit": limit}
        if self._idle:  # the queue was empty last time: look before taking the write lock
            with self.engine.connect() as conn:
                if conn.execute(PICK, {**params, "p_limit": 1}).first() is None:
                    return []
        node = values.get("owner_node", "")
        lease = {"p_node": node, "p_pid": values.get("owner_pid", 0), "p_now_at": time.time()}
        with self.begin() as conn:
            if admission is None:
                rows = conn.execute(self._start_statement(bool(node)), {**params, **lease}).all()
            else:
                ids = self._admitted(conn, admission, params, node)
                statement = self._start_ids_statement(bool(node))
                rows = conn.execute(statement, {**lease, "p_ids": ids}).all() if ids else []
            started = [
                self._started(conn, cast(StartedTask, dict(row._mapping)), executions_dir, values)
                for row in rows
            ]
            self._idle = not started
            if not started:  # nothing to start, or no lease to start with?
                self._check_lease(conn, node, values.get("owner_pid", 0))
            return started

    @functools.cache  # noqa: B019 (one Store per process: the two statements live as long)
    def _start_statement(self, with_lease: bool) -> Any:
        pick = in_pick_order(TASKS.alias("picked"))  # the UPDATE's own table, seen apart
        if with_lease:  # only while this node's lease holds
            pick = pick.where(self._lease_held.exists())
        return _starting(TASKS.c.id.in_(pick))

    @functools.cache  # noqa: B019 (as above)
    def _start_ids_statement(self, with_lease: bool) -> Any:
        chosen = [TASKS.c.id.in_(bindparam("p_ids", expanding=True))]
        if with_lease:
            chosen.append(self._lease_held.exists())
        return _starting(*chosen)

    @staticmethod
    def _admitted(
        conn: Connection, admission: Admission, params: dict[str, Any], node: str
    ) -> list[str]:
        """The ids `admission` lets start, reading the queue a page at a time; the reasons of
        the tasks it looked at, set to why they wait (or cleared of a wait that is over)."""
        limit = params["p_limit"]
        running = conn.execute(_RUNNING_HERE, {"p_node": node}).scalars().all()

        def configs(ids: Sequence[str]) -> dict[str, str]:
            found = conn.execute(_CONFIGS, {"p_ids": list(ids)}).all()
            return {row.id: row.config_json for row in found}

        def everywhere() -> list[str]:
            if conn.dialect.name == "postgresql":  # racing nodes judge one after another
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADMIT_LOCK})")
            return list(conn.execute(_RUNNING_ANYWHERE).scalars())

        judge = admission(running, configs, everywhere)
        allowed: list[str] = []
        offset, page = 0, limit + ADMIT_PAGE
        while len(allowed) < limit and offset < ADMIT_MAX:
            found = conn.execute(_CANDIDATES, {**params, "p_limit": page, "p_offset": offset}).all()
            verdict = judge.consider([row.id for row in found], limit - len(allowed))
            allowed += verdict.allowed
            ready = set(verdict.ready)
            changed = [
                {"p_id": row.id, "p_reason": reason}
                for row in found
                for reason in [verdict.waits.get(row.id, "" if row.id in ready else row.reason)]
                if reason != row.reason and (reason or row.reason.startswith(WAITING))
            ]
            if changed:
                conn.execute(_SET_REASON, changed)
            if len(found) < page:
                break
            offset, page = offset + page, page * 4
        return allowed

    @functools.cached_property
    def _lease_held(self) -> Any:
        return select(NODES.c.id).where(
            NODES.c.id == bindparam("p_node"),
            NODES.c.pid == bindparam("p_pid"),  # not another process that took the id since
            NODES.c.state == UP,
            ~lease_expired(self.now_sql),
        )

    def _check_lease(self, conn: Connection, node: str, pid: int) -> None:
        """A node starts tasks only while its lease holds (it may have been stalled past it)."""
        if node and conn.execute(self._lease_held, {"p_node": node, "p_pid": pid}).first() is None:
            raise LeaseLost(f"node {node}: its lease expired or it was marked lost")

    @staticmethod
    def _started(
        conn: Connection,
        row: StartedTask,
        executions_dir: Path,
        values: dict[str, Any],
        reason: str | None = None,
    ) -> Started:
        """The execution row of a task just started (`row`: its columns as updated), and its
        `task.started` event; or, for a verify round (`reason`: why it runs), the round's
        `execution.round` event."""
        execution_id = new_id()
        # claude's session, chosen here so that a crash cannot lose it: a retry resumes it
        session_id = values.get("session_id") or str(uuid.uuid4())
        node = values.get("owner_node", "")
        if reason is None:
            event = task_event(conn, State.RUNNING, row["id"], row, "", {}, execution_id, node)
        else:
            event = write_event(conn, "execution.round", row["id"], execution_id, name=row["name"],
                                round=values["round"], resumed_from=values["resumed_from"],
                                reason=reason, node=node)  # fmt: skip
        logs = execution_logs(executions_dir, execution_id)
        conn.execute(
            _INSERT_EXECUTION,
            {
                "id": execution_id,
                "task_id": event["task_id"],
                "attempt": row["attempts"],
                "state": State.RUNNING.value,
                "started_at": time.time(),
                "stdout_path": str(logs.stdout),
                "stderr_path": str(logs.stderr),
                **values,
                "session_id": session_id,
            },
        )
        return Started(execution_id, event, row, session_id)

    def workspaces_of(self, task_ids: Sequence[str] | None) -> dict[str, str]:
        """The workspace record (JSON) of each task's latest execution that has one (of every
        task that has one: None)."""
        if task_ids is not None and not task_ids:
            return {}
        chosen = [EXECUTIONS.c.workspace_json != ""]
        if task_ids is not None:
            chosen.append(EXECUTIONS.c.task_id.in_(list(task_ids)))
        latest = (
            select(EXECUTIONS.c.task_id, func.max(EXECUTIONS.c.id).label("id"))
            .where(*chosen)
            .group_by(EXECUTIONS.c.task_id)
            .subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(EXECUTIONS.c.task_id, EXECUTIONS.c.workspace_json).join(
                    latest, EXECUTIONS.c.id == latest.c.id
                )
            ).all()
        return {row.task_id: row.workspace_json for row in rows}

    def latest_execution_id(self, task_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(EXECUTIONS.c.id)).where(EXECUTIONS.c.task_id == task_id)
            ).scalar()

    def finish_execution(
        self,
        execution_id: str,
        task_id: str,
        *,
        state: State,
        reason: str,
        task_state: State | None = None,
        task_reason: str | None = None,
        task_values: dict[str, Any] | None = None,
        then: tuple[State, str, dict[str, Any]] | None = None,
        progress: Sequence[tuple[str, str, str, dict[str, Any]]] = (),
        end: ExecutionEnd | None = None,
    ) -> list[Event]:
        """Record how an execution ended (`state`, `reason`, what it reported: `end`; none when
        its process is gone) and move its task
        RUNNING → `task_state` (default: `state`), then on to `then` (a retry), all in one
        transaction, after its last progress events. Empty when the execution was already final
        (marked `interrupted` or `node lost` by another process): then only the money it reports
        spent is added to it (the daily budget must count it); its state and result stand."""
        values = end.columns() if end is not None else {}
        with self.begin() as conn:
            result = conn.execute(
                FINISH_EXECUTION,
                {
                    "p_id": execution_id,
                    "state": state.value,
                    "reason": reason,
                    "finished_at": time.time(),
                    **values,
                },
            )
            if result.rowcount != 1:
                # already ended by another node (this one was found lost): its result stands,
                # but money spent is spent, and the daily budget must count it
                if end is not None and end.cost_usd:
                    spend = {f"s_{k}": values[k] for k in _SPEND}
                    conn.execute(_LATE_SPEND, {"p_id": execution_id, **spend})
                return []
            events = [write_event(conn, t, task, ex, **data) for t, task, ex, data in progress]
            first = task_state or state
            ev = self._cas(
                conn,
                task_id,
                first,
                [State.RUNNING],
                task_reason or reason,
                task_values or {},
                execution_id=execution_id,
            )
            if ev is not None:
                events.append(ev)
                if then is not None and (
                    nxt := self._cas(
                        conn, task_id, then[0], [first], *then[1:], execution_id=execution_id
                    )
                ):
                    events.append(nxt)
            return events

    def request_cancel(self, task_id: str) -> bool:
        """Flag the task's running execution for its owner to stop; False when none runs."""
        with self.begin() as conn:
            result = conn.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.task_id == task_id, EXECUTIONS.c.state == State.RUNNING.value)
                .values(cancel_requested=True)
            )
            return result.rowcount > 0

    def cancel_requested(self, task_ids: Iterable[str]) -> list[str]:
        ids = list(task_ids)
        if not ids:
            return []
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(EXECUTIONS.c.task_id).where(
                        EXECUTIONS.c.task_id.in_(ids),
                        EXECUTIONS.c.state == State.RUNNING.value,
                        EXECUTIONS.c.cancel_requested.is_(True),
                    )
                ).scalars()
            )

    def running_executions(self) -> list[LiveExecution]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    EXECUTIONS.c.id,
                    EXECUTIONS.c.task_id,
                    EXECUTIONS.c.owner_host,
                    EXECUTIONS.c.owner_pid,
                    EXECUTIONS.c.owner_started,
                    EXECUTIONS.c.cancel_requested,
                ).where(EXECUTIONS.c.state == State.RUNNING.value)
            ).mappings()
            return [cast(LiveExecution, dict(r)) for r in rows]


# what an execution starting needs of its task, besides what its event needs
STARTED_COLUMNS = (
    *CHANGED,
    TASKS.c.requeues,
    TASKS.c.config_json,
    TASKS.c.retry_json,
    TASKS.c.batch_id,
    TASKS.c.batch_budget_usd,
)
_INSERT_EXECUTION = insert(EXECUTIONS)


def _starting(*chosen: Any) -> Any:
    """The UPDATE that starts the QUEUED tasks `chosen` says, returning what their start needs."""
    return (
        update(TASKS)
        .where(*chosen, TASKS.c.state == State.QUEUED.value)
        .values(
            state=State.RUNNING.value,
            reason="",
            updated_at=bindparam("p_now_at"),
            attempts=TASKS.c.attempts + 1,
        )
        .returning(TASKS.c.id, *STARTED_COLUMNS)
    )


# what runs on this node (an execution row is RUNNING only while its task is)
_RUNNING_HERE = (
    select(EXECUTIONS.c.task_id)
    .join(TASKS, TASKS.c.id == EXECUTIONS.c.task_id)
    .where(
        EXECUTIONS.c.state == State.RUNNING.value,
        EXECUTIONS.c.owner_node == bindparam("p_node"),
        TASKS.c.state == State.RUNNING.value,
    )
)
_RUNNING_ANYWHERE = select(TASKS.c.id).where(TASKS.c.state == State.RUNNING.value)
_ADMIT_LOCK = 0x636C61756432  # "claud2": the starts that judge cluster-wide limits
_CONFIGS = select(TASKS.c.id, TASKS.c.config_json).where(
    TASKS.c.id.in_(bindparam("p_ids", expanding=True))
)
_CANDIDATES = (
    in_pick_order(TASKS)
    .add_columns(TASKS.c.reason)
    .limit(bindparam("p_limit"))
    .offset(bindparam("p_offset"))
)
_SET_REASON = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("p_id"), TASKS.c.state == State.QUEUED.value)
    .values(reason=bindparam("p_reason"))
)
FINISH_EXECUTION = update(EXECUTIONS).where(
    EXECUTIONS.c.id == bindparam("p_id"), EXECUTIONS.c.state == State.RUNNING.value
)
_SPEND = (
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "model_usage_json",
)
_LATE_SPEND = (
    update(EXECUTIONS)
    .where(EXECUTIONS.c.id == bindparam("p_id"), EXECUTIONS.c.cost_usd < bindparam("s_cost_usd"))
    .values({k: bindparam(f"s_{k}") for k in _SPEND})
)
