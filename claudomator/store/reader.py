"""The read path: plain SQL over a DB-API connection, no SQLAlchemy import.

The CLI's `list` and `status` use it so that they start fast: stdlib sqlite3 for the SQLite file,
psycopg (imported only then) for a PostgreSQL URL. The SQL is the same on both, written with `?`
placeholders, which become `%s` for psycopg. A data dir without a database (or a PostgreSQL
database without the schema) answers empty rather than fail.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from claudomator.config_values import is_postgresql_url, mask_url
from claudomator.errors import StoreError
from claudomator.records import (
    Event,
    Execution,
    Node,
    NodeRunning,
    Running,
    Status,
    Task,
    TaskDetail,
)
from claudomator.store.figures import Figures
from claudomator.store.rows import (
    EXECUTION_COLUMNS,
    TASK_COLUMNS,
    execution_json,
    iso,
    node_json,
    task_detail,
    task_json,
)
from claudomator.store.sql import (
    POOL_STATE,
    SCHEMA_VERSION,
    STORED_VERSION,
    clock,
    pool_state_from,
    tagged,
    task_cost,
)
from claudomator.stored import PoolState, StoredSource

_COST = task_cost("t")


def source_key(name: str, node: str) -> str:
    """The `sources` row of one node's progress on a source ("@" cannot be in a source name)."""
    return f"{name}@{node}" if node else name


def start_of_today() -> float:
    """Local midnight, as epoch seconds: the daily budget follows the local day."""
    now = datetime.now().astimezone()
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Reader(Figures):
    """Reads tasks, executions, counts and spend straight from the database: a SQLite file or a
    PostgreSQL URL."""

    def __init__(self, location: Path | str) -> None:
        self.postgresql = is_postgresql_url(location)
        self.path = Path(location) if not self.postgresql else None
        self._url = "postgresql://" + str(location).split("://", 1)[1] if self.postgresql else ""
        self._conn: Any = None  # sqlite3.Connection or psycopg.Connection

    def _connect_postgresql(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(self._url, autocommit=True, row_factory=dict_row)
        except psycopg.Error as e:
            raise StoreError(f"{mask_url(self._url)}: cannot connect: {e}") from e
        try:
            conn.execute("SELECT 1 FROM tasks LIMIT 1")
        except psycopg.Error as e:
            conn.close()
            if isinstance(e, psycopg.errors.UndefinedTable):
                return None  # the schema is not there yet: nothing to read
            raise StoreError(f"{mask_url(self._url)}: {e}") from e
        self._conn = conn
        return conn

    def _connect(self) -> Any:
        if self.path is None:
            return self._connect_postgresql()
        if self._conn is None:
            if not self.path.exists():
                return None
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            try:
                conn.execute("SELECT 1 FROM tasks LIMIT 1")
            except sqlite3.OperationalError:  # created but never migrated: nothing to read
                conn.close()
                return None
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows by column name (sqlite3.Row, or a dict from psycopg)."""
        conn = self._connect()
        if conn is None:
            return []
        if self.postgresql:
            import psycopg

            try:
                with conn.cursor() as cur:
                    cur.execute(sql.replace("?", "%s"), params)  # no literal ? or % in our SQL
                    return list(cur.fetchall())
            except psycopg.OperationalError as e:  # the server went away: reconnect next time
                conn.close()
                raise StoreError(f"{mask_url(self._url)}: {e}") from e
        with closing(conn.execute(sql, params)) as cur:
            return list(cur.fetchall())

    def list_tasks(
        self,
        *,
        state: str | None = None,
        tag: str | None = None,
        priority: str | None = None,
        search: str | None = None,
        limit: int | None = 50,
        before_id: str | None = None,
        ids: Sequence[str] | None = None,
        dispatcher: str | None = None,
    ) -> list[Task]:
        """Tasks newest first, filtered; `before_id` pages (ids sort by creation time)."""
        where: list[str] = []
        params: list[Any] = []
        if state:
            where.append("t.state = ?")
            params.append(state)
        if tag:
            where.append("t.tags_json LIKE ? ESCAPE '\\'")
            params.append(tagged(tag))  # as tags_json holds it: JSON, non-ASCII escaped
        if priority:
            where.append("t.priority = ?")
            params.append(priority)
        if search:
            where.append("LOWER(t.name) LIKE ? ESCAPE '\\'")
            params.append("%" + _like_escape(search.lower()) + "%")
        if before_id:
            where.append("t.id < ?")
            params.append(before_id)
        if dispatcher is not None:
            where.append("t.dispatcher = ?")
            params.append(dispatcher)
        if ids is not None:
            if not ids:
                return []
            where.append(f"t.id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        sql = f"SELECT {TASK_COLUMNS}, {_COST} AS cost FROM tasks t"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY t.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [task_json(r, r["cost"]) for r in self._rows(sql, params)]

    def task(self, task_id: str) -> TaskDetail | None:
        """One task with its executions, oldest first."""
        rows = self._rows(
            f"SELECT {TASK_COLUMNS}, {_COST} AS cost FROM tasks t WHERE t.id = ?", [task_id]
        )
        if not rows:
            return None
        executions = [
            execution_json(r)
            for r in self._rows(
                f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE task_id = ? ORDER BY id",
                [task_id],
            )
        ]
        detail = task_detail(rows[0], rows[0]["cost"], executions)
        detail["batch"] = self._batch(task_id)
        return detail

    def execution(self, execution_id: str) -> Execution | None:
        rows = self._rows(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?", [execution_id]
        )
        return execution_json(rows[0]) if rows else None

    def latest_execution(self, task_id: str) -> Execution | None:
        rows = self._rows(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE task_id = ? ORDER BY id DESC LIMIT 1",
            [task_id],
        )
        return execution_json(rows[0]) if rows else None

    def status(
        self,
        *,
        daily_budget_usd: float,
        slots: int,
        tag_budgets: Sequence[tuple[str, float]] = (),
    ) -> Status:
        """What `claudomator status` and `GET /api/status` show: counts by state, running tasks,
        today's spend (local day) against the budget, the pool (paused, why, until when; the
        slots of every live node, else `slots`) and the nodes."""
        from claudomator.schedule import pool_gate
        from claudomator.state import State

        running = self.running()
        nodes = self.nodes(running)
        live = [n for n in nodes if n["state"] == "up" and not n["expired"]]
        if live:  # the cluster's slots, this node's among them
            slots = sum(n["slots"] for n in live)
        spent = self.cost_since(start_of_today())
        state = self.pool_state()
        gate = pool_gate(state, now=time.time(), spent_today=spent, daily_budget=daily_budget_usd)
        return {
            "counts": {s.value: 0 for s in State} | self.counts(),
            "running": running,
            "cost_today_usd": round(spent, 10),
            "daily_budget_usd": daily_budget_usd or None,
            "pool": {
                "paused": not gate.open,
                "reason": gate.reason,
                "until": iso(gate.until),
                "draining": bool(state.get("draining")),
                "slots": slots,
                "busy": len(running),
            },
            "nodes": nodes,
            "tag_budgets": self.tag_spend(tag_budgets, start_of_today()),
        }

    def pool_state(self) -> PoolState:
        rows = self._rows(POOL_STATE)
        return pool_state_from(rows[0]["value"] if rows else None)

    def name_exists(self, name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM tasks WHERE name = ? LIMIT 1", [name]))

    def counts(self) -> dict[str, int]:
        rows = self._rows("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def running(self) -> list[Running]:
        rows = self._rows(
            "SELECT e.id, e.task_id, t.name, e.started_at, e.cost_usd, e.owner_host, e.owner_pid, "
            "e.owner_node FROM executions e JOIN tasks t ON t.id = e.task_id "
            "WHERE e.state = 'RUNNING' ORDER BY e.id"
        )
        now = time.time()
        return [
            {
                "execution_id": r["id"],
                "task_id": r["task_id"],
                "name": r["name"],
                "elapsed_s": round(now - r["started_at"], 1),
                "cost_usd": r["cost_usd"],
                "owner": {"host": r["owner_host"], "pid": r["owner_pid"], "node": r["owner_node"]},
            }
            for r in rows
        ]

    def schema_version(self) -> int | None:
        """The schema version the database says it has (None: no database or schema yet)."""
        rows = self._rows(STORED_VERSION)
        return int(rows[0]["value"]) if rows else None

    def outdated(self) -> bool:
        """Whether the database has an older schema than this reader reads (migrate it first)."""
        version = self.schema_version()
        return version is not None and version < SCHEMA_VERSION

    def clock(self) -> float:
        """The database's time: leases are judged by it (the hosts' clocks may differ). A SQLite
        file's clock is this host's: no query."""
        if not self.postgresql:
            return time.time()
        rows = self._rows(f"SELECT {clock(True)} AS now")
        return float(rows[0]["now"]) if rows else time.time()

    def nodes(self, running: list[Running] | None = None) -> list[Node]:
        """Every node that ever ran here, live ones first, each with what it runs now."""
        now = self.clock()
        by_node: dict[str, list[NodeRunning]] = {}
        for r in self.running() if running is None else running:
            by_node.setdefault(r["owner"]["node"], []).append(
                {"task_id": r["task_id"], "name": r["name"], "execution_id": r["execution_id"]}
            )
        rows = self._rows(
            "SELECT id, kind, host, pid, state, slots, heartbeat_at, heartbeat_s, lease_s, "
            "started_at, stopped_at, data_dir, version FROM nodes "
            "ORDER BY CASE state WHEN 'up' THEN 0 WHEN 'lost' THEN 1 ELSE 2 END, id"
        )
        return [node_json(r, by_node.get(r["id"], []), now) for r in rows]

    def sources(self) -> list[StoredSource]:
        """Each source's progress: the last commit ingested and what is wrong."""
        return [
            cast(StoredSource, dict(r))
            for r in self._rows(
                "SELECT name, kind, last_commit, error, updated_at FROM sources ORDER BY name"
            )
        ]

    def events_after(self, after: int, limit: int = 1000) -> Iterator[Event]:
        import json

        for r in self._rows(
            "SELECT id, at, type, task_id, execution_id, data_json FROM events WHERE id > ? "
            "ORDER BY id LIMIT ?",
            [after, limit],
        ):
            event: Event = {
                "id": r["id"],
                "at": r["at"],
                "type": r["type"],
                "task_id": r["task_id"],
                "execution_id": r["execution_id"],
            }
            yield cast(Event, event | json.loads(r["data_json"]))
