"""The nodes table: who executes tasks, their leases, and the executions of nodes found lost.

Every statement judges time by the database's clock (`Database.now_sql`), so nodes whose own
clocks differ still agree on whose lease has expired (`lease_expired`, which starting a task also checks).
Marking a node lost is a compare-and-set on its row: of several nodes noticing at once, one wins
and writes the `node.lost` event. `Nodes` is a part apart from `Store`, over the database's public
face: its write transaction, its engine and its clock.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import insert, select, update

from claudomator.records import Event
from claudomator.state import State
from claudomator.store.database import Database
from claudomator.store.events import write_event
from claudomator.store.schema import EXECUTIONS, FILES, NODES, TASKS
from claudomator.stored import LostExecution, StoredNode

UP, STOPPED, LOST = "up", "stopped", "lost"


def lease_expired(now: Any) -> Any:
    """Whether a node's lease has run out by `now` (the database's clock, as SQL)."""
    return NODES.c.heartbeat_at + NODES.c.lease_s < now


class Nodes:
    def __init__(self, store: Database) -> None:
        self.store = store
        now = store.now_sql
        self._expired = lease_expired(now)
        self._now = now

    def clock(self) -> float:
        """The database's time now (epoch seconds)."""
        with self.store.engine.connect() as conn:
            return float(conn.execute(select(self._now)).scalar_one())

    def get(self, node_id: str) -> StoredNode | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(NODES).where(NODES.c.id == node_id)).mappings().first()
        return cast(StoredNode, dict(row)) if row else None

    def register(self, node_id: str, **fields: Any) -> Event:
        """This process is node `node_id` now (state up, a fresh lease); the caller decided it may
        take the id (see `node.may_take`)."""
        with self.store.begin() as conn:
            values = {
                **fields,
                "state": UP,
                "started_at": self._now,
                "heartbeat_at": self._now,
                "stopped_at": None,
            }
            if not conn.execute(
                update(NODES).where(NODES.c.id == node_id).values(**values)
            ).rowcount:
                conn.execute(insert(NODES).values(id=node_id, **values))
            return write_event(conn, "node.up", node=node_id, kind=fields.get("kind", ""))

    def heartbeat(self, node_id: str, pid: int, process_started: float) -> bool:
        """Renew the lease; False when this process no longer holds it (marked lost, or the id
        was taken over by another process)."""
        with self.store.begin() as conn:
            result = conn.execute(
                update(NODES)
                .where(
                    NODES.c.id == node_id,
                    NODES.c.state == UP,
                    NODES.c.pid == pid,
                    NODES.c.process_started == process_started,
                )
                .values(heartbeat_at=self._now)
            )
            return result.rowcount == 1

    def stop(self, node_id: str, pid: int) -> Event | None:
        """A clean exit: a `serve` node's row stays (stopped); a `run`'s row goes (each `run` is
        a node of its own only while it runs)."""
        with self.store.begin() as conn:
            mine = (NODES.c.id == node_id, NODES.c.state == UP, NODES.c.pid == pid)
            kind = conn.execute(select(NODES.c.kind).where(*mine)).scalar()
            if kind is None:
                return None
            if kind == "run":
                conn.execute(NODES.delete().where(*mine))
            else:
                conn.execute(update(NODES).where(*mine).values(state=STOPPED, stopped_at=self._now))
            return write_event(conn, "node.stopped", node=node_id, kind=kind)

    def expired(self) -> tuple[list[str], bool]:
        """Nodes still marked up whose lease has run out, and whether any node is lost: one
        query, every second on every node."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(NODES.c.id, NODES.c.state).where(
                    (NODES.c.state == LOST) | ((NODES.c.state == UP) & self._expired)
                )
            ).all()
        return [r.id for r in rows if r.state == UP], any(r.state == LOST for r in rows)

    def mark_lost(self, node_id: str) -> Event | None:
        """Up → lost, only if its lease is still expired (it may have just renewed it)."""
        with self.store.begin() as conn:
            row = conn.execute(
                update(NODES)
                .where(NODES.c.id == node_id, NODES.c.state == UP, self._expired)
                .values(state=LOST)
                .returning(NODES.c.kind, NODES.c.host, NODES.c.pid, NODES.c.heartbeat_at)
            ).first()
            if row is None:
                return None
            return write_event(
                conn,
                "node.lost",
                node=node_id,
                kind=row.kind,
                host=row.host,
                pid=row.pid,
                heartbeat_at=row.heartbeat_at,
            )

    def lost_executions(self) -> list[LostExecution]:
        """RUNNING executions whose node is lost: they end FAILED `node lost`."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(EXECUTIONS.c.id, EXECUTIONS.c.task_id, EXECUTIONS.c.owner_node)
                .join(NODES, NODES.c.id == EXECUTIONS.c.owner_node)
                .where(EXECUTIONS.c.state == State.RUNNING.value, NODES.c.state == LOST)
            ).mappings()
            return [cast(LostExecution, dict(r)) for r in rows]

    def execution_owner(self, execution_id: str) -> str | None:
        with self.store.engine.connect() as conn:
            query = select(EXECUTIONS.c.owner_node).where(EXECUTIONS.c.id == execution_id)
            return conn.execute(query).scalar()

    def lost_runs(self) -> list[str]:
        """`run` processes found lost that still hold tasks not started."""
        with self.store.engine.connect() as conn:
            query = (
                select(NODES.c.id)
                .join(TASKS, TASKS.c.dispatcher == NODES.c.id)
                .where(
                    NODES.c.state == LOST,
                    NODES.c.kind == "run",
                    TASKS.c.state.in_([State.PENDING.value, State.QUEUED.value]),
                )
                .distinct()
            )
            return list(conn.execute(query).scalars())

    def adopt_files(self, node_id: str) -> None:
        """Spool records written before nodes existed belong to the first node of the data dir."""
        with self.store.begin() as conn:
            conn.execute(update(FILES).where(FILES.c.node == "").values(node=node_id))
