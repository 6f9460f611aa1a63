"""The files table: where each task file of a node's spool stands (staging, queued, running, done,
rejected), recorded before the claim that moves it and changed with its tasks' states, so that the
folders mirror the store (`claudomator.mirror`) and a crash between the two is repaired at start.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import bindparam, func, insert, select, update

from claudomator.records import Event
from claudomator.state import FINAL_STATES, State
from claudomator.store.schema import EXECUTIONS, FILES, TASKS
from claudomator.store.sources import record_version
from claudomator.store.tasks import NewTask, Tasks
from claudomator.stored import FileTask, StoredExecution, StoredFile


class Files(Tasks):
    """The part of `Store` that records the spool's files (the intake, the mirror, the sources)."""

    def add_files(
        self,
        files: Sequence[tuple[str, str, str, str]],
        *,
        provenance_json: str = "{}",
        version: tuple[str, str, str, str] | None = None,
    ) -> bool:
        """Record claims about to happen: (file id, source, relative path, staged name). With
        `version` (source, path, blob, commit) — a git source's copy — the version is recorded in
        the same transaction: False, and nothing recorded, when it was ever recorded before."""
        if not files:
            return True
        now = time.time()
        with self.begin() as conn:
            if version is not None and not record_version(conn, version, files[0][0], now):
                return False
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
            with self.begin() as conn:
                conn.execute(FILES.delete().where(FILES.c.id.in_(list(file_ids))))

    def ingest(
        self,
        entries: Sequence[tuple[str, Sequence[NewTask], str, str, str]],
        fingerprints: dict[str, str] | None = None,
    ) -> tuple[dict[str, list[str]], list[Event]]:
        """For each claimed file (file id, tasks, folder, name, error), in one transaction: its
        tasks recorded and the file's place (queued/ when valid, rejected/ with the error) and
        fingerprint (see `mirror.fingerprint`)."""
        out: dict[str, list[str]] = {}
        events: list[Event] = []
        now = time.time()
        with self.begin() as conn:
            for file_id, tasks, folder, name, error in entries:
                if tasks:
                    ids, evs = self._insert_tasks(conn, tasks, file_id)
                    out[file_id] = ids
                    events += evs
                conn.execute(
                    _PLACE_FILE,
                    {
                        "p_id": file_id,
                        "folder": folder,
                        "name": name,
                        "error": error,
                        "fingerprint": (fingerprints or {}).get(file_id, ""),
                        "updated_at": now,
                    },
                )
        return out, events

    def set_file(self, file_id: str, **values: Any) -> None:
        with self.begin() as conn:
            conn.execute(
                update(FILES).where(FILES.c.id == file_id).values(updated_at=time.time(), **values)
            )

    def files(self, folders: Iterable[str]) -> list[StoredFile]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(FILES).where(FILES.c.node == self.node, FILES.c.folder.in_(list(folders)))
            ).mappings()
            return [cast(StoredFile, dict(r)) for r in rows]

    def file_task_states(
        self, folders: Iterable[str], file_ids: str | Sequence[str] | None = None
    ) -> dict[str, tuple[str, str, list[tuple[State, int]]]]:
        """This node's files in `folders` (or only `file_ids`): each one's folder, its name
        there, and its tasks' (state, attempts); one query, no execution read."""
        query = _TASK_STATES.where(FILES.c.node == self.node, FILES.c.folder.in_(list(folders)))
        if isinstance(file_ids, str):
            query = query.where(FILES.c.id == file_ids)
        elif file_ids is not None:
            query = query.where(FILES.c.id.in_(list(file_ids)))
        return self._task_states(query)

    def files_to_follow(self) -> dict[str, tuple[str, str, list[tuple[State, int]]]]:
        """As `file_task_states`, for the files that may have to move: those in queued/ and
        running/, and those in done/ with a task that is not final (a retry); one query."""
        file, task = FILES.alias("reopened"), TASKS.alias("open_task")
        reopened = (
            select(file.c.id)
            .join(task, task.c.file_id == file.c.id)
            .where(
                file.c.node == self.node,
                file.c.folder == "done",
                task.c.state.in_([s.value for s in State if s not in FINAL_STATES]),
            )
        )
        query = _TASK_STATES.where(
            FILES.c.node == self.node,
            FILES.c.folder.in_(("queued", "running")) | FILES.c.id.in_(reopened),
        )
        return self._task_states(query)

    def _task_states(self, query: Any) -> dict[str, tuple[str, str, list[tuple[State, int]]]]:
        out: dict[str, tuple[str, str, list[tuple[State, int]]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                entry = out.setdefault(r.id, (r.folder, r.name, []))
                entry[2].append((State(r.state), r.attempts))
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

    def file(self, file_id: str) -> StoredFile | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(FILES).where(FILES.c.id == file_id, FILES.c.node == self.node))
                .mappings()
                .first()
            )
        return cast(StoredFile, dict(row)) if row else None

    def file_tasks(self, file_id: str) -> list[FileTask]:
        """The file's tasks, oldest first, each with its executions."""
        with self.engine.connect() as conn:
            tasks = [
                cast(FileTask, {**r, "executions": []})
                for r in conn.execute(
                    select(
                        TASKS.c.id, TASKS.c.name, TASKS.c.state, TASKS.c.reason, TASKS.c.attempts
                    )
                    .where(TASKS.c.file_id == file_id)
                    .order_by(TASKS.c.id)
                ).mappings()
            ]
            by_task = {t["id"]: t["executions"] for t in tasks}
            if tasks:
                for r in conn.execute(
                    select(EXECUTIONS)
                    .where(EXECUTIONS.c.task_id.in_(list(by_task)))
                    .order_by(EXECUTIONS.c.id)
                ).mappings():
                    by_task[r["task_id"]].append(cast(StoredExecution, dict(r)))
            return tasks

    def set_source_path(self, file_id: str, source_path: str) -> None:
        """A renamed task file: its tasks and file row follow the new path."""
        with self.begin() as conn:
            conn.execute(
                update(TASKS).where(TASKS.c.file_id == file_id).values(source_path=source_path)
            )
            conn.execute(update(FILES).where(FILES.c.id == file_id).values(rel_path=source_path))


_PLACE_FILE = update(FILES).where(FILES.c.id == bindparam("p_id"))
# each file's folder and name, with its tasks' states and attempts: one row per task
_TASK_STATES = select(
    FILES.c.id, FILES.c.folder, FILES.c.name, TASKS.c.state, TASKS.c.attempts
).join(TASKS, TASKS.c.file_id == FILES.c.id)
