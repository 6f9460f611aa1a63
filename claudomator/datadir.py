"""The data dir (`~/.claudomator`): what lives where in it, and the one way a private file is made.

Everything in the data dir is private to its user: folders 0700, files 0600. Every file
claudomator writes there is made by `create_private` (`write_private` on top of it), which sets
the mode in the `open` that creates the file: no writer can forget it, and there is no moment
in which others could read the file. (SQLite makes its own database file; the store chmods it.)
Stdlib only: every CLI command reads the data dir, including the ones that must start fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class DataDir:
    """`~/.claudomator` and what lives in it."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def database(self) -> Path:
        return self.root / "claudomator.db"

    @property
    def node_id_file(self) -> Path:
        return self.root / "node-id"

    def node_id(self) -> str:
        """The node id kept here ("" before the first `serve`)."""
        try:
            return self.node_id_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    @property
    def executions(self) -> Path:
        return self.root / "executions"

    @property
    def workspaces(self) -> Path:
        """The worktrees of worktree tasks, one folder per task id."""
        return self.root / "workspaces"

    @property
    def spool(self) -> dict[str, Path]:
        return {
            name: self.root / name for name in ("inbox", "queued", "running", "done", "rejected")
        }

    def ensure(self) -> None:
        """Create the data dir and its folders (0700); idempotent."""
        for folder in (self.root, self.executions, *self.spool.values()):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.root, DIR_MODE)


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("CLAUDOMATOR_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".claudomator"


def create_private(path: Path, *, append: bool = False) -> int:
    """Create `path` as a new 0600 file open for writing and return its descriptor; never opens
    a file that exists (FileExistsError). With `append`, every write goes to the end."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_APPEND if append else 0)
    return os.open(path, flags, FILE_MODE)


def append_private(path: Path) -> int:
    """`path` open for appending: made a new 0600 file when there is none."""
    try:
        return create_private(path, append=True)
    except FileExistsError:
        return os.open(path, os.O_WRONLY | os.O_APPEND)


def write_private(path: Path, text: str, *, replace: bool = False) -> bool:
    """Write `text` to a new 0600 file at `path`.

    Without `replace`, an existing file is never overwritten: returns False and leaves it be.
    With `replace`, the text is written beside `path` and renamed over it, so a reader sees the
    old content or the new, never a part of either (returns True)."""
    target = path.with_name(f".{path.name}.{os.getpid()}.tmp") if replace else path
    try:
        fd = create_private(target)
    except FileExistsError:
        if replace:
            raise
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if replace:
            os.replace(target, path)
    except BaseException:
        if replace:  # the copy beside `path` is ours: never leave it behind
            target.unlink(missing_ok=True)
        raise
    return True
