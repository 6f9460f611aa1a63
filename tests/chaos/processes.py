"""The processes of a data dir, found by their environment (a serve and the claude processes it
spawned, which outlive it), and the fake claude's record of each claude invocation."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

EXECUTION_ENV = "CLAUDOMATOR_EXECUTION_ID"


def home_processes(home: Path, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Live processes whose environment names data dir `home` (a serve and the claude processes
    it spawned, which outlive it: they run in sessions of their own), less `exclude`."""
    skip = {os.getpid(), *exclude}
    found = []
    for proc in psutil.process_iter():
        if proc.pid in skip:
            continue
        with contextlib.suppress(psutil.Error):
            if (
                proc.environ().get("CLAUDOMATOR_HOME") == str(home)
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
    return found


def execution_of(proc: psutil.Process) -> str:
    try:
        return proc.environ().get(EXECUTION_ENV, "")
    except psutil.Error:
        return ""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def gone(procs: Iterable[psutil.Process], timeout: float) -> bool:
    """Wait until none of `procs` is alive (a zombie is not: its parent, maybe init, reaps it)."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Records:
    """The fake claude's record of each invocation (`<session id>.json`): (pid, execution id)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seen: dict[str, tuple[int, str]] = {}

    def scan(self) -> dict[str, tuple[int, str]]:
        """pid and execution id of each claude run recorded; a --resume that claude refused (no
        such session: the execution then runs a fresh claude) did no work and is left out."""
        found = {}
        for path in self.folder.glob("*.json"):
            if path.name not in self._seen:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    data = json.loads(path.read_text())
                    pending = ".resumed." in path.name and not data["began"]
                    refused = pending and data.get("exit_code") == 1
                    execution = "" if refused else data["env"].get(EXECUTION_ENV, "")
                    if pending and "exit_code" not in data:  # refused or not: read it again
                        found[path.name] = (int(data["pid"]), execution)
                    else:
                        self._seen[path.name] = (int(data["pid"]), execution)
        return {**self._seen, **found}
