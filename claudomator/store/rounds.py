"""An attempt's later executions: the one before (what a retry resumes), a session resumed
(kept at once), and a verify round's end with the next round's start in one transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy import bindparam, select, update

from claudomator.records import Event
from claudomator.state import State
from claudomator.store.events import write_event
from claudomator.store.executions import FINISH_EXECUTION, STARTED_COLUMNS, Executions
from claudomator.store.schema import EXECUTIONS, TASKS
from claudomator.stored import ExecutionEnd, PreviousExecution, Started, StartedTask


class Rounds(Executions):
    """The part of `Store` that chains an attempt's executions."""

    def previous_execution(self, task_id: str, execution_id: str) -> PreviousExecution | None:
        """The task's execution before `execution_id`: what a retry may resume."""
        with self.engine.connect() as conn:
            row = conn.execute(_PREVIOUS, {"p_task": task_id, "p_id": execution_id}).first()
            return cast(PreviousExecution, dict(row._mapping)) if row is not None else None

    def resuming(self, execution_id: str, session_id: str, resumed_from: str) -> None:
        """A running execution resumes `session_id` (of execution `resumed_from`; "": it began a
        fresh session `session_id` after all): kept at once, so that a crash cannot lose it."""
        with self.begin() as conn:
            conn.execute(
                _RESUMING,
                {"p_id": execution_id, "p_session": session_id, "p_from": resumed_from},
            )

    def next_round(
        self,
        execution_id: str,
        task_id: str,
        *,
        state: State,
        reason: str,
        end: ExecutionEnd,
        progress: Sequence[tuple[str, str, str, dict[str, Any]]],
        executions_dir: Path,
        task_reason: str,
        **values: Any,
    ) -> tuple[list[Event], Started] | None:
        """Record how a verify round's execution ended and start the next round's, its task
        RUNNING throughout with `task_reason`, in one transaction: its last progress events and
        the new execution. None when the execution was already final (this node was found
        lost): the task is another's now."""
        with self.begin() as conn:
            finished = conn.execute(
                FINISH_EXECUTION,
                {
                    "p_id": execution_id,
                    "state": state.value,
                    "reason": reason,
                    "finished_at": time.time(),
                    **end.columns(),
                },
            )
            if finished.rowcount != 1:
                return None
            events = [write_event(conn, t, task, ex, **data) for t, task, ex, data in progress]
            params = {"p_id": task_id, "p_reason": task_reason, "p_now": time.time()}
            row = conn.execute(_STILL_RUNNING, params).first()
            if row is None:
                return None
            task = cast(StartedTask, {"id": task_id, **row._mapping})
            return events, self._started(conn, task, executions_dir, values, task_reason)


_PREVIOUS = (
    select(
        EXECUTIONS.c.id,
        EXECUTIONS.c.state,
        EXECUTIONS.c.reason,
        EXECUTIONS.c.session_id,
        EXECUTIONS.c.owner_host,
    )
    .where(EXECUTIONS.c.task_id == bindparam("p_task"), EXECUTIONS.c.id < bindparam("p_id"))
    .order_by(EXECUTIONS.c.id.desc())
    .limit(1)
)
_RESUMING = (
    update(EXECUTIONS)
    .where(EXECUTIONS.c.id == bindparam("p_id"), EXECUTIONS.c.state == State.RUNNING.value)
    .values(session_id=bindparam("p_session"), resumed_from=bindparam("p_from"))
)
# a task between two verify rounds: RUNNING still, its reason saying why another round runs
_STILL_RUNNING = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("p_id"), TASKS.c.state == State.RUNNING.value)
    .values(reason=bindparam("p_reason"), updated_at=bindparam("p_now"))
    .returning(*STARTED_COLUMNS)
)
