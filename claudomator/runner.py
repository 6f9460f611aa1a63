"""A task becomes a `claude -p` process, and what that process does becomes a faithful record.

`Runner.run` spawns claude (the command from `command`, in the place `workdir` says) in its own
session, writes the instructions to stdin and closes it, streams stdout to `stdout.log` while
folding it line by line (`stream`), drains stderr to `stderr.log` keeping its tail (the files
where `logfiles` says), and on timeout or cancel ends the whole process tree (`proctree`): SIGINT
(claude then reports its cost), SIGTERM, SIGKILL, with the descendants snapshotted first. What
the end means for the task is `outcome.decide`.

The timeout is a deadline on the event loop's monotonic clock, which keeps running while this
process is stopped (SIGSTOP): it is applied at wake-up, to a claude still running; one that ended
meanwhile is recorded as it ended. A claude that closes its stdout but stays is stopped after
`EOF_GRACE_S`, and one that exits while a descendant still holds its stdout is not waited for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from claudomator.billing import refusal
from claudomator.command import Invocation, build_argv, build_env
from claudomator.config import Config
from claudomator.datadir import DIR_MODE, append_private
from claudomator.logfiles import execution_logs
from claudomator.outcome import Ending, Killed, Outcome, decide
from claudomator.proctree import (
    claude_exited,
    exit_of,
    kill_tree,
    process_started,
    process_tree,
    unreaped,
)
from claudomator.secret import scrub, scrub_bytes, secret_values
from claudomator.sources.gitcmd import repository_free
from claudomator.state import State
from claudomator.stream import Progress, StreamState, feed
from claudomator.task import TaskSpec
from claudomator.watchdog import Watch, hung, next_look
from claudomator.workdir import within, working_dir

__all__ = ["CHUNK", "EOF_GRACE_S", "MAX_LINE", "STDERR_TAIL", "RunResult", "Runner"]

CHUNK = 1 << 20
MAX_LINE = 64 << 20  # a longer line is kept in the log but not parsed: memory stays flat
STDERR_TAIL = 8192
EOF_GRACE_S = 5.0  # claude closed its stdout: it has this long to exit before it is stopped


@dataclass
class RunResult:
    outcome: Outcome
    stream: StreamState
    exit_code: int | None
    pid: int
    stderr_tail: str


@dataclass
class _Seen:
    """When claude was spawned and when its stdout last ended a line (event loop clock); why it
    must be stopped at once, when its init line says it would bill outside the lane."""

    spawned_at: float
    last_line_at: float | None = None
    refused: str = ""
    refusing: asyncio.Event = field(default_factory=asyncio.Event)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Runner:
    """Runs one execution at a time per call; share one Runner across the pool."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.secrets = secret_values()  # of our own environment: masked in stderr

    async def run(
        self,
        spec: TaskSpec,
        execution_id: str,
        *,
        cancel: asyncio.Event,
        on_spawn: Callable[[int, float], None] | None = None,
        on_progress: Callable[[Progress, StreamState], None] | None = None,
        cwd: Path | None = None,
        invocation: Invocation | None = None,
    ) -> RunResult:
        """One execution of `spec`, in its working_dir, or in `cwd` (its place in a worktree,
        checked against the allowed roots already; git there sees that worktree only), asked
        `invocation` (default: its instructions, in a new session, with its budget)."""
        state = StreamState()
        logs = execution_logs(self.config.data_dir.executions, execution_id)
        logs.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # a second claude of one execution (a resume refused, run again fresh) appends
        out_fd = append_private(logs.stdout)
        err_fd = append_private(logs.stderr)
        try:
            asked = invocation or Invocation.fresh(spec)
            fds = (out_fd, err_fd)
            return await self._run(
                spec, execution_id, asked, state, fds, cancel, on_spawn, on_progress, cwd
            )
        finally:
            os.close(out_fd)
            os.close(err_fd)

    def _failed(self, state: StreamState, reason: str) -> RunResult:
        return RunResult(Outcome(State.FAILED, reason), state, None, 0, "")

    async def _run(
        self,
        spec: TaskSpec,
        execution_id: str,
        asked: Invocation,
        state: StreamState,
        fds: tuple[int, int],
        cancel: asyncio.Event,
        on_spawn: Callable[[int, float], None] | None,
        on_progress: Callable[[Progress, StreamState], None] | None,
        worktree_dir: Path | None,
    ) -> RunResult:
        claude = self.config.resolve_claude()
        if claude is None:
            return self._failed(
                state, f"claude binary {self.config.claude_binary!r} not found or not executable"
            )
        cwd = worktree_dir or working_dir(spec, self.config)
        if not cwd.is_dir():
            return self._failed(state, f"working_dir {str(cwd)!r} does not exist")
        if worktree_dir is None and not within(cwd, self.config.allowed_roots):
            return self._failed(state, f"working_dir {str(cwd)!r} is outside claude.allowed_roots")
        argv = build_argv(spec, self.config, claude, asked)
        env = build_env(spec, execution_id, None if worktree_dir is None else repository_free())
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=CHUNK,
            )
        except OSError as e:
            return self._failed(state, f"cannot start claude ({claude}): {e.strerror or e}")
        if on_spawn is not None:
            on_spawn(proc.pid, process_started(proc.pid) or time.time())

        out_fd, err_fd = fds
        tail: collections.deque[bytes] = collections.deque()
        seen = _Seen(asyncio.get_running_loop().time())
        readers = [
            asyncio.create_task(
                self._read_stdout(proc, out_fd, state, self._lane_check(on_progress, seen), seen)
            ),
            asyncio.create_task(self._read_stderr(proc, err_fd, tail, self.secrets)),
            asyncio.create_task(self._write_stdin(proc, asked.prompt.encode())),
        ]
        timeout = spec.timeout if spec.timeout is not None else self.config.claude_timeout_s
        stall = spec.stall_timeout
        watch = Watch(
            startup_s=self.config.startup_timeout_s,
            stall_s=stall if stall is not None else self.config.stall_timeout_s,
        )
        exited = asyncio.create_task(proc.wait())  # it exited and its pipes are closed
        ended = asyncio.create_task(exit_of(proc))  # it exited
        cancelled = asyncio.create_task(cancel.wait())
        killed: Killed | None = None
        try:
            killed = await self._watch(
                proc, timeout, (watch, seen, state), exited, ended, cancelled, readers[0]
            )
            if killed == "billing":  # before any API call: nothing to report, no time to give
                kill_tree(process_tree(proc.pid, execution_id))
                await asyncio.wait({exited}, timeout=5)
            elif killed is not None:
                await self._stop(proc, execution_id, exited)
            else:
                # a process that leaves a child holding stdout must not hold us
                await asyncio.wait({exited, *readers[:2]}, timeout=2.0)
        finally:
            cancelled.cancel()
            ended.cancel()
            if killed is not None or not exited.done():
                # what is left of it: descendants holding its pipes, or all of it if we are being
                # cancelled ourselves; the pid only while it is not reaped (it may be reused)
                kill_tree(process_tree(unreaped(proc), execution_id))
            if not exited.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(exited), 5)
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        stderr_tail = scrub(b"".join(tail).decode("utf-8", "replace")[-STDERR_TAIL:])
        ending = Ending(
            killed=killed,
            exit_code=proc.returncode,
            stderr_tail=stderr_tail,
            budget_usd=asked.budget_usd,
            result=state.result,
            api_error=state.api_error,
            rate_limit_status=state.rate_limit_status,
            rate_limit_resets_at=state.rate_limit_resets_at,
            watch=watch,
            refused=seen.refused,
        )
        return RunResult(decide(ending), state, proc.returncode, proc.pid, stderr_tail)

    async def _watch(
        self,
        proc: asyncio.subprocess.Process,
        timeout_s: float,
        watched: tuple[Watch, _Seen, StreamState],
        exited: asyncio.Task[int],
        ended: asyncio.Task[None],
        cancelled: asyncio.Task[Literal[True]],
        stdout: asyncio.Task[None],
    ) -> Killed | None:
        """None once claude exited by itself; else why it must be stopped: a cancel, the timeout
        (`timeout_s` from now; 0 is none), its init line outside the billing lane, a watchdog
        (`watched`: no start, a stall), or a stdout closed while the process stays."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s if timeout_s else math.inf
        closed_at = math.inf  # when stdout reached EOF
        watch, seen, state = watched
        refusing = asyncio.create_task(seen.refusing.wait())
        waiting: set[asyncio.Task[Any]] = {exited, ended, cancelled, stdout, refusing}
        try:
            while True:
                due = next_look(
                    watch,
                    spawned_at=seen.spawned_at,
                    last_line_at=seen.last_line_at,
                    initialized=state.initialized,
                )
                if closed_at < math.inf:  # its stdout is closed: only the EOF grace applies
                    due = math.inf
                limit = min(deadline, closed_at + EOF_GRACE_S, due) - loop.time()
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=None if limit == math.inf else max(limit, 0.0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if exited in done or ended in done:
                    return None
                if cancelled in done:
                    return "cancel"
                if refusing in done:
                    return "billing"
                if stdout in done:
                    waiting.discard(stdout)
                    if stdout.exception() is None:
                        closed_at = loop.time()
                    continue
                # a time limit: a claude that exited before we looked (this process was
                # stopped, or busy) ended by itself and is recorded so, not stopped after the fact
                if claude_exited(proc):
                    await asyncio.wait({ended}, timeout=1.0)
                    return None
                now = loop.time()
                if now >= deadline:
                    return "timeout"
                if now >= closed_at + EOF_GRACE_S:
                    return "stdout_closed"
                hang = hung(
                    watch,
                    now=now,
                    spawned_at=seen.spawned_at,
                    last_line_at=seen.last_line_at,
                    initialized=state.initialized,
                )
                if hang is not None and closed_at == math.inf:
                    return hang
                # a line came meanwhile (or the init): look again with the new deadline
        finally:
            refusing.cancel()

    def _lane_check(
        self, on_progress: Callable[[Progress, StreamState], None] | None, seen: _Seen
    ) -> Callable[[Progress, StreamState], None]:
        """`on_progress`, and at the init line the billing lane's verdict: outside it, claude is
        stopped at once (`seen.refusing`), before its first API call."""

        def told(progress: Progress, state: StreamState) -> None:
            refused = progress.kind == "started" and refusal(
                self.config.billing, state.api_key_source
            )
            if refused and not seen.refused:
                seen.refused = refused
                seen.refusing.set()
            if on_progress is not None:
                on_progress(progress, state)

        return told

    async def _stop(
        self, proc: asyncio.subprocess.Process, execution_id: str, exited: asyncio.Task[int]
    ) -> None:
        """SIGINT, wait; SIGTERM, wait; SIGKILL the tree snapshotted beforehand."""
        tree = process_tree(proc.pid, execution_id)
        for sig, grace in (
            (signal.SIGINT, self.config.interrupt_grace_s),
            (signal.SIGTERM, self.config.terminate_grace_s),
        ):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            done, _ = await asyncio.wait({exited}, timeout=grace)
            if done:
                break
        tree += process_tree(unreaped(proc), execution_id)
        kill_tree(tree)
        await asyncio.wait({exited}, timeout=5)

    @staticmethod
    async def _write_stdin(proc: asyncio.subprocess.Process, data: bytes) -> None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(data)
            await proc.stdin.drain()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.close()

    @staticmethod
    async def _read_stdout(
        proc: asyncio.subprocess.Process,
        fd: int,
        state: StreamState,
        on_progress: Callable[[Progress, StreamState], None] | None,
        seen: _Seen,
    ) -> None:
        assert proc.stdout is not None
        pending = b""
        skipping = False  # inside a line longer than MAX_LINE
        loop = asyncio.get_running_loop()
        while chunk := await proc.stdout.read(CHUNK):
            _write_all(fd, chunk)
            if b"\n" in chunk:
                seen.last_line_at = loop.time()
            start = 0
            while (end := chunk.find(b"\n", start)) != -1:
                if skipping:
                    skipping = False
                    state.skipped_lines += 1
                else:
                    line = pending + chunk[start:end] if pending else chunk[start:end]
                    pending = b""
                    progress = feed(state, line)
                    if progress is not None and on_progress is not None:
                        on_progress(progress, state)
                start = end + 1
            if not skipping:
                pending += chunk[start:]
                if len(pending) > MAX_LINE:
                    pending, skipping = b"", True
        if pending and not skipping:
            progress = feed(state, pending)
            if progress is not None and on_progress is not None:
                on_progress(progress, state)

    @staticmethod
    async def _read_stderr(
        proc: asyncio.subprocess.Process,
        fd: int,
        tail: collections.deque[bytes],
        secrets: list[bytes],
    ) -> None:
        """stderr to its log with the secrets of our own environment masked; its tail kept."""
        assert proc.stderr is not None
        size = 0
        while chunk := await proc.stderr.read(65536):
            chunk = scrub_bytes(chunk, secrets)
            _write_all(fd, chunk)
            tail.append(chunk)
            size += len(chunk)
            while size - len(tail[0]) > STDERR_TAIL and len(tail) > 1:
                size -= len(tail.popleft())
