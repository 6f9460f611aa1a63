"""An execution's changes, as `GET /api/executions/{id}/diff` answers: the patch its worktree's
branch saved when claude ended (`executions/<id>/diff.patch`, `git diff base..head`), streamed a
piece at a time (patches can be large) with secret values masked, as the logs are.

Why there is no diff is told apart (`missing`, a table-tested decision): still running, no
workspace recorded, the shared working_dir, a worktree whose diff was not saved, a diff in another node's data dir,
a file gone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from claudomator.errors import NotFoundError
from claudomator.logfiles import MAX_READ, inside, whole_lines
from claudomator.secret import scrub_bytes
from claudomator.state import State

MEDIA_TYPE = "text/x-diff"


def missing(
    execution_id: str,
    workspace: Mapping[str, Any] | None,
    *,
    here: bool,
    this_node: str,
    running: bool = False,
) -> str | None:
    """Why execution `execution_id` has no diff to show, or None: it has one and it is `here`
    (a file in this data dir's executions folder). `workspace`: its record's `workspace`, which
    is recorded when claude ends (so none while it is `running`)."""
    if workspace is None and running:
        return f"execution {execution_id} is still running: its diff is saved when claude ends"
    if workspace is None:
        return f"execution {execution_id} has no workspace recorded, so no diff"
    if workspace.get("mode") != "worktree":
        return f"execution {execution_id} ran in the shared working_dir: it has no diff"
    if not workspace.get("diff_path"):
        return f"execution {execution_id} saved no diff"
    if here:
        return None
    node = workspace.get("node") or ""
    if node and node != this_node:
        return (
            f"execution {execution_id} ran on node {node}: its diff is in that node's data dir "
            f"({workspace['diff_path']})"
        )
    return f"the diff of execution {execution_id} is gone ({workspace['diff_path']})"


def open_diff(execution: Mapping[str, Any], *, executions: Path, this_node: str) -> IO[bytes]:
    """The saved diff of `execution` (a record as the service hands it out), open for reading;
    NotFoundError saying why when there is none."""
    workspace = execution["workspace"]
    path = inside((workspace or {}).get("diff_path") or "", executions)
    found: IO[bytes] | None = None
    if path is not None:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            found = open(path, "rb")  # noqa: SIM115 (diff_chunks closes it)
    why = missing(
        execution["id"],
        workspace,
        here=found is not None,
        this_node=this_node,
        running=execution["state"] == State.RUNNING.value,
    )
    if why is not None:
        if found is not None:
            found.close()
        raise NotFoundError(why)
    assert found is not None  # `missing` says None only when it is here
    return found


def diff_chunks(file: IO[bytes], secrets: list[bytes]) -> Iterator[bytes]:
    """The bytes of `file` in pieces of whole lines (a longer line cut at `MAX_READ`), each
    with `secrets` masked; `file` is closed at the end, or when the client goes away."""
    try:
        pending = b""
        while chunk := file.read(MAX_READ):
            pending += chunk
            pieces, used = [], 0
            for line, after in whole_lines(pending, final=False, cut=MAX_READ):
                pieces.append(scrub_bytes(line, secrets))
                used = after
            pending = pending[used:]
            if pieces:
                yield b"".join(pieces)
        if pending:
            yield scrub_bytes(pending, secrets)
    finally:
        file.close()


__all__ = ["MEDIA_TYPE", "diff_chunks", "missing", "open_diff"]
