"""What `serve` outlives: a database away for a while, a full disk, spool folders it cannot write.

Each trouble is said once (a warning named `<what>.waits`, or `disk.full`) and its end once
(`<what>.recovered`, `disk.recovered`); what failed is done again: the dispatch loop on its next
round, the folders and the inbox at the next sweep. Nothing recorded is lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from claudomator.errors import DatabaseUnavailable
from claudomator.schedule import disk_full

log = structlog.get_logger("claudomator.faults")


class Faults:
    """The troubles told and not yet over, by key."""

    def __init__(self) -> None:
        self._away: set[str] = set()

    @contextlib.contextmanager
    def carry_on(self, what: str) -> Iterator[None]:
        """Run the block; a database away or an OS error (a full disk, a folder not writable)
        is told once and swallowed, and the next success says it is over."""
        try:
            yield
        except (DatabaseUnavailable, OSError) as e:
            self.trouble("disk.full" if disk_full(e) else f"{what}.waits", str(e))
        else:
            self.over(f"{what}.waits", f"{what}.recovered")

    def guard(self, what: str, call: Callable[..., object]) -> Callable[..., None]:
        """`call`, under `carry_on(what)`: for the watcher's and the loop's callbacks."""

        def guarded(*args: Any) -> None:
            with self.carry_on(what):
                call(*args)

        return guarded

    def trouble(self, key: str, error: str) -> None:
        if key not in self._away:
            log.warning(key, error=error)
        self._away.add(key)

    def over(self, key: str, event: str) -> None:
        """The trouble `key` is over: said (as `event`) only if it was told."""
        if key in self._away:
            self._away.discard(key)
            log.info(event)


__all__ = ["Faults"]
