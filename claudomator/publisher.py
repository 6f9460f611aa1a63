"""Committed events out of this process: logged under their type, fanned out by the hub, told to
the listeners (a `run`'s open tasks, its progress lines), the pool woken; and the spool mirror
follows the files they move.

Every event published here was committed first (a state change and its event are one
transaction), so the folders only ever follow the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from claudomator.events import Hub
from claudomator.faults import Faults
from claudomator.records import Event

if TYPE_CHECKING:
    from claudomator.mirror import Mirror

log = structlog.get_logger("claudomator.publisher")

Listener = Callable[[Event], None]


def moves_file(event: Event) -> bool:
    """Whether an event may move its task's spool file: a start, an end, or a task queued
    again (a retry, or a dependency settled), not a task queued as it is created."""
    if not event.get("file_id"):
        return False
    kind = event["type"]
    return kind in ("task.started", "task.finished") or (
        kind == "task.queued" and "reason" in event
    )


class Publisher:
    def __init__(self, hub: Hub, wake: Callable[[], None], faults: Faults) -> None:
        self.hub = hub
        self.wake = wake  # the pool's: a state change may free or fill a slot
        self.faults = faults
        self.mirror: Mirror | None = None  # `serve` only, once recovery settled the folders
        self.listeners: list[Listener] = []  # this process's events, as they are published
        self.remote_listeners: list[Listener] = []  # the events other nodes committed

    def publish(self, events: Iterable[Event]) -> None:
        """Events this process committed."""
        files: dict[str, None] = {}
        for event in events:
            if moves_file(event):
                files[event["file_id"]] = None
            for listener in self.listeners:
                listener(event)
            log.info(event["type"], **{k: v for k, v in event.items() if k != "type"})
            self.hub.publish(event)
            self.wake()
        if self.mirror is not None and files:
            # the folders follow on the loop's next turn, once the step at hand (a dispatch
            # round, a record) is done: a started task's file is in running/ before its claude
            # is spawned, as the execution's own first step comes after this callback
            try:
                asyncio.get_running_loop().call_soon(self._follow, list(files))
            except RuntimeError:
                self._follow(list(files))

    def publish_remote(self, events: Iterable[Event]) -> None:
        """Events another node committed: to the hub (the API's clients), and the folders of the
        files this node ingested follow whichever node ran their tasks."""
        files: dict[str, None] = {}
        for event in events:
            if moves_file(event):
                files[event["file_id"]] = None
            for listener in self.remote_listeners:
                listener(event)
            self.hub.publish(event, remote=True)
        self.wake()
        if files:
            self._follow(list(files))

    def tell(self, event: Event) -> None:
        """A notice that records nothing (`pool.waiting`): to the hub and the listeners only."""
        for listener in self.listeners:
            listener(event)
        self.hub.publish(event)

    def _follow(self, file_ids: list[str]) -> None:
        if self.mirror is not None:
            with self.faults.carry_on("mirror"):  # a move that failed is done again at the sweep
                self.mirror.sync(file_ids)


__all__ = ["Listener", "Publisher", "moves_file"]
