"""The inbox source: watchfiles on `inbox/` (new files) and on the spool folders whose files
people may delete (`queued/`, `done/`, `rejected/`), plus a sweep at start, periodically and after
a watcher error, so that missed events do not matter."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from claudomator.sources.watch import Change, Watching, changes

log = structlog.get_logger("claudomator.sources.inbox")


class InboxWatcher:
    def __init__(
        self,
        inbox: Path,
        folders: dict[str, Path],
        *,
        on_files: Callable[[list[str]], object],
        on_deleted: Callable[[str, list[str]], None],
        sweep: Callable[[], None],
        sweep_interval_s: float,
        debounce_s: float,
        step_s: float,
        poll: bool,
    ) -> None:
        self.inbox, self.folders = inbox, folders
        self.on_files, self.on_deleted, self.sweep = on_files, on_deleted, sweep
        self.sweep_interval_s = sweep_interval_s
        self.watching = Watching.of(debounce_s, step_s, poll)

    async def run(self, stop: asyncio.Event) -> None:
        sweeper = asyncio.create_task(self._sweep_periodically(stop), name="inbox:sweep")
        try:
            while not stop.is_set():
                try:
                    await self._watch(stop)
                except Exception as e:  # the watcher broke (e.g. a watch limit): sweep, retry
                    log.warning("inbox.watch_error", error=repr(e))
                    try:
                        self.sweep()
                    except Exception as again:  # the next round, or the periodic sweep, retries
                        log.warning("inbox.sweep_error", error=repr(again))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def _watch(self, stop: asyncio.Event) -> None:
        inbox = str(self.inbox)
        folders = {name: str(path) + os.sep for name, path in self.folders.items()}
        paths: list[str | Path] = [inbox, *self.folders.values()]
        async for batch in changes(paths, self.watching, stop, recursive=True):
            found: list[str] = []
            deleted: dict[str, list[str]] = {}
            for change, path in batch:
                if path.startswith(inbox + os.sep):
                    if change is not Change.deleted:
                        found.append(path[len(inbox) + 1 :])
                elif change is Change.deleted:
                    for name, top in folders.items():
                        if path.startswith(top):
                            deleted.setdefault(name, []).append(path[len(top) :])
            for name, rels in deleted.items():  # first: a file moved back to the inbox
                self.on_deleted(name, rels)  # leaves done/ (and its result file) before
            if found:  # its new tasks may put a file of that name there again
                self.on_files(found)

    async def _sweep_periodically(self, stop: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sweep_interval_s)
                return
            try:
                self.sweep()
            except Exception as e:
                log.warning("inbox.sweep_error", error=repr(e))
