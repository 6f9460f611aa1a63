"""The pool state, stored (a `meta` row): paused, why and until when, draining. Stored so that
every process sees it and a restart keeps it; read by the one query `store.sql` declares, which
the light read path runs too.
"""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import insert, update

from claudomator import stored
from claudomator.records import Event
from claudomator.store.database import Database
from claudomator.store.events import write_event
from claudomator.store.schema import META
from claudomator.store.sql import POOL_STATE, pool_state_from


class PoolState(Database):
    """The part of `Store` that keeps the pool state."""

    def pool_state(self) -> stored.PoolState:
        with self.engine.connect() as conn:
            return pool_state_from(conn.exec_driver_sql(POOL_STATE).scalar())

    def set_pool_state(self, **changes: Any) -> tuple[stored.PoolState, Event | None]:
        """Merge `changes` into the pool state; an event when something changed."""
        with self.begin() as conn:
            value = conn.exec_driver_sql(POOL_STATE).scalar()
            state = pool_state_from(value)
            new = cast(stored.PoolState, state | changes)
            if new == state:
                return state, None
            if value is None:
                conn.execute(insert(META).values(key="pool", value=json.dumps(new)))
            else:
                conn.execute(update(META).where(META.c.key == "pool").values(value=json.dumps(new)))
            return new, write_event(conn, "pool.changed", **new)
