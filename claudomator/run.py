"""`claudomator run`: task and batch files run now, by this process alone, without a server.

Its tasks are recorded with this process as their dispatcher, so that no `serve` takes them and,
should it vanish, another process cancels what it never started (recovery, step 2). It is a node
under its own identity while it runs; a pause or drain by hand does not hold it, money and rate
limits do.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from claudomator.records import Event, Task
from claudomator.service import Claudomator
from claudomator.state import FINAL_STATES, State


class Run:
    """This process executes only its own tasks (and their retries) until all are final."""

    def __init__(self, service: Claudomator, task_ids: list[str]) -> None:
        self.service = service
        self.ids = set(task_ids)
        states = {t["id"]: t["state"] for t in service.tasks(ids=task_ids, limit=None)}
        self.open = {t for t in task_ids if states.get(t) not in FINAL_STATES}
        self._told = ""  # why nothing starts, said once
        self.guarded = False  # a guard paused the pool: nothing more starts until resumed

    def _follow(self, event: Event) -> None:
        if event.get("task_id") in self.ids:
            if event["type"] == "task.finished":
                self.open.discard(event["task_id"])
            elif event["type"] == "task.queued":
                self.open.add(event["task_id"])

    def _start(self, n: int) -> list[str]:
        service = self.service
        gate = service.pool_gate.check(by_hand=False)  # money and rate limits hold `run` too
        if not gate.open:
            # a failed authentication or the billing lane: no waiting it out here; what is
            # left stays QUEUED for `claudomator resume` (and a serve) once it is fixed
            self.guarded = bool(service.store.pool_state().get("guard"))
            if gate.reason != self._told:  # say once why nothing starts, and until when
                self._told = gate.reason
                service.publisher.tell(
                    {"type": "pool.waiting", "reason": gate.reason, "until": gate.until}
                )
            return []
        self._told = ""
        return service.lifecycle.start(n, service.identity)

    async def until_final(self) -> None:
        service = self.service
        service.publisher.listeners.append(self._follow)
        service.node.join("run")
        stop = asyncio.Event()
        beside = asyncio.create_task(
            service.node.run(
                stop,
                notice_lost=service.recovery.end_lost_nodes,
                stop_executions=service.lifecycle.stop_lost,
            ),
            name="node",
        )
        try:
            await service.pool.run(
                self._start,
                service.lifecycle.execute,
                lambda: not self.open or (self.guarded and not service.pool.running),
                tick=service.lifecycle.check_cancels,
            )
        finally:
            stop.set()
            await beside
            service.node.leave()
            service.publisher.listeners.remove(self._follow)

    async def interrupt(self, reason: str) -> None:
        """Ctrl-C: cancel what has not started, stop what runs (whole process trees)."""
        service = self.service
        for task_id in sorted(self.open):
            event = service.store.transition(
                task_id, State.CANCELLED, expect=[State.PENDING, State.QUEUED], reason=reason
            )
            if event is not None:
                service.publish([event])
        await service.pool.stop(0)


def run_files(
    service: Claudomator,
    files: list[Path],
    *,
    fail_on_rate_limit: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> Ran:
    """Record the files' tasks (all or none), run them until all are final (SIGINT/SIGTERM:
    cancel cleanly), and return them in order, with the signal that interrupted them if one
    did. `on_event` hears each event from the first start on."""
    if fail_on_rate_limit:
        service.lifecycle.max_requeues = 0
    return asyncio.run(_run_files(service, files, on_event))


class Ran(NamedTuple):
    """What `run_files` ran: its tasks in order, and the signal that interrupted them (None:
    they all ended by themselves)."""

    tasks: list[Task]
    stopped_by: int | None


async def _run_files(
    service: Claudomator, files: list[Path], on_event: Callable[[Event], None] | None
) -> Ran:
    ids = service.submit_files(files, source="run")
    service.recovery.end_orphans()
    run = Run(service, ids)
    if on_event is not None:  # told before the first start publishes anything
        service.publisher.listeners.append(on_event)
    loop = asyncio.get_running_loop()
    stopped_by: list[int] = []
    interrupting: list[asyncio.Future[None]] = []

    def interrupt(signum: int) -> None:
        stopped_by.append(signum)
        interrupting.append(asyncio.ensure_future(run.interrupt("interrupted")))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    try:
        await run.until_final()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if on_event is not None:
            service.publisher.listeners.remove(on_event)
    return Ran(service.tasks(ids=ids, limit=None)[::-1], stopped_by[0] if stopped_by else None)


__all__ = ["Ran", "Run", "run_files"]
