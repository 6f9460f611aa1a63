"""The tasks table: recording a file's tasks, every state change as a compare-and-set with its
event, the pick of the next QUEUED tasks, and who may dispatch a task (its `run`, or any server).

Each state change is an `UPDATE … WHERE id = ? AND state IN (…)` checked against the transition
table and written with its event in one transaction; callers publish the returned events only
after the commit. What the event needs of the task (name, attempts, file, cost so far) comes back
from the UPDATE's RETURNING, not from another read.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Float, bindparam, insert, literal_column, select, update
from sqlalchemy.engine import Connection

from claudomator.errors import TransitionError
from claudomator.ids import new_id
from claudomator.records import Event
from claudomator.state import State, valid_transition
from claudomator.store.dependencies import Dependencies
from claudomator.store.events import event_type, write_event
from claudomator.store.schema import TASKS
from claudomator.store.sql import task_cost
from claudomator.stored import StoredTask


@dataclass(frozen=True)
class NewTask:
    """A task to record: its spec as JSON plus where it came from."""

    name: str
    spec_json: str
    priority: str
    priority_rank: int
    tags: list[str]
    depends_on: list[str]
    retry_json: str
    source: str
    source_path: str
    held: bool = False  # PENDING until `run`
    dispatcher: str = ""
    provenance_json: str = "{}"
    batch_budget_usd: float = 0.0  # its batch's budget_usd (0: none), the batch's tasks together


class Tasks(Dependencies):
    """The part of `Store` that writes tasks and moves them between states."""

    aging_s = 600.0  # a waiting task rises one priority level per aging interval

    def add_tasks(
        self, tasks: Sequence[NewTask], file_id: str = ""
    ) -> tuple[list[str], list[Event]]:
        """Record the tasks of one file in one transaction."""
        with self.begin() as conn:
            return self._insert_tasks(conn, tasks, file_id)

    def _insert_tasks(
        self, conn: Connection, tasks: Sequence[NewTask], file_id: str
    ) -> tuple[list[str], list[Event]]:
        """`depends_on` resolves within the file first, then to the newest task of that name. A
        task is QUEUED unless held or waiting for dependencies that have not COMPLETED (PENDING)."""
        ids = [new_id() for _ in tasks]
        in_file = {t.name: i for t, i in zip(tasks, ids, strict=True)}
        events: list[Event] = []
        now = time.time()
        extra = {"file_id": file_id} if file_id else {}
        # a batch with a budget is its first task's id on each of its tasks
        batch = ids[0] if any(t.batch_budget_usd for t in tasks) else ""
        for task, task_id in zip(tasks, ids, strict=True):
            dep_ids, waiting = self._resolve(conn, task.name, task.depends_on, in_file)
            state = State.PENDING if task.held or waiting else State.QUEUED
            conn.execute(
                _INSERT_TASK,
                {
                    "id": task_id,
                    "name": task.name,
                    "state": state.value,
                    "priority": task.priority,
                    "priority_rank": task.priority_rank,
                    "held": task.held,
                    "config_json": task.spec_json,
                    "retry_json": task.retry_json,
                    "tags_json": json.dumps(task.tags),
                    "depends_on_json": json.dumps(task.depends_on),
                    "depends_on_ids_json": json.dumps(dep_ids),
                    "source": task.source,
                    "source_path": task.source_path,
                    "provenance_json": task.provenance_json,
                    "file_id": file_id,
                    "batch_id": batch,
                    "batch_budget_usd": task.batch_budget_usd,
                    "dispatcher": task.dispatcher,
                    "sort_key": now + task.priority_rank * self.aging_s,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            self._record(conn, task_id, dep_ids)
            events.append(
                write_event(
                    conn, "task.created", task_id, name=task.name, state=state.value, **extra
                )
            )
            if state is State.QUEUED:
                events.append(
                    write_event(
                        conn, "task.queued", task_id, name=task.name, state=state.value, **extra
                    )
                )
        return ids, events

    def task_row(self, task_id: str) -> StoredTask | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(TASKS).where(TASKS.c.id == task_id)).mappings().first()
        return cast(StoredTask, dict(row)) if row else None

    def transition(
        self,
        task_id: str,
        to: State,
        *,
        expect: Iterable[State],
        reason: str = "",
        **values: Any,
    ) -> Event | None:
        """Compare-and-set: move the task to `to` only if it is in one of `expect` (and the table
        allows it). Returns the event, or None when the task was not in an expected state."""
        with self.begin() as conn:
            return self._cas(conn, task_id, to, expect, reason, values)

    def _cas(
        self,
        conn: Connection,
        task_id: str,
        to: State,
        expect: Iterable[State],
        reason: str,
        values: dict[str, Any],
        execution_id: str = "",
    ) -> Event | None:
        """`transition` within the transaction `conn`; `execution_id` names the execution the
        change is of on its event."""
        allowed = [s.value for s in expect if valid_transition(s, to)]
        if not allowed:
            raise TransitionError(f"task {task_id}: no allowed transition to {to.value}")
        now = time.time()
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(p_id=task_id, p_allowed=allowed, p_to=to.value, p_reason=reason, p_now=now)
        params["p_aging"] = self.aging_s
        statement = _cas_statement(tuple(sorted(values)), to is State.QUEUED)
        row = conn.execute(statement, params).first()
        if row is None:
            return None
        return task_event(conn, to, task_id, row._mapping, reason, values, execution_id)

    def pick(self, limit: int, now: float, dispatcher: str = "") -> list[str]:
        """QUEUED tasks for `dispatcher` whose back-off has passed, in priority order with aging
        (high before normal before low, oldest first; a task waiting long enough rises)."""
        with self.engine.connect() as conn:
            params = {"p_dispatcher": dispatcher, "p_now": now, "p_limit": limit}
            return list(conn.execute(PICK, params).scalars())

    def release_dispatcher(self, dispatcher: str) -> None:
        """Tasks of a `run` that is gone: the servers may have them now."""
        with self.begin() as conn:
            conn.execute(
                update(TASKS).where(TASKS.c.dispatcher == dispatcher).values(dispatcher="")
            )

    def dispatchers(self) -> list[str]:
        """`run` processes that hold tasks not started yet."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(TASKS.c.dispatcher)
                    .where(
                        TASKS.c.dispatcher != "",
                        TASKS.c.state.in_([State.PENDING.value, State.QUEUED.value]),
                    )
                    .distinct()
                ).scalars()
            )

    def release_hold(self, task_id: str) -> None:
        with self.begin() as conn:
            conn.execute(update(TASKS).where(TASKS.c.id == task_id).values(held=False))


def task_event(
    conn: Connection,
    to: State,
    task_id: str,
    row: Any,
    reason: str,
    values: dict[str, Any],
    execution_id: str = "",
    node: str = "",
) -> Event:
    """The event of a task entering `to` (`row`: its columns as updated, with its cost)."""
    return write_event(
        conn,
        event_type(to),
        task_id,
        execution_id,
        name=row["name"],
        state=to.value,
        reason=reason,
        attempts=row["attempts"],
        cost_usd=round(float(row["cost"]), 10),
        **({"not_before": values["not_before"]} if values.get("not_before") else {}),
        **({"file_id": row["file_id"]} if row["file_id"] else {}),
        **({"node": node} if node else {}),
    )


def in_pick_order(tasks: Any) -> Any:
    """QUEUED tasks of a dispatcher whose back-off has passed, in priority order with aging."""
    return (
        select(tasks.c.id)
        .where(
            tasks.c.state == State.QUEUED.value,
            tasks.c.dispatcher == bindparam("p_dispatcher"),
            tasks.c.not_before <= bindparam("p_now"),
        )
        .order_by(tasks.c.sort_key)
        .limit(bindparam("p_limit"))
    )


PICK = in_pick_order(TASKS)
_INSERT_TASK = insert(TASKS)
# what a state change returns for its event: the task's cost so far without another read (the
# reader's definition, `sql.task_cost`; `tasks.id` spelled out, as SQLite's RETURNING is rendered
# unqualified, where `id` would be the executions' id)
CHANGED = (
    TASKS.c.name,
    TASKS.c.attempts,
    TASKS.c.file_id,
    literal_column(task_cost("tasks"), Float).label("cost"),
)


@functools.cache
def _cas_statement(keys: tuple[str, ...], queued: bool) -> Any:
    """The compare-and-set UPDATE for one shape of change, built once: hot paths then skip
    SQLAlchemy's statement construction and hit its compiled cache."""
    values: dict[str, Any] = {
        "state": bindparam("p_to"),
        "reason": bindparam("p_reason"),
        "updated_at": bindparam("p_now"),
        **{k: bindparam(f"v_{k}") for k in keys},
    }
    if queued:  # a waiting task rises one priority level per aging interval
        values["sort_key"] = TASKS.c.priority_rank * bindparam("p_aging") + bindparam("p_now")
    return (
        update(TASKS)
        .where(
            TASKS.c.id == bindparam("p_id"),
            TASKS.c.state.in_(bindparam("p_allowed", expanding=True)),
        )
        .values(**values)
        .returning(*CHANGED)
    )
