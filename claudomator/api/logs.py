"""An execution's log, a page at a time, as `GET /api/executions/{id}/log` answers: whole lines
from a byte offset (`logfiles.read_page`), as `claudomator logs` shows them (readable) or as
claude wrote them (raw), with secret values masked.

Offsets are bytes so that a client can follow a running log: it asks again from `next_offset`.
A line still being written is left for the next page, except at the end of a finished log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from claudomator.api.shapes import LogPage
from claudomator.logfiles import elsewhere, inside, read_page
from claudomator.secret import secret_values
from claudomator.state import State


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
    path = inside(execution[f"{stream}_path"], executions)
    node = execution["owner"]["node"]
    page = read_page(
        path,
        offset,
        limit=limit,
        finished=not running,
        readable=readable,
        secrets=secret_values({**os.environ, **task_env}),
    )
    return {
        "execution_id": execution["id"],
        "stream": stream,
        "format": "readable" if readable else "raw",
        "offset": page.offset,
        "next_offset": page.next_offset,
        "size": page.size,
        "eof": page.eof,
        "running": running,
        "lines": page.lines,
        "node": node,
        "elsewhere": elsewhere(node, this_node, path),
    }
