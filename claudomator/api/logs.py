"""An execution's log, a page at a time: whole lines from a byte offset, as `claudomator logs`
shows them (readable) or as claude wrote them (raw), with secret values masked.

Offsets are bytes so that a client can follow a running log: it asks again from `next_offset`.
A line still being written is left for the next page, except at the end of a finished log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from claudomator.api.shapes import LogPage
from claudomator.secret import scrub_bytes, secret_values
from claudomator.state import State
from claudomator.stream import render

MAX_READ = 1 << 20  # bytes per page at most; a longer line is cut into pieces of this size


def read_log(
    execution: Mapping[str, Any],
    stream: Literal["stdout", "stderr"],
    *,
    executions: Path,
    offset: int,
    limit: int,
    readable: bool,
    task_env: Mapping[str, str],
    this_node: str = "",
) -> LogPage:
    running = execution["state"] == State.RUNNING.value
    path = _inside(execution[f"{stream}_path"], executions)
    chunk, start, size = b"", 0, 0
    node = execution["owner"]["node"]
    # logs stay in the data dir of the node that ran the execution
    elsewhere = bool(node) and node != this_node and (path is None or not path.exists())
    if path is not None:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = min(offset, size)
                f.seek(start)
                chunk = f.read(MAX_READ)
        except (FileNotFoundError, IsADirectoryError):
            pass
    secrets = secret_values({**os.environ, **task_env})
    at_end = start + len(chunk) >= size
    lines: list[str] = []
    pos = 0
    while len(lines) < limit and pos < len(chunk):
        end = chunk.find(b"\n", pos)
        if end != -1:
            piece, pos = chunk[pos : end + 1], end + 1
        elif (at_end and not running) or (pos == 0 and len(chunk) == MAX_READ):
            piece, pos = chunk[pos:], len(chunk)  # the last line, or a piece of a huge one
        else:
            break  # still being written: the next page has it
        piece = scrub_bytes(piece, secrets)
        if readable:
            text = render(piece)
            if text is not None:
                lines.append(text)
        else:
            lines.append(piece.rstrip(b"\r\n").decode("utf-8", "replace"))
    next_offset = start + pos
    return {
        "execution_id": execution["id"],
        "stream": stream,
        "format": "readable" if readable else "raw",
        "offset": start,
        "next_offset": next_offset,
        "size": size,
        "eof": next_offset >= size,
        "running": running,
        "lines": lines,
        "node": node,
        "elsewhere": elsewhere,
    }


def _inside(path_text: str, folder: Path) -> Path | None:
    """The log's path when it lies in the executions folder (the store says where it is)."""
    if not path_text:
        return None
    path = Path(path_text).resolve()
    return path if path.is_relative_to(folder.resolve()) else None
