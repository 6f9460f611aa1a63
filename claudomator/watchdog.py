"""Whether a running claude is hung, and when to look again. Pure and stdlib-only, table-tested.

Two watches, each off at 0: until claude's `system/init` line, the startup watch (`startup_s`
from the spawn); from then on, the stall watch (`stall_s` from its last stdout line). Without a
startup watch, the stall watch counts from the spawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Hung = Literal["no_start", "stall"]


@dataclass(frozen=True)
class Watch:
    startup_s: float  # no system/init line within this long: "no_start"
    stall_s: float  # no stdout line for this long: "stall"


def deadline(
    watch: Watch, *, spawned_at: float, last_line_at: float | None, initialized: bool
) -> tuple[Hung | None, float]:
    """Which watch applies now and when it runs out (math.inf: never)."""
    if not initialized and watch.startup_s > 0:
        return "no_start", spawned_at + watch.startup_s
    if watch.stall_s > 0:
        last = last_line_at if last_line_at is not None else spawned_at
        return "stall", last + watch.stall_s
    return None, math.inf


def next_look(
    watch: Watch, *, spawned_at: float, last_line_at: float | None, initialized: bool
) -> float:
    """When the verdict may change, without a line: the applying watch's deadline, or before
    the init line the earliest a stall could be due (the init line may come meanwhile)."""
    _, due = deadline(
        watch, spawned_at=spawned_at, last_line_at=last_line_at, initialized=initialized
    )
    if not initialized and watch.stall_s > 0:
        due = min(due, spawned_at + watch.stall_s)
    return due


def hung(
    watch: Watch, *, now: float, spawned_at: float, last_line_at: float | None, initialized: bool
) -> Hung | None:
    """Why claude must be stopped as hung at `now`, or None."""
    which, due = deadline(
        watch, spawned_at=spawned_at, last_line_at=last_line_at, initialized=initialized
    )
    return which if now >= due else None
