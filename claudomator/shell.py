"""A shell command of the user's (a worktree's `setup`, a task's `verify` commands): run with the
shell in a folder, its output appended to a log file, bounded by a timeout, its whole process
group ended when it runs over or is cancelled; git there sees that folder's repository only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from claudomator.datadir import append_private
from claudomator.sources.gitcmd import repository_free

GRACE_S = 5.0  # a command past its timeout has this long after SIGTERM before SIGKILL


@dataclass(frozen=True)
class ShellResult:
    """How a command ended; its output is in `log_path`, bytes `output_from` to `output_to`."""

    exit_code: int | None  # None: killed at its timeout
    timed_out: bool
    log_path: Path
    duration_ms: int
    output_from: int
    output_to: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def output(self, limit: int) -> str:
        """The last `limit` bytes of its output, as text."""
        start = max(self.output_from, self.output_to - limit)
        with self.log_path.open("rb") as f:
            f.seek(start)
            return f.read(self.output_to - start).decode("utf-8", "replace")


async def run_shell(
    path: Path,
    command: str,
    log_path: Path,
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> ShellResult:
    """Run `command` with the shell in `path`, stdout and stderr appended to `log_path` (a
    private file) after a `$ command` line, for at most `timeout_s`: then SIGTERM to its process
    group, SIGKILL after `GRACE_S`. Cancelled, it kills the group too."""
    fd = append_private(log_path)
    began = time.monotonic()
    try:
        os.write(fd, f"$ {command}\n".encode())
        output_from = os.lseek(fd, 0, os.SEEK_END)
        proc = await asyncio.create_subprocess_shell(
            command, cwd=path, stdin=asyncio.subprocess.DEVNULL, stdout=fd,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            env=repository_free(env),
        )  # fmt: skip
        timed_out = await _wait(proc, timeout_s)
        output_to = os.lseek(fd, 0, os.SEEK_END)
        code = None if timed_out else proc.returncode
        end = f"# timed out after {timeout_s:g}s" if timed_out else f"# exit {code}"
        os.write(fd, f"{end}\n".encode())
    finally:
        os.close(fd)
    duration_ms = round((time.monotonic() - began) * 1000)
    return ShellResult(code, timed_out, log_path, duration_ms, output_from, output_to)


async def _wait(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Wait for `proc`; past `timeout_s` (or cancelled) end its process group. Whether it was
    ended for its timeout."""
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
        return False
    except TimeoutError:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), GRACE_S)
        _signal_group(proc.pid, signal.SIGKILL)  # the shell, or what it left in its group
        await proc.wait()
        return True
    finally:
        if proc.returncode is None:  # cancelled
            _signal_group(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


__all__ = ["GRACE_S", "ShellResult", "run_shell"]
