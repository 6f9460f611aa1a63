"""The spool mirror: every file this node ingested stands in the folder its tasks' committed
states say, and a `.result.json` stands beside a file in `done/` only, matching the store.

A file is in `queued/` until one of its tasks starts, in `running/` while one runs or may run
again (a retry, automatic or by hand, brings a file in `done/` back), and in `done/` once all
its tasks are final. Each move is a hard link then an unlink, then the record; a file keeps
its fingerprint (inode and modification time) through every move, so after a crash cut a move
short, `recover` finds it wherever it is and never takes it for a new file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import structlog

from claudomator.records import Execution, ResultFile, ResultTask
from claudomator.spool import Spool
from claudomator.state import FINAL_STATES, State
from claudomator.store.rows import execution_json
from claudomator.stored import FileTask, StoredFile

if TYPE_CHECKING:
    from claudomator.store.db import Store

log = structlog.get_logger("claudomator.mirror")

FOLLOWED = ("queued", "running", "done")  # the folders whose files move as their tasks change
RESULT, ERROR = ".result.json", ".error"  # what stands beside a file in done/, in rejected/
SIDE_FILE = {"done": RESULT, "rejected": ERROR}
_ORDER = {"queued": 0, "running": 1, "done": 2}


def desired_folder(tasks: Iterable[tuple[State, int]]) -> str:
    """Where a file stands from its tasks' (state, attempts): `done/` once all are final,
    `running/` once one has started (and while it may run again), else `queued/`."""
    tasks = list(tasks)
    if not tasks or all(state in FINAL_STATES for state, _ in tasks):
        return "done"
    if any(state is State.RUNNING or attempts > 0 for state, attempts in tasks):
        return "running"
    return "queued"


def fingerprint(st: os.stat_result) -> str:
    """What names one file through hard-link moves: a file a person copies in has another."""
    return f"{st.st_ino}:{st.st_mtime_ns}"


def locate(recorded: str, found: Sequence[str]) -> tuple[str | None, list[str]]:
    """Where a recorded file is, from the places (`folder/name`) that hold a file with its
    fingerprint: (its place, or None when it is gone; the extra links a cut move left, to
    remove). The recorded place wins; else the place furthest along queued → running → done."""
    if recorded in found:
        return recorded, [p for p in found if p != recorded]
    if not found:
        return None, []
    ordered = sorted(found, key=lambda p: (_ORDER.get(p.split("/", 1)[0], -1), p))
    return ordered[-1], ordered[:-1]


def stale(result_exists: bool, file_updated_at: float, tasks_updated_at: float) -> bool:
    """Whether a file in done/ needs its result file written again."""
    return not result_exists or tasks_updated_at > file_updated_at


class Mirror:
    def __init__(self, store: Store, spool: Spool) -> None:
        self.store, self.spool = store, spool

    def sync(self, file_ids: Iterable[str]) -> None:
        """Move files to where their tasks now stand (nothing for another node's files)."""
        for file_id in file_ids:
            for folder, name, tasks in self.store.file_task_states(FOLLOWED, file_id).values():
                self._place(file_id, folder, name, desired_folder(tasks))

    def resync(self) -> None:
        """Move the files whose tasks changed without this process hearing of it (another
        process, or a node whose notification was missed while the connection was down)."""
        for file_id, (folder, name, tasks) in self.store.files_to_follow().items():
            self._place(file_id, folder, name, desired_folder(tasks))

    def _place(self, file_id: str, folder: str, name: str, target: str) -> None:
        """Move the file from `folder` to `target`: the move, its side file, then the record."""
        if target == folder:
            return
        placed = self.spool.move(folder, name, target, name)
        if placed is None:
            if target == "done" and not self.spool.staged(file_id):
                self.store.set_file(file_id, folder="deleted")  # a person deleted it
            return  # still staged: it is placed, then moved on, at the next sweep
        if folder == "done":
            self._remove_beside("done", name)
        if target == "done":
            self._write_result(file_id, placed)
        self.store.set_file(file_id, folder=target, name=placed)

    def _write_result(self, file_id: str, name: str) -> None:
        row = self.store.file(file_id)
        if row is not None:
            self.spool.write_result(name, result_json(row, self.store.file_tasks(file_id)))

    def _remove_beside(self, folder: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.spool.folder(folder) / (name + SIDE_FILE[folder])).unlink()

    def deleted(self, folder: str, names: Iterable[str]) -> list[StoredFile]:
        """Files a person deleted (or moved away) from `folder`: forgotten, with their side
        file. Returns their rows (a file deleted from queued/ cancels its tasks: the caller's)."""
        by_name = {f["name"]: f for f in self.store.files([folder])}
        gone = []
        for name in names:
            row = by_name.get(name)
            if row is None or self.spool.exists(folder, name):
                continue
            self.store.set_file(row["id"], folder="deleted")
            if folder in SIDE_FILE:
                self._remove_beside(folder, name)
            gone.append(row)
        return gone

    def forget_gone(self) -> None:
        """Files recorded in done/ or rejected/ that are not there any more though no event
        said so (one moved back to the inbox, or deleted, while the watcher missed it):
        forgotten with their side file, at every sweep, as `deleted` does when told."""
        for folder in SIDE_FILE:
            rows = self.store.files([folder])
            gone = [r["name"] for r in rows if not self.spool.exists(folder, r["name"])]
            if gone:
                self.deleted(folder, gone)

    # -- recovery ----------------------------------------------------------------------------

    def recover(self) -> None:
        """At start, before anything moves: find every recorded file by its fingerprint (a cut
        move left it elsewhere, or twice), forget those people deleted, put each where its
        tasks stand, write result files that are missing or stale, remove side files whose
        file is gone, and make files 0600."""
        places: dict[str, list[str]] = {}
        for folder in FOLLOWED:
            for rel in self.spool.scan(folder):
                path = self.spool.folder(folder) / rel
                with contextlib.suppress(FileNotFoundError):
                    st = os.lstat(path)
                    if st.st_mode & 0o077 and not os.path.islink(path):
                        os.chmod(path, 0o600)
                    places.setdefault(fingerprint(st), []).append(f"{folder}/{rel}")
        for row in self.store.files(FOLLOWED):
            recorded = f"{row['folder']}/{row['name']}"
            known = row["fingerprint"]
            if not known and os.path.lexists(self.spool.folder(row["folder"]) / row["name"]):
                known = fingerprint(os.lstat(self.spool.folder(row["folder"]) / row["name"]))
            place, extras = locate(recorded, places.get(known, []) if known else [])
            for extra in extras:
                log.warning("mirror.extra_link_removed", file=extra, of=recorded)
                os.unlink(self.spool.data_dir.root / extra)
            if place is None:
                self.store.set_file(row["id"], folder="deleted")
            elif place != recorded or known != row["fingerprint"]:
                folder, name = place.split("/", 1)
                self.store.set_file(row["id"], folder=folder, name=name, fingerprint=known)
        self.resync()
        for file_id, (name, updated_at, tasks_updated_at) in self.store.done_files().items():
            exists = self.spool.exists("done", name + RESULT)
            if stale(exists, updated_at, tasks_updated_at):
                self._write_result(file_id, name)
                self.store.set_file(file_id)
        for row in self.store.files(["rejected"]):  # a crash before its reason was written
            if self.spool.exists("rejected", row["name"]) and not self.spool.exists(
                "rejected", row["name"] + ERROR
            ):
                self.spool.write_error(row["name"], row["error"])
        for folder, suffix in SIDE_FILE.items():
            for dirpath, _, filenames in os.walk(self.spool.folder(folder)):
                for side in filenames:
                    if side_file_left(side, suffix, set(filenames)):
                        log.info("mirror.side_file_removed", file=os.path.join(dirpath, side))
                        os.unlink(os.path.join(dirpath, side))


def side_file_left(name: str, suffix: str, beside: set[str]) -> bool:
    """Whether `name` is a side file (`suffix`) whose file is not `beside` it any more, or the
    copy a crash left of one being written (`.<side file>.<pid>.tmp`)."""
    if name.startswith(".") and name.endswith(".tmp") and suffix + "." in name:
        return True
    return name.endswith(suffix) and name[: -len(suffix)] not in beside


def branch_and_head(executions: Sequence[Execution]) -> tuple[str | None, str | None]:
    """The branch and head commit a task's work is on: those of its latest execution that
    recorded a workspace (None, None when there is none, or it ran in the shared working_dir)."""
    for ex in reversed(executions):
        if (workspace := ex["workspace"]) is not None:
            return workspace.get("branch") or None, workspace.get("head") or None
    return None, None


def result_json(row: StoredFile, tasks: list[FileTask]) -> ResultFile:
    """`<name>.result.json`: where the file came from (a git source's provenance), and every
    task's state, reason, cost, tokens, executions, logs, and the branch and head its work is on
    (`branch_and_head`)."""
    out: list[ResultTask] = []
    for t in tasks:
        execs = [execution_json(e) for e in t["executions"]]
        branch, head = branch_and_head(execs)
        out.append(
            {
                "id": t["id"],
                "name": t["name"],
                "state": t["state"],
                "reason": t["reason"],
                "attempts": t["attempts"],
                "cost_usd": round(sum(e["cost_usd"] for e in execs), 10),
                "tokens": {
                    "input": sum(e["tokens"]["input"] for e in execs),
                    "output": sum(e["tokens"]["output"] for e in execs),
                    "cache_read": sum(e["tokens"]["cache_read"] for e in execs),
                    "cache_creation": sum(e["tokens"]["cache_creation"] for e in execs),
                },
                "branch": branch,
                "head": head,
                "execution_ids": [e["id"] for e in execs],
                "executions": execs,
            }
        )
    provenance = json.loads(row["provenance_json"] or "{}") or None
    return {
        "file": row["rel_path"],
        "source": row["source"],
        "provenance": provenance,
        "tasks": out,
    }


__all__ = [
    "FOLLOWED", "Mirror", "branch_and_head", "desired_folder", "fingerprint", "locate",
    "result_json", "side_file_left", "stale",
]  # fmt: skip
