"""The dependencies table: `depends_on` resolved to task ids when tasks are recorded, and the one
query of who waits for whom (a task's dependencies with their names and states), which the
service settles PENDING tasks by (`schedule.dependency_verdict`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.engine import Connection

from claudomator.errors import StoreError
from claudomator.state import State
from claudomator.store.database import Database
from claudomator.store.schema import DEPENDENCIES, TASKS
from claudomator.stored import Dependent


class Dependencies(Database):
    """The part of `Store` that resolves and reads `depends_on`."""

    def resolve_name(self, name: str, conn: Connection | None = None) -> str | None:
        """The newest task with that name (what a `depends_on` naming it means)."""
        if conn is not None:
            return conn.execute(_NEWEST, {"p_name": name}).scalar_one_or_none()
        with self.engine.connect() as c:
            return c.execute(_NEWEST, {"p_name": name}).scalar_one_or_none()

    def _resolve(
        self,
        conn: Connection,
        name: str,
        depends_on: Sequence[str],
        in_file: dict[str, str],
    ) -> tuple[list[str], bool]:
        """The ids a new task's `depends_on` names (within its file first, then the newest task of
        that name), and whether it must wait for them: one is new too, or not COMPLETED."""
        ids: list[str] = []
        waiting = False
        for dependency in depends_on:
            found = in_file.get(dependency)
            if found is not None:
                waiting = True  # recorded in this transaction: not COMPLETED yet
            elif (found := self.resolve_name(dependency, conn)) is None:
                raise StoreError(f"task {name!r}: depends_on {dependency!r}: no task has that name")
            ids.append(found)
        waiting = waiting or bool(ids and conn.execute(_UNFINISHED, {"p_ids": ids}).scalar_one())
        return ids, waiting

    @staticmethod
    def _record(conn: Connection, task_id: str, dependency_ids: list[str]) -> None:
        """The rows of a task just inserted (`_resolve`'s ids; a dependency named twice, once)."""
        if dependency_ids:
            conn.execute(
                _INSERT,
                [{"task_id": task_id, "depends_on_id": d} for d in dict.fromkeys(dependency_ids)],
            )

    def dependency_states(self, task_id: str) -> list[tuple[str, State]]:
        """The task's dependencies: each one's name and state."""
        with self.engine.connect() as conn:
            return [(r.name, State(r.state)) for r in conn.execute(_OF_TASK, {"p_task": task_id})]

    def dependents(self, task_id: str) -> list[Dependent]:
        """PENDING tasks waiting for `task_id`, each with its dependencies' names and states."""
        out: dict[str, Dependent] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(_DEPENDENTS, {"p_task": task_id}):
                dependent = out.setdefault(
                    r.task_id, {"id": r.task_id, "held": bool(r.held), "dependencies": []}
                )
                dependent["dependencies"].append((r.name, State(r.state)))
        return list(out.values())

    def waiting_dependents(self) -> dict[str, list[tuple[str, State]]]:
        """Every PENDING task waiting for dependencies (not held for `run`), with its
        dependencies' names and states: one query, for settling what a crash left waiting."""
        out: dict[str, list[tuple[str, State]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(_WAITING):
                out.setdefault(r.task_id, []).append((r.name, State(r.state)))
        return out


_NEWEST = (
    select(TASKS.c.id)
    .where(TASKS.c.name == bindparam("p_name"))
    .order_by(TASKS.c.id.desc())
    .limit(1)
)
_UNFINISHED = (
    select(func.count())
    .select_from(TASKS)
    .where(
        TASKS.c.id.in_(bindparam("p_ids", expanding=True)),
        TASKS.c.state != State.COMPLETED.value,
    )
)
_INSERT = insert(DEPENDENCIES)

# The one query of who waits for whom: (task id, a dependency's name and state) per dependency,
# narrowed to one task, to the dependents of one task, or to every task still waiting.
_DEPENDENCY = TASKS.alias("dependency")
_EDGES = select(DEPENDENCIES.c.task_id, _DEPENDENCY.c.name, _DEPENDENCY.c.state).join(
    _DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.depends_on_id
)
_ORDER = (DEPENDENCIES.c.task_id, DEPENDENCIES.c.depends_on_id)
_OF_TASK = _EDGES.where(DEPENDENCIES.c.task_id == bindparam("p_task")).order_by(*_ORDER)
_PENDING = _EDGES.join(TASKS, TASKS.c.id == DEPENDENCIES.c.task_id).where(
    TASKS.c.state == State.PENDING.value
)
_WAITS = DEPENDENCIES.alias("waits")  # the dependent's edge to the task it waits for
_DEPENDENTS = (
    _PENDING.add_columns(TASKS.c.held)
    .join(
        _WAITS,
        (_WAITS.c.task_id == DEPENDENCIES.c.task_id)
        & (_WAITS.c.depends_on_id == bindparam("p_task")),
    )
    .order_by(*_ORDER)
)
_WAITING = _PENDING.where(TASKS.c.held.is_(False)).order_by(*_ORDER)
