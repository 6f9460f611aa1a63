"""The spool's records (`files`: where each task file stands, per node) and each node's progress
on its git sources (`sources`, `git_versions`): the part of the store the intake and the sources
use. A mixin of `Store`, whose transactions it writes in."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection

from claudomator.state import FINAL_STATES, State
from claudomator.store.reader import source_key
from claudomator.store.schema import EXECUTIONS, FILES, GIT_VERSIONS, SOURCES, TASKS


class SpoolRecords:
    engine: Engine
    node: str  # the node whose spool the records are

    def _begin(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # Store's write transaction

    def add_files(
        self,
        files: Sequence[tuple[str, str, str, str]],
        *,
        provenance_json: str = "{}",
        version: tuple[str, str, str, str] | None = None,
    ) -> bool:
        """Record claims about to happen: (file id, source, relative path, staged name). With
        `version` (source, path, blob, commit) — a git source's copy — the version is claimed in
        the same transaction: False, and nothing recorded, when it was ever claimed before."""
        if not files:
            return True
        now = time.time()
        with self._begin() as conn:
            if version is not None:
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
                        source=source, path=path, blob=blob, commit=commit,
                        file_id=files[0][0], created_at=now,
                    )
                )  # fmt: skip
            conn.execute(
                insert(FILES),
                [
                    {"id": i, "node": self.node, "source": s, "rel_path": r, "folder": "staging",
                     "name": n,
                     "provenance_json": provenance_json, "created_at": now, "updated_at": now}
                    for i, s, r, n in files
                ],
            )  # fmt: skip
        return True

    def drop_files(self, file_ids: Sequence[str]) -> None:
        """Forget claims that did not happen (the file was gone)."""
        if file_ids:
            with self._begin() as conn:
                conn.execute(FILES.delete().where(FILES.c.id.in_(list(file_ids))))

    def set_file(self, file_id: str, **values: Any) -> None:
        with self._begin() as conn:
            conn.execute(
                update(FILES).where(FILES.c.id == file_id).values(updated_at=time.time(), **values)
            )

    def files(self, folders: Iterable[str]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(FILES).where(FILES.c.node == self.node, FILES.c.folder.in_(list(folders)))
            ).mappings()
            return [dict(r) for r in rows]

    def file_task_states(
        self, folders: Iterable[str], file_ids: str | Sequence[str] | None = None
    ) -> dict[str, tuple[str, str, list[tuple[State, int]]]]:
        """This node's files in `folders` (or only `file_ids`): each one's folder, its name
        there, and its tasks' (state, attempts); one query, no execution read."""
        query = (
            select(FILES.c.id, FILES.c.folder, FILES.c.name, TASKS.c.state, TASKS.c.attempts)
            .join(TASKS, TASKS.c.file_id == FILES.c.id)
            .where(FILES.c.node == self.node, FILES.c.folder.in_(list(folders)))
        )
        if isinstance(file_ids, str):
            query = query.where(FILES.c.id == file_ids)
        elif file_ids is not None:
            query = query.where(FILES.c.id.in_(list(file_ids)))
        out: dict[str, tuple[str, str, list[tuple[State, int]]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                entry = out.setdefault(r.id, (r.folder, r.name, []))
                entry[2].append((State(r.state), r.attempts))
        return out

    def files_to_follow(self) -> dict[str, tuple[str, str, list[tuple[State, int]]]]:
        """As `file_task_states`, for the files that may have to move: those in queued/ and
        running/, and those in done/ with a task that is not final (a retry)."""
        reopened = (
            select(FILES.c.id)
            .join(TASKS, TASKS.c.file_id == FILES.c.id)
            .where(
                FILES.c.node == self.node,
                FILES.c.folder == "done",
                TASKS.c.state.in_([s.value for s in State if s not in FINAL_STATES]),
            )
        )
        with self.engine.connect() as conn:
            ids = list(conn.execute(reopened).scalars())
        out = self.file_task_states(("queued", "running"))
        if ids:
            out.update(self.file_task_states(("done",), ids))
        return out

    def done_files(self) -> dict[str, tuple[str, float, float]]:
        """This node's files in done/: each one's name, when its record last changed, and when
        its tasks last did (a result file older than that is stale)."""
        query = (
            select(FILES.c.id, FILES.c.name, FILES.c.updated_at, func.max(TASKS.c.updated_at))
            .join(TASKS, TASKS.c.file_id == FILES.c.id)
            .where(FILES.c.node == self.node, FILES.c.folder == "done")
            .group_by(FILES.c.id, FILES.c.name, FILES.c.updated_at)
        )
        with self.engine.connect() as conn:
            return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(query)}

    def file(self, file_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(FILES).where(FILES.c.id == file_id, FILES.c.node == self.node))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def file_tasks(self, file_id: str) -> list[dict[str, Any]]:
        """The file's tasks, oldest first, each with its executions."""
        with self.engine.connect() as conn:
            tasks = [
                dict(r)
                for r in conn.execute(
                    select(
                        TASKS.c.id, TASKS.c.name, TASKS.c.state, TASKS.c.reason, TASKS.c.attempts
                    )
                    .where(TASKS.c.file_id == file_id)
                    .order_by(TASKS.c.id)
                ).mappings()
            ]
            by_task: dict[str, list[dict[str, Any]]] = {t["id"]: [] for t in tasks}
            if tasks:
                for r in conn.execute(
                    select(EXECUTIONS)
                    .where(EXECUTIONS.c.task_id.in_(list(by_task)))
                    .order_by(EXECUTIONS.c.id)
                ).mappings():
                    by_task[r["task_id"]].append(dict(r))
            for t in tasks:
                t["executions"] = by_task[t["id"]]
            return tasks

    # -- sources ---------------------------------------------------------------------------------

    def source_state(self, name: str) -> dict[str, Any] | None:
        """This node's progress on source `name`: each node walks its own checkout (every version
        is still ingested once cluster-wide, see `add_files`). A row from before nodes existed,
        keyed by the name alone, is the starting point of the node that first reads it."""
        key = source_key(name, self.node)
        with self.engine.connect() as conn:
            rows = {
                r["name"]: dict(r)
                for r in conn.execute(select(SOURCES).where(SOURCES.c.name.in_([key, name])))
                .mappings()
                .all()
            }
        row = rows.get(key) or rows.get(name)
        return {**row, "name": name} if row else None

    def set_source_state(self, name: str, kind: str, **values: Any) -> None:
        key = source_key(name, self.node)
        with self._begin() as conn:
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

    def set_source_path(self, file_id: str, source_path: str) -> None:
        """A renamed task file: its tasks and file row follow the new path."""
        with self._begin() as conn:
            conn.execute(
                update(TASKS).where(TASKS.c.file_id == file_id).values(source_path=source_path)
            )
            conn.execute(update(FILES).where(FILES.c.id == file_id).values(rel_path=source_path))
