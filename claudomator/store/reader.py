"""The read path: plain SQL over a DB-API connection (stdlib sqlite3), no SQLAlchemy import.

The CLI's `list` and `status` use it so that they start fast; a data dir without a database
answers empty rather than fail.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from claudomator.store.rows import EXECUTION_COLUMNS, TASK_COLUMNS, execution_json, iso, task_json

_COST = "(SELECT COALESCE(SUM(e.cost_usd), 0) FROM executions e WHERE e.task_id = t.id)"


def start_of_today() -> float:
    """Local midnight, as epoch seconds: the daily budget follows the local day."""
    now = datetime.now().astimezone()
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Reader:
    """Reads tasks, executions, counts and spend straight from the database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
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

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        conn = self._connect()
        if conn is None:
            return []
        with closing(conn.execute(sql, params)) as cur:
            return cur.fetchall()

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
    ) -> list[dict[str, Any]]:
        """Tasks newest first, filtered; `before_id` pages (ids sort by creation time)."""
        where: list[str] = []
        params: list[Any] = []
        if state:
            where.append("t.state = ?")
            params.append(state)
        if tag:
            where.append("t.tags_json LIKE ? ESCAPE '\\'")
            params.append('%"' + _like_escape(tag.replace('"', '\\"')) + '"%')
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

    def task(self, task_id: str) -> dict[str, Any] | None:
        """One task with its executions, oldest first."""
        rows = self._rows(
            f"SELECT {TASK_COLUMNS}, {_COST} AS cost FROM tasks t WHERE t.id = ?", [task_id]
        )
        if not rows:
            return None
        data = task_json(rows[0], rows[0]["cost"], full=True)
        data["executions"] = [
            execution_json(r)
            for r in self._rows(
                f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE task_id = ? ORDER BY id",
                [task_id],
            )
        ]
        return data

    def execution(self, execution_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?", [execution_id]
        )
        return execution_json(rows[0]) if rows else None

    def latest_execution(self, task_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE task_id = ? ORDER BY id DESC LIMIT 1",
            [task_id],
        )
        return execution_json(rows[0]) if rows else None

    def status(self, *, daily_budget_usd: float, slots: int) -> dict[str, Any]:
        """What `claudomator status` and `GET /api/status` show: counts by state, running tasks,
        today's spend (local day) against the budget, and the pool (paused, why, until when)."""
        from claudomator.schedule import pool_gate
        from claudomator.state import State

        running = self.running()
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
        }

    def pool_state(self) -> dict[str, Any]:
        import json

        rows = self._rows("SELECT value FROM meta WHERE key = 'pool'")
        return dict(json.loads(rows[0][0])) if rows else {}

    def name_exists(self, name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM tasks WHERE name = ? LIMIT 1", [name]))

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._rows("SELECT state, COUNT(*) FROM tasks GROUP BY state")}

    def running(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT e.id, e.task_id, t.name, e.started_at, e.cost_usd, e.owner_host, e.owner_pid "
            "FROM executions e JOIN tasks t ON t.id = e.task_id WHERE e.state = 'RUNNING' "
            "ORDER BY e.id"
        )
        now = time.time()
        return [
            {
                "execution_id": r["id"],
                "task_id": r["task_id"],
                "name": r["name"],
                "elapsed_s": round(now - r["started_at"], 1),
                "cost_usd": r["cost_usd"],
                "owner": {"host": r["owner_host"], "pid": r["owner_pid"]},
            }
            for r in rows
        ]

    def cost_since(self, since: float) -> float:
        rows = self._rows(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM executions WHERE started_at >= ?", [since]
        )
        return float(rows[0][0]) if rows else 0.0

    def events_after(self, after: int, limit: int = 1000) -> Iterator[dict[str, Any]]:
        import json

        for r in self._rows(
            "SELECT id, at, type, task_id, execution_id, data_json FROM events WHERE id > ? "
            "ORDER BY id LIMIT ?",
            [after, limit],
        ):
            yield {
                "id": r["id"],
                "at": r["at"],
                "type": r["type"],
                "task_id": r["task_id"],
                "execution_id": r["execution_id"],
                **json.loads(r["data_json"]),
            }
