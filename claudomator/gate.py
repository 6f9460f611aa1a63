"""Whether the pool may start tasks now: its recorded state (paused, draining, rate limited, kept
across restarts), today's spend against the daily budget, and the room left on disk. The decision
itself is `schedule.pool_gate`, a pure function; this gathers its inputs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from claudomator.budget import Limit, over_tags
from claudomator.config import Config
from claudomator.records import Event
from claudomator.schedule import Gate, pool_gate
from claudomator.store.db import Store
from claudomator.store.reader import Reader, start_of_today
from claudomator.stored import PoolState

SPENT_FOR_S = 5.0  # other processes spend too: today's spend is summed again this often


class PoolGate:
    def __init__(
        self,
        config: Config,
        store: Store,
        reader: Reader,
        publish: Callable[[Iterable[Event]], None],
    ) -> None:
        self.config, self.store, self.reader, self.publish = config, store, reader, publish
        self._spent: tuple[float, float, float] | None = None  # (day, spent, when summed)
        self._spent_dirty = False
        self._by_tag: tuple[float, dict[str, float], float] | None = None
        self._tags_dirty = False

    def set(self, **changes: Any) -> PoolState:
        """Change the pool's recorded state (`paused`, `reason`, `draining`,
        `rate_limited_until`, `rate_limit_reason`); returns it."""
        state, event = self.store.set_pool_state(**changes)
        if event is not None:
            self.publish([event])
        return state

    def check(self, by_hand: bool = True) -> Gate:
        """`by_hand` False (`run`): a pause or drain by hand does not hold it, money and rate
        limits do."""
        return pool_gate(
            self.store.pool_state(),
            now=time.time(),
            spent_today=self.spent_today(),
            daily_budget=self.config.daily_budget_usd,
            by_hand=by_hand,
            free_bytes=self.free_bytes(),
        )

    def free_bytes(self) -> int:
        """Room left for logs, spool moves and (SQLite) the database, on the fuller disk."""
        folders = {self.config.data_dir.root}
        if self.store.path is not None:
            folders.add(self.store.path.parent)
        free = []
        for folder in folders:
            st = os.statvfs(folder)
            free.append(st.f_bavail * st.f_frsize)
        return min(free)

    def spent_today(self) -> float:
        """Today's spend, summed again when an execution ended, the day changed, or
        `SPENT_FOR_S` passed: the dispatch loop asks four times a second."""
        day, now = start_of_today(), time.monotonic()
        cached = self._spent
        if cached is None or cached[0] != day or now - cached[2] > SPENT_FOR_S or self._spent_dirty:
            self._spent_dirty = False
            self._spent = cached = (day, self.reader.cost_since(day), now)
        return cached[1]

    def over_tags(self) -> dict[str, str]:
        """The tags whose spend today reached their `budget.tags` cap, with why their tasks
        wait (summed again as today's spend is)."""
        caps = dict(self.config.tag_budgets)
        if not caps:
            return {}
        return over_tags(caps, self.spent_by_tag())

    def spent_by_tag(self) -> dict[str, float]:
        day, now = start_of_today(), time.monotonic()
        cached = self._by_tag
        if cached is None or cached[0] != day or now - cached[2] > SPENT_FOR_S or self._tags_dirty:
            self._tags_dirty = False
            tags = [tag for tag, _ in self.config.tag_budgets]
            self._by_tag = cached = (day, self.store.spent_by_tag(tags, day), now)
        return cached[1]

    def limits(self, tags: Sequence[str], batch_id: str, batch_budget: float) -> list[Limit]:
        """The money limits beyond its own that cover a task's next execution."""
        caps = dict(self.config.tag_budgets)
        found = []
        if batch_id and batch_budget:
            found.append(Limit("batch budget", batch_budget, self.store.spent_by_batch(batch_id)))
        if caps and any(tag in caps for tag in tags):
            self._tags_dirty = True  # exact: this decides what an execution may spend
            spent = self.spent_by_tag()
            found += [Limit(f"tag {t} budget today", caps[t], spent.get(t, 0.0)) for t in tags
                      if t in caps]  # fmt: skip
        return found

    def spent_changed(self) -> None:
        """An execution ended (here, or on another node: the daily budget is the cluster's)."""
        self._spent_dirty = True
        self._tags_dirty = True


__all__ = ["PoolGate"]
