"""Money limits beyond one task's: per tag per day (`budget.tags`), per batch file (its
`budget_usd`). Pure and stdlib-only, table-tested.

A tag whose spend today reached its cap makes its queued tasks wait, with the reason shown
(`TagRound`, in the start's admission), while other tasks go on. An execution may spend at most
what is left of every limit that covers it (`money_left`): the least of its task's
`max_budget_usd`, its batch's budget less what the batch spent, and each of its tags' caps less
what the tag spent today; when nothing is left it does not run (BUDGET_EXCEEDED).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from claudomator.command import MIN_BUDGET_USD
from claudomator.outcome import usd
from claudomator.stored import AdmissionRound
from claudomator.workspace import WAITING, Admitted


@dataclass(frozen=True)
class Limit:
    """One money limit that covers an execution: what it is, its cap, what was spent of it."""

    label: str  # "batch budget", "tag nightly budget today"
    cap_usd: float
    spent_usd: float

    @property
    def left_usd(self) -> float:
        return self.cap_usd - self.spent_usd

    @property
    def reached(self) -> str:
        return f"{self.label} {usd(self.cap_usd)} reached (${self.spent_usd:.4f})"


def over_tags(caps: Mapping[str, float], spent: Mapping[str, float]) -> dict[str, str]:
    """The tags whose spend today reached their cap, with why their tasks wait."""
    return {
        tag: f"{WAITING}budget: tag {tag} spent ${spent.get(tag, 0.0):.2f} of {usd(cap)} today"
        for tag, cap in caps.items()
        if spent.get(tag, 0.0) >= cap
    }


def money_left(task_budget: float | None, limits: Sequence[Limit]) -> tuple[float | None, str]:
    """What one execution may spend (None: no limit), and, when that is nothing, which limit
    was reached."""
    left = task_budget
    for limit in limits:
        if limit.left_usd < MIN_BUDGET_USD:
            return 0.0, limit.reached
        left = limit.left_usd if left is None else min(left, limit.left_usd)
    return left, ""


class TagRound:
    """A start's admission (`inner`) less the tasks one of whose tags is over its budget today:
    those wait, their reason saying so."""

    def __init__(
        self,
        inner: AdmissionRound,
        configs: Callable[[Sequence[str]], Mapping[str, str]],
        over: Mapping[str, str],
    ) -> None:
        self.inner, self.configs, self.over = inner, configs, over

    def consider(self, candidates: Sequence[str], slots: int) -> Admitted:
        found = self.configs(candidates)
        waits: dict[str, str] = {}
        for task_id in candidates:
            tags = json.loads(found.get(task_id) or "{}").get("tags") or []
            if reason := next((self.over[t] for t in tags if t in self.over), None):
                waits[task_id] = reason
        rest = [t for t in candidates if t not in waits]
        verdict = self.inner.consider(rest, slots) if rest else Admitted([], {})
        return Admitted(verdict.allowed, {**verdict.waits, **waits}, verdict.ready)


def memo(configs: Callable[[Sequence[str]], Mapping[str, str]]) -> Callable[..., Mapping[str, str]]:
    """`configs` read once per task id in one admission (the workspaces read them too)."""
    seen: dict[str, str] = {}

    def read(ids: Sequence[str]) -> Mapping[str, str]:
        missing = [i for i in ids if i not in seen]
        if missing:
            seen.update(configs(missing))
        return {i: seen[i] for i in ids if i in seen}

    return read
