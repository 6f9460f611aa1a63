"""Read access to the store of a campaign: the SQLite file of one data dir, or the PostgreSQL
schema several nodes share."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any


class Database:
    """Read access to the store: the SQLite file of one data dir, or a PostgreSQL schema."""

    def __init__(self, sqlite: Path | None = None, url: str = "") -> None:
        self.sqlite, self.url = sqlite, url.replace("+psycopg", "", 1)
        self._pg: Any = None

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of `query`; none while the table does not exist yet."""
        if self.sqlite is not None:
            if not self.sqlite.exists():
                return []
            uri = self.sqlite.as_uri() + "?mode=rw"  # never creates the file
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
                try:
                    return conn.execute(query, params).fetchall()
                except sqlite3.OperationalError as e:
                    if "no such table" in str(e):
                        return []
                    raise
        import psycopg

        if self._pg is None or self._pg.closed:
            self._pg = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        try:
            if params:
                return list(self._pg.execute(query.replace("?", "%s"), params).fetchall())
            return list(self._pg.execute(query).fetchall())
        except psycopg.errors.UndefinedTable:
            return []

    @property
    def pg_port(self) -> int:
        self.rows("SELECT 1")
        return int(self._pg.info.port)

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
