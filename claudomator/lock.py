"""The dispatcher lock: one `serve` per data dir."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from claudomator.errors import ClaudomatorError


class DispatcherLock:
    """One dispatcher per data dir: a kernel lock on `dispatcher.lock`, released by the kernel
    when the process dies however it dies; the file says who holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, holder: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # once more: `holder` may be looking at it this instant
                time.sleep(0.05)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise ClaudomatorError(
                f"another claudomator serves {self.path.parent} ({who}); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode() + b"\n", 0)
        self.fd = fd

    def holder(self) -> str | None:
        """Who holds the lock (what its file says), None when nobody does. It looks by taking a
        shared lock for an instant, and never makes the file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
        finally:
            os.close(fd)  # and with it the shared lock, if it was taken
        return None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
