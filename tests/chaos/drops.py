"""What a campaign drops into the inboxes: random task files (plain, verified in rounds, retried,
failing, batches with a dependency, invalid) and what claudomator must make of each."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PlannedTask:
    name: str
    max_attempts: int  # 1 without a retry policy
    rounds: int = 0  # verify rounds an attempt may add


@dataclass
class Drop:
    """One task file put into a node's inbox (atomically, under a name used once)."""

    rel: str  # relative to the inbox
    node: int
    data: bytes
    valid: bool
    kind: str
    tasks: tuple[PlannedTask, ...]
    round: int
    while_down: bool = False


FOLDERS = 8  # the working folders tasks are spread over (tasks on one folder run one at a time)


def _one(
    name: str,
    scenario: str,
    retry: bool,
    depends_on: str = "",
    *,
    where: str,
    verified: bool = False,
    **params: Any,
) -> str:
    lines = [f"name: {name}"]
    if depends_on:
        lines.append(f"depends_on: [{depends_on}]")
    if retry:
        lines.append('retry: {max_attempts: 2, backoff: "1s"}')
    lines += ["claude:", f'  working_dir: "{where}"']
    if verified:  # the check fails until claude, resumed, writes the file it looks for
        lines.insert(1, f'verify: {{commands: "test -f verified-{name}", rounds: 1}}')
        lines.append(f'  env: {{FAKE_CLAUDE_RESUME_EDIT: "verified-{name}=ok"}}')
    lines.append("  instructions: |")
    lines.append(f"    fake-scenario: {scenario}")
    lines += [f"    fake-{k}: {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def _indent(text: str) -> str:
    first, *rest = text.splitlines()
    return "\n".join([f"  - {first}", *(f"    {line}" for line in rest)]) + "\n"


def make_drop(rng: random.Random, number: int, node: int, round_: int, work: Path) -> Drop:
    """A random task file: its text and what claudomator must make of it. Its tasks run in one
    of the `FOLDERS` folders of `work`."""
    stem = f"f{number:03d}"

    def _task(*args: Any, **params: Any) -> str:
        return _one(*args, where=str(work / str(rng.randrange(FOLDERS))), **params)

    rel = (
        ("team/" if rng.random() < 0.3 else "") + stem + (".yml" if rng.random() < 0.2 else ".yaml")
    )

    def sleep() -> dict[str, Any]:
        return {"sleep_s": round(rng.uniform(0.1, 1.5), 2)}

    def failing() -> dict[str, Any]:
        return {"startup_s": round(rng.uniform(0.1, 0.6), 2)}

    roll = rng.random()
    tasks: tuple[PlannedTask, ...]
    if roll < 0.22:
        kind, text = "plain", _task(stem, "sleep", False, **sleep())
        tasks = (PlannedTask(stem, 1),)
    elif roll < 0.30:
        kind, text = "verified", _task(stem, "sleep", False, verified=True, **sleep())
        tasks = (PlannedTask(stem, 1, rounds=1),)
    elif roll < 0.45:
        kind, text = "retry", _task(stem, "sleep", True, **sleep())
        tasks = (PlannedTask(stem, 2),)
    elif roll < 0.55:
        kind, text = "retry-failing", _task(stem, "error_during_execution", True, **failing())
        tasks = (PlannedTask(stem, 2),)
    elif roll < 0.80:
        first, second = f"{stem}-build", f"{stem}-test"
        fails = rng.random() < 0.25
        head = (
            _task(first, "error_during_execution", False, **failing())
            if fails
            else _task(first, "sleep", False, **sleep())
        )
        tail = _task(second, "sleep", False, depends_on=first, **sleep())
        kind = "batch-failing" if fails else "batch"
        text = "tasks:\n" + _indent(head) + _indent(tail)
        tasks = (PlannedTask(first, 1), PlannedTask(second, 1))
    else:
        kind, text = rng.choice(
            [
                ("invalid-key", f"name: {stem}\nclaude: {{instructions: x, bogus_key: 1}}\n"),
                ("invalid-yaml", f"name: {stem}\nclaude: [unclosed\n"),
                ("invalid-depends", _task(stem, "sleep", False, depends_on=f"{stem}-nobody")),
                ("invalid-value", f"name: {stem}\npriority: urgent\nclaude: {{instructions: x}}\n"),
            ]
        )
        tasks = ()
    return Drop(rel, node, text.encode(), not kind.startswith("invalid"), kind, tasks, round_)
