"""The one watchfiles setup every source uses: the inbox's folders and a git checkout's metadata
folders are watched alike (no filter: the caller decides what a change means; a debounce and a
step from the config; polling when `intake.poll` asks for it). The only watchfiles import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, awatch


@dataclass(frozen=True)
class Watching:
    """How folders are watched: the debounce and step in milliseconds, and whether to poll."""

    debounce_ms: int
    step_ms: int
    poll: bool

    @classmethod
    def of(cls, debounce_s: float, step_s: float, poll: bool) -> Watching:
        return cls(max(1, round(debounce_s * 1000)), max(1, round(step_s * 1000)), poll)


def changes(
    paths: Sequence[str | Path], how: Watching, stop: asyncio.Event, *, recursive: bool
) -> AsyncIterator[set[tuple[Change, str]]]:
    """Batches of changes below `paths` until `stop` is set."""
    return awatch(
        *paths,
        watch_filter=None,
        debounce=how.debounce_ms,
        step=how.step_ms,
        stop_event=stop,
        force_polling=how.poll,
        poll_delay_ms=max(how.step_ms, 100),
        rust_timeout=1000,
        recursive=recursive,
    )


__all__ = ["Change", "Watching", "changes"]
