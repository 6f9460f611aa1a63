"""The spool: `inbox/ queued/ running/ done/ rejected/` and the moves between them.

A file is claimed by one atomic rename out of the inbox into a private staging folder; after the
claim the store is the truth and every later move mirrors a committed state change. Moves never
overwrite: a name taken in the target folder gets a unique suffix (`a.yaml` → `a.1.yaml`), and
the move itself is a hard link plus unlink, which fails rather than replace an existing file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from claudomator.datadir import DIR_MODE, FILE_MODE, DataDir, create_private, write_private
from claudomator.records import ResultFile

FOLDERS = ("queued", "running", "done", "rejected")
TASK_SUFFIXES = (".yaml", ".yml")
_LEFTOVER_SUFFIXES = (".swp", ".swo", ".swx", ".tmp", ".part", ".crdownload", ".bak", ".orig")

Kind = Literal["regular", "special", "gone"]


def is_task_file_name(name: str) -> bool:
    """Names that are read as task files: `*.yaml`/`*.yml`, not hidden, not editor leftovers."""
    if not name or name.startswith((".", "#")) or name.endswith("~") or name == "4913":
        return False
    lower = name.lower()
    if lower.endswith(_LEFTOVER_SUFFIXES):
        return False
    return lower.endswith(TASK_SUFFIXES) and lower not in TASK_SUFFIXES


def is_watched_path(rel: str) -> bool:
    """A path relative to the inbox that intake considers: no hidden folder on the way, and no
    `@name` at the top (reserved for other sources)."""
    parts = rel.split("/")
    if parts[0].startswith("@"):
        return False
    if any(p.startswith(".") for p in parts[:-1]):
        return False
    return is_task_file_name(parts[-1])


def with_suffix_number(rel: str, n: int) -> str:
    """`a/b.yaml`, 2 → `a/b.2.yaml`."""
    head, dot, ext = rel.rpartition(".")
    return f"{head}.{n}.{ext}" if dot and "/" not in ext else f"{rel}.{n}"


class Spool:
    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir
        self.inbox = data_dir.root / "inbox"
        self.staging = data_dir.root / ".staging"

    def folder(self, name: str) -> Path:
        return self.staging if name == "staging" else self.data_dir.root / name

    def ensure(self) -> None:
        self.data_dir.ensure()
        self.staging.mkdir(mode=DIR_MODE, exist_ok=True)

    # -- intake ------------------------------------------------------------------------------

    def scan(self, folder: str = "inbox") -> Iterator[str]:
        """Paths (relative to the folder) of every task-file name in it, at any depth."""
        top = self.folder(folder)
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = os.path.relpath(dirpath, top)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = [
                d
                for d in dirnames
                if not d.startswith(".") and not (not rel_dir and d.startswith("@"))
            ]
            for name in filenames:
                if is_task_file_name(name):
                    yield rel_dir + name
            # symlinks to folders are not followed, but a link with a task-file name is a candidate
            for name in list(dirnames):
                if is_task_file_name(name) and os.path.islink(os.path.join(dirpath, name)):
                    yield rel_dir + name

    @staticmethod
    def kind(path: Path) -> Kind:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return "gone"
        return "regular" if stat.S_ISREG(mode) else "special"

    @staticmethod
    def being_written(path: Path) -> bool:
        """Whether some process has the file open for writing. A read lease is granted only when
        nobody does (Linux); where leases are not allowed (not our file, network filesystems),
        a file modified within the last second counts as still being written."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False  # gone or not a regular file: the caller looks again
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EBUSY):
                return True
            import time

            return time.time() - os.fstat(fd).st_mtime < 1.0
        else:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            return False
        finally:
            os.close(fd)

    def stage_bytes(self, name: str, data: bytes) -> Path:
        """A copy made by claudomator (from a source other than the inbox), staged privately."""
        path = self.staging / name
        with os.fdopen(create_private(path), "wb") as f:
            f.write(data)
        return path

    def staged(self, file_id: str) -> bool:
        """Whether a file's claim still waits in staging (cut short: see `finish_claims`)."""
        return any(self.staging.glob(glob.escape(file_id) + "-*"))

    def claim(self, rel: str, file_id: str, folder: str = "inbox") -> Path | None:
        """Rename `folder/rel` into staging (the rename is the lock); None when it is gone."""
        staged = self.staging / (file_id + "-" + Path(rel).name)
        try:
            os.rename(self.folder(folder) / rel, staged)
        except FileNotFoundError:
            return None
        if self.kind(staged) == "regular":  # private from now on, like all of the data dir
            with contextlib.suppress(PermissionError):  # not ours: readable as it was
                os.chmod(staged, FILE_MODE)
        return staged

    # -- moves -------------------------------------------------------------------------------

    def free_name(self, folder: str, rel: str) -> str:
        """`rel`, or `rel` with the first number suffix for which neither the file nor its
        `.error`/`.result.json` exists in `folder`."""
        top = self.folder(folder)
        for n in range(100_000):
            name = rel if n == 0 else with_suffix_number(rel, n)
            if not any(os.path.lexists(top / (name + s)) for s in ("", ".error", ".result.json")):
                return name
        raise OSError(errno.EEXIST, f"no free name for {rel} in {top}")

    def place(self, src: Path, folder: str, rel: str) -> str:
        """Move `src` to `folder/rel` without ever overwriting; returns the relative name used."""
        top = self.folder(folder)
        (top / rel).parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        name = rel
        while True:
            try:
                os.link(src, top / name, follow_symlinks=False)
            except FileExistsError:
                if _same_file(src, top / name):  # linked before a crash cut the move short
                    break
                name = self.free_name(folder, rel)
                continue
            break
        os.unlink(src)
        return name

    def move(
        self, src_folder: str, name: str, dst_folder: str, rel: str | None = None
    ) -> str | None:
        """Move a spool file between folders; None when it is no longer there."""
        src = self.folder(src_folder) / name
        if not os.path.lexists(src):
            return None
        return self.place(src, dst_folder, rel or name)

    def write_beside(self, folder: str, name: str, suffix: str, text: str) -> None:
        """Write `<name><suffix>` (e.g. `.error`, `.result.json`) beside a spool file."""
        write_private(self.folder(folder) / (name + suffix), text, replace=True)  # all or none

    def write_error(self, name: str, error: str) -> None:
        """`rejected/<name>.error`: why the file never runs."""
        self.write_beside("rejected", name, ".error", error + "\n")

    def write_result(self, name: str, data: ResultFile) -> None:
        self.write_beside("done", name, ".result.json", json.dumps(data, indent=2) + "\n")

    def exists(self, folder: str, name: str) -> bool:
        return os.path.lexists(self.folder(folder) / name)


def _same_file(a: Path, b: Path) -> bool:
    sa, sb = os.lstat(a), os.lstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


__all__ = ["FILE_MODE", "FOLDERS", "Spool", "is_task_file_name", "is_watched_path"]
