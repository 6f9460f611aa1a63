"""Concurrency limits: at most N running tasks with a tag (`limits.tags`), of a model
(`limits.models`), and one at a time per `concurrency_key`. Pure and stdlib-only,
table-tested.

Judged in a start's admission against the tasks running on every node (`LimitRound`), in the
start's own transaction, which the store serialises among the nodes while limits are set (so
racing nodes cannot both take a limit's last place). A task whose limit is full waits, its
reason saying which (`waiting for limit deploy 1/1`), and the next task in the queue is taken.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from claudomator.stored import AdmissionRound
from claudomator.workspace import WAITING, Admitted

Limits = Mapping[str, tuple[str, int]]  # key ("tag:gpu") -> (as shown, its cap)


@dataclass(frozen=True)
class Caps:
    """The configured limits: by tag, by model (a name the task's model contains)."""

    tags: Mapping[str, int]
    models: Mapping[str, int]
    default_model: str


def limits_of(config_json: str, caps: Caps) -> Limits:
    """The limits a task (its spec as JSON) counts against."""
    spec = json.loads(config_json or "{}")
    found: dict[str, tuple[str, int]] = {}
    for tag in spec.get("tags") or []:
        if tag in caps.tags:
            found[f"tag:{tag}"] = (tag, caps.tags[tag])
    model = str((spec.get("claude") or {}).get("model") or caps.default_model).lower()
    for name, cap in caps.models.items():
        if name.lower() in model:
            found[f"model:{name}"] = (f"model {name}", cap)
    if key := spec.get("concurrency_key"):
        found[f"key:{key}"] = (f"concurrency_key {key}", 1)
    return found


def admit(
    candidates: Sequence[tuple[str, Limits]], running: Mapping[str, int]
) -> tuple[list[str], dict[str, str]]:
    """Candidates in queue order (task id, its limits) beside `running` (key -> its tasks
    running): the ids the limits let start, and why the others wait. A full limit holds back
    only its own tasks."""
    taken = dict(running)
    allowed: list[str] = []
    waits: dict[str, str] = {}
    for task_id, limits in candidates:
        full = [
            (shown, taken[k], cap) for k, (shown, cap) in limits.items() if taken.get(k, 0) >= cap
        ]
        if full:
            shown, now, cap = full[0]
            waits[task_id] = f"{WAITING}limit {shown} {now}/{cap}"
            continue
        allowed.append(task_id)
        for key in limits:
            taken[key] = taken.get(key, 0) + 1
    return allowed, waits


class LimitRound:
    """A start's admission (`inner`) within the concurrency limits, counted over the tasks
    running on every node (`everywhere`: their ids, read once per start)."""

    def __init__(
        self,
        inner: AdmissionRound,
        configs: Callable[[Sequence[str]], Mapping[str, str]],
        everywhere: Sequence[str],
        caps: Caps,
    ) -> None:
        self.inner, self.configs, self.caps = inner, configs, caps
        self.running: dict[str, int] = {}
        for config in configs(everywhere).values():
            for key in limits_of(config, caps):
                self.running[key] = self.running.get(key, 0) + 1

    def consider(self, candidates: Sequence[str], slots: int) -> Admitted:
        found = self.configs(candidates)
        limits = {t: limits_of(found.get(t) or "{}", self.caps) for t in candidates}
        passed, waits = admit([(t, limits[t]) for t in candidates], self.running)
        verdict = self.inner.consider(passed, slots) if passed else Admitted([], {})
        for task_id in verdict.allowed:
            for key in limits[task_id]:
                self.running[key] = self.running.get(key, 0) + 1
        return Admitted(verdict.allowed, {**verdict.waits, **waits}, verdict.ready)
