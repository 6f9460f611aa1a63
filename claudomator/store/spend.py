"""Money spent, by the scope of a limit: a tag's today (`budget.tags`), a batch's (its
`budget_usd`). Read in one short transaction each, on both databases; the daily total is the
light reader's (`store.reader.Reader.cost_since`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, func, select

from claudomator.store.database import Database
from claudomator.store.schema import EXECUTIONS, TASKS
from claudomator.store.sql import tagged

_BY_TAG = (
    select(func.coalesce(func.sum(EXECUTIONS.c.cost_usd), 0.0))
    .join(TASKS, TASKS.c.id == EXECUTIONS.c.task_id)
    .where(
        EXECUTIONS.c.started_at >= bindparam("p_since"),
        TASKS.c.tags_json.like(bindparam("p_tag"), escape="\\"),
    )
)
_BY_BATCH = (
    select(func.coalesce(func.sum(EXECUTIONS.c.cost_usd), 0.0))
    .join(TASKS, TASKS.c.id == EXECUTIONS.c.task_id)
    .where(TASKS.c.batch_id == bindparam("p_batch"))
)


class Spend(Database):
    """The part of `Store` that sums spend by scope."""

    def spent_by_tag(self, tags: Iterable[str], since: float) -> dict[str, float]:
        """What the executions started since `since` of the tasks with each tag cost."""
        with self.engine.connect() as conn:
            return {
                tag: float(
                    conn.execute(_BY_TAG, {"p_since": since, "p_tag": tagged(tag)}).scalar() or 0
                )
                for tag in tags
            }

    def spent_by_batch(self, batch_id: str) -> float:
        with self.engine.connect() as conn:
            return float(conn.execute(_BY_BATCH, {"p_batch": batch_id}).scalar() or 0.0)
