"""The processes of an execution, found and killed. Descendants are found both as children and by
the `CLAUDOMATOR_EXECUTION_ID` variable every process of the execution inherits, since the Bash
tool runs commands in sessions of their own. The only module that imports psutil."""

from __future__ import annotations

import asyncio
import contextlib
import os

import psutil

from claudomator.command import EXECUTION_ENV

EXIT_POLL_S = 0.25  # how often a process's own exit is looked for (see `exit_of`)


def process_tree(pid: int | None, execution_id: str | None = None) -> list[psutil.Process]:
    """The process `pid` and its descendants, and every process whose environment names
    `execution_id` (those that left the session or were orphaned), still alive."""
    found: dict[int, psutil.Process] = {}
    if pid:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            found[pid] = root
            for child in root.children(recursive=True):
                found[child.pid] = child
    if execution_id:
        for proc in psutil.process_iter():
            if proc.pid in found or proc.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(EXECUTION_ENV) == execution_id:
                    found[proc.pid] = proc
    return list(found.values())


def leftovers() -> dict[str, list[psutil.Process]]:
    """Every process on this host that belongs to an execution, by execution id."""
    found: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if execution_id := proc.environ().get(EXECUTION_ENV):
                found.setdefault(execution_id, []).append(proc)
    return found


def process_started(pid: int) -> float | None:
    """The start time of process `pid`, or None when there is none."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def kill_tree(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def has_exited(pid: int) -> bool:
    """Whether process `pid` has exited, reaped or not (a zombie); False when that cannot be told."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


async def exit_of(proc: asyncio.subprocess.Process) -> None:
    """Returns once claude itself has exited: `proc.wait()` returns only once its pipes are closed
    too (Python 3.11), and a descendant may hold them open for as long as it runs."""
    while proc.returncode is None:  # noqa: ASYNC110 (asyncio tells of the exit by no event)
        await asyncio.sleep(EXIT_POLL_S)


def claude_exited(proc: asyncio.subprocess.Process) -> bool:
    """Whether claude has exited, though the event loop may not have heard of it yet."""
    return proc.returncode is not None or has_exited(proc.pid)


def unreaped(proc: asyncio.subprocess.Process) -> int | None:
    """claude's pid while it may still be its own: once reaped, another process may take it."""
    return proc.pid if proc.returncode is None else None
