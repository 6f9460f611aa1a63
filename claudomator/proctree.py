"""The processes of an execution, found and killed. Descendants are found both as children and by
the `CLAUDOMATOR_EXECUTION_ID` variable every process of the execution inherits, since the Bash
tool runs commands in sessions of their own. The only module that imports psutil."""

from __future__ import annotations

import contextlib
import os

import psutil

from claudomator.command import EXECUTION_ENV


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
