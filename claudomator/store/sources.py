"""The sources and git_versions tables: each node's progress on each git source (the last commit
it ingested, and what is wrong), and every version of a task file a git source ever offered, so
that each is ingested at most once cluster-wide (`record_version`, in the transaction that
records the copy's file).
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from claudomator.store.database import Database
from claudomator.store.reader import source_key
from claudomator.store.schema import GIT_VERSIONS, SOURCES
from claudomator.stored import StoredSource


def record_version(
    conn: Connection, version: tuple[str, str, str, str], file_id: str, now: float
) -> bool:
    """Record a version (source, path, blob, commit) as file `file_id`'s, in the transaction
    `conn`; False, and nothing written, when it was ever recorded before."""
    source, path, blob, commit = version
    seen = conn.execute(
        select(GIT_VERSIONS.c.blob).where(
            GIT_VERSIONS.c.source == source,
            GIT_VERSIONS.c.path == path,
            GIT_VERSIONS.c.blob == blob,
        )
    ).first()
    if seen is not None:
        return False
    conn.execute(
        insert(GIT_VERSIONS).values(
            source=source, path=path, blob=blob, commit=commit, file_id=file_id, created_at=now
        )
    )
    return True


class Sources(Database):
    """The part of `Store` that keeps this node's progress on its git sources."""

    def source_state(self, name: str) -> StoredSource | None:
        """This node's progress on source `name`: each node walks its own checkout (every version
        is still ingested once cluster-wide, see `add_files`). A row from before nodes existed,
        keyed by the name alone, is the starting point of the node that first reads it."""
        key = source_key(name, self.node)
        with self.engine.connect() as conn:
            rows = {
                r["name"]: cast(StoredSource, dict(r))
                for r in conn.execute(select(SOURCES).where(SOURCES.c.name.in_([key, name])))
                .mappings()
                .all()
            }
        row = rows.get(key) or rows.get(name)
        return {**row, "name": name} if row else None

    def set_source_state(self, name: str, kind: str, **values: Any) -> None:
        key = source_key(name, self.node)
        with self.begin() as conn:
            now = time.time()
            updated = conn.execute(
                update(SOURCES).where(SOURCES.c.name == key).values(updated_at=now, **values)
            )
            if updated.rowcount == 0:
                legacy = conn.execute(select(SOURCES).where(SOURCES.c.name == name)).mappings()
                start = {k: v for k, v in (legacy.first() or {}).items() if k in ("last_commit",)}
                conn.execute(
                    insert(SOURCES).values(
                        **{**start, "name": key, "kind": kind, "updated_at": now, **values}
                    )
                )
