"""The bounded pool: slots plus named asyncio tasks, a dispatch loop, cancel, and a graceful stop
with a deadline, then escalation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger("claudomator.pool")

Execute = Callable[[str, asyncio.Event], Coroutine[Any, Any, None]]  # one task, to its end


class Pool:
    """Never more executions alive than `slots`; a slot is released however an execution ends."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self.stopping = False

    def wake(self) -> None:
        self._wake.set()

    @property
    def free(self) -> int:
        return 0 if self.stopping else self.slots - len(self.running)

    def _launch(self, task_id: str, execute: Execute) -> None:
        cancel = asyncio.Event()
        job = asyncio.create_task(execute(task_id, cancel), name=f"execution:{task_id}")
        self.running[task_id] = job
        self._cancels[task_id] = cancel
        job.add_done_callback(lambda t, task_id=task_id: self._release(task_id, t))  # type: ignore[misc]

    def _release(self, task_id: str, job: asyncio.Task[None]) -> None:
        self.running.pop(task_id, None)
        self._cancels.pop(task_id, None)
        if not job.cancelled() and (exc := job.exception()) is not None:
            log.error("pool.execution_crashed", task_id=task_id, error=repr(exc))
        self._wake.set()

    def cancel(self, task_id: str) -> bool:
        """Ask a running execution to stop; False when it does not run here."""
        event = self._cancels.get(task_id)
        if event is None:
            return False
        event.set()
        return True

    async def run(
        self,
        start: Callable[[int], list[str]],
        execute: Execute,
        done: Callable[[], bool],
        poll_s: float = 1.0,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Fill free slots until `done()` says so with nothing running, or a stop: `start(n)`
        starts up to `n` tasks (QUEUED → RUNNING) and returns their ids, `execute` runs each.
        `tick` runs on every round (at least every `poll_s`), e.g. to notice cancel requests."""
        while True:
            self._wake.clear()
            if tick is not None:
                tick()
            if self.free > 0:
                for task_id in start(self.free):
                    if task_id not in self.running:
                        self._launch(task_id, execute)
            if not self.running and (self.stopping or done()):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_s)

    async def stop(self, grace_s: float) -> None:
        """Start nothing new; let running executions finish within `grace_s`, then cancel them."""
        self.stopping = True
        self._wake.set()
        jobs = list(self.running.values())
        if jobs:
            await asyncio.wait(jobs, timeout=grace_s)
        for event in list(self._cancels.values()):
            event.set()
        jobs = list(self.running.values())
        if jobs:
            await asyncio.wait(jobs)
