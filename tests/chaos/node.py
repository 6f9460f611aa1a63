"""One node of a campaign: a data dir and the `serve` processes started on it, one after the
other (started, killed, stopped, asked for its log and its spool folders)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import psutil

from tests.chaos.drops import Drop
from tests.poll import wait_for

FOLDERS = ("inbox", "queued", "running", "done", "rejected", ".staging")


class Node:
    """One data dir and the `serve` processes started on it, one after the other."""

    def __init__(self, index: int, home: Path, env: dict[str, str], logs: Path) -> None:
        self.index, self.home, self.env, self.logs_dir = index, home, env, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.created = 0.0  # the serve process's start time (as the store records its owner)
        self.log: IO[bytes] | None = None
        self.log_path = logs / "none.log"
        self.logs: list[Path] = []
        (home / "inbox").mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def node_id(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "node-id").read_text().strip()
        return ""

    def start(self, label: str) -> None:
        assert not self.running
        self.log_path = self.logs_dir / f"{self.name}-{label}.log"
        self.logs.append(self.log_path)
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed when the process ends)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        with contextlib.suppress(psutil.Error):
            self.created = psutil.Process(self.proc.pid).create_time()

    def said(self, event: str) -> bool:
        return f'"event": "{event}"'.encode() in self.log_path.read_bytes()

    def wait_for_event(self, event: str, timeout: float = 30) -> bool:
        """True once serve logged `event`; False if it exited first."""
        wait_for(lambda: self.said(event) or not self.running, timeout)
        return self.said(event)

    def last_event(self) -> str:
        """The last event serve logged: where a kill landed."""
        for line in reversed(self.log_path.read_bytes().splitlines()):
            with contextlib.suppress(ValueError, AttributeError):
                return str(json.loads(line)["event"])
        return "(nothing logged)"

    def kill(self) -> int | None:
        """SIGKILL and reap; the exit code when serve had exited by itself already."""
        assert self.proc is not None
        early = self.proc.poll()
        if early is None:
            self.proc.kill()
        self.proc.wait(30)
        self._closed()
        return early

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, and the exit code (None when it did not exit in time: then SIGKILL)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.proc.kill()
            self.proc.wait(30)
        self._closed()
        return code

    def _closed(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def drop(self, drop: Drop) -> None:
        """Write elsewhere in the inbox under a hidden name, then rename: atomic."""
        path = self.home / "inbox" / drop.rel
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_bytes(drop.data)
        os.rename(tmp, path)

    def listing(self) -> dict[str, list[str]]:
        """Every file (or link) in each spool folder, relative to it."""
        out: dict[str, list[str]] = {}
        for folder in FOLDERS:
            top = self.home / folder
            out[folder] = sorted(
                str(p.relative_to(top)) for p in top.rglob("*") if p.is_symlink() or not p.is_dir()
            ) if top.exists() else []  # fmt: skip
        return out
