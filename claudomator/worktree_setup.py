"""A worktree's setup command (`workspace.setup`, e.g. `npm ci`): run with the shell in the new
worktree, its output in a log file, bounded by a timeout, its whole process group ended when
it runs over or is cancelled; git sees that worktree only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from claudomator.datadir import create_private
from claudomator.sources.gitcmd import repository_free

SETUP_GRACE_S = 5.0  # a setup past its timeout has this long after SIGTERM before SIGKILL


@dataclass(frozen=True)
class SetupResult:
    """How a worktree's setup command ended; its output is in `log_path`."""

    exit_code: int | None  # None: killed at its timeout
    timed_out: bool
    log_path: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def reason(self) -> str:
        if self.timed_out:
            return f"setup timed out (see {self.log_path.name})"
        return f"setup failed with exit code {self.exit_code} (see {self.log_path.name})"


async def run_setup(
    path: Path,
    command: str,
    log_path: Path,
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> SetupResult:
    """Run `command` with the shell in the worktree at `path`, stdout and stderr to `log_path`
    (a new private file), for at most `timeout_s`: then SIGTERM to its process group, SIGKILL
    after `SETUP_GRACE_S`. Cancelled, it kills the group too."""
    try:
        fd = create_private(log_path, append=True)
    except FileExistsError:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"$ {command}\n".encode())
        proc = await asyncio.create_subprocess_shell(
            command, cwd=path, stdin=asyncio.subprocess.DEVNULL, stdout=fd,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            env=repository_free(env),
        )  # fmt: skip
        timed_out = await _wait(proc, timeout_s)
        code = None if timed_out else proc.returncode
        end = f"# timed out after {timeout_s:g}s" if timed_out else f"# exit {code}"
        os.write(fd, f"{end}\n".encode())
    finally:
        os.close(fd)
    return SetupResult(code, timed_out, log_path)


async def _wait(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Wait for `proc`; past `timeout_s` (or cancelled) end its process group. Whether it was
    ended for its timeout."""
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
        return False
    except TimeoutError:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), SETUP_GRACE_S)
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


__all__ = ["SETUP_GRACE_S", "SetupResult", "run_setup"]
