"""An execution's folder and its two logs, and the one reader of them.

`executions/<id>/stdout.log` (claude's stream-json as it wrote it) and `stderr.log` (with the
secrets of claudomator's own environment masked) are laid out here only: the runner writes where
`execution_logs` says, and the store records those paths. The API reads a log a page at a time
(`read_page`: whole lines from a byte offset, so a client follows a running log by asking again
from `next_offset`); `claudomator logs` reads all of it and waits for more while it runs
(`follow`). Both split lines with `whole_lines`, which never hands out a line still being written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from claudomator.secret import scrub_bytes
from claudomator.transcript import render

MAX_READ = 1 << 20  # bytes per page at most; a longer line is cut into pieces of this size
FOLLOW_POLL_S = 0.2  # how often `follow` looks for more of a running execution's log


@dataclass(frozen=True)
class ExecutionLogs:
    """Where one execution's files are."""

    folder: Path

    @property
    def stdout(self) -> Path:
        return self.folder / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.folder / "stderr.log"


def execution_logs(executions: Path, execution_id: str) -> ExecutionLogs:
    """The files of execution `execution_id` under the data dir's `executions` folder."""
    return ExecutionLogs(executions / execution_id)


def whole_lines(data: bytes, *, final: bool, cut: int | None = None) -> Iterator[tuple[bytes, int]]:
    """Each line of `data` with its newline, and the offset just past it. The unterminated rest
    is a line too when `final` (nothing more will be written), or when it is `cut` bytes or more
    (a piece of a longer line, so that a page stays bounded); otherwise it waits for its end."""
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end != -1:
            yield data[pos : end + 1], end + 1
            pos = end + 1
        elif final or (cut is not None and len(data) - pos >= cut):
            yield data[pos:], len(data)
            return
        else:
            return


@dataclass(frozen=True)
class Page:
    """Whole lines of a log from a byte offset."""

    offset: int  # where this page starts, in bytes
    next_offset: int  # give it as `offset` for the next page
    size: int  # bytes in the log now
    lines: list[str]

    @property
    def eof(self) -> bool:
        """next_offset reached the end of the log as it is now."""
        return self.next_offset >= self.size


def read_page(
    path: Path | None,
    offset: int,
    *,
    limit: int,
    finished: bool,
    readable: bool,
    secrets: list[bytes],
) -> Page:
    """Up to `limit` lines shown from `offset`, within `MAX_READ` bytes, `secrets` masked;
    `readable`: as `claudomator logs` shows them (lines not worth showing are skipped, not
    counted), else as written. A line still being written is left for the next page unless the
    execution has `finished`. No file (or None): an empty page."""
    chunk, start, size = b"", 0, 0
    if path is not None:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = min(offset, size)
                f.seek(start)
                chunk = f.read(MAX_READ)
        except (FileNotFoundError, IsADirectoryError):
            pass
    final = finished and start + len(chunk) >= size
    lines: list[str] = []
    pos = 0
    for piece, after in whole_lines(chunk, final=final, cut=MAX_READ):
        if len(lines) >= limit:
            break
        pos = after
        piece = scrub_bytes(piece, secrets)
        if readable:
            text = render(piece)
            if text is not None:
                lines.append(text)
        else:
            lines.append(piece.rstrip(b"\r\n").decode("utf-8", "replace"))
    return Page(start, start + pos, size, lines)


def follow(
    path: Path, running: Callable[[], bool], *, poll_s: float = FOLLOW_POLL_S
) -> Iterator[bytes]:
    """Every line of `path` as written, however long, newline kept; while `running()` says so,
    wait for more (it is asked only when the file has no more for now)."""
    if not path.is_file():
        return
    pending = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(MAX_READ)
            if chunk:
                pending += chunk
                used = 0
                for line, after in whole_lines(pending, final=False):
                    yield line
                    used = after
                pending = pending[used:]
                continue
            if not running():
                if pending:
                    yield pending
                return
            time.sleep(poll_s)


def inside(path_text: str, executions: Path) -> Path | None:
    """The log's path when it lies in the executions folder (the store says where it is)."""
    if not path_text:
        return None
    path = Path(path_text).resolve()
    return path if path.is_relative_to(executions.resolve()) else None


def elsewhere(node: str, this_node: str, path: Path | None) -> bool:
    """Whether the log is in another node's data dir: the execution ran on another node, and the
    log is not here (logs stay in the data dir of the node that ran the execution)."""
    return bool(node) and node != this_node and (path is None or not path.exists())
