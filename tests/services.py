"""The service tests and benches build: one data dir's `Claudomator`, configured as the CLI
configures it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from claudomator.config import load_config
from claudomator.service import Claudomator
from claudomator.state import FINAL_STATES


def make_service(
    home: Path | None = None,
    *,
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Claudomator:
    """A `Claudomator` on `load_config(home, env, flags)`: the data dir `home` (else the one `env`
    names), the environment `env` (else this process's), then `flags` by key name. It is its own
    context manager: `with make_service(...) as service:` closes it at the end."""
    return Claudomator(load_config(home, env=env, flags=flags))


def run_pool(service: Claudomator, task_ids: Sequence[str], timeout_s: float = 60) -> None:
    """Execute tasks as `serve` does (its pool, starting any queued task, whoever submitted it)
    until each of `task_ids` is final."""

    def done() -> bool:
        return all(
            t["state"] in FINAL_STATES for t in service.tasks(ids=list(task_ids), limit=None)
        )

    service.node.join("serve")
    lifecycle = service.lifecycle
    running = service.pool.run(lifecycle.start, lifecycle.execute, done, 0.05)
    asyncio.run(asyncio.wait_for(running, timeout_s))


def serve_until(service: Claudomator, until: Callable[[], bool], timeout_s: float = 30) -> None:
    """The pool as `serve` runs it (the gate checked before each start) until `until()`."""
    service.node.join("serve")
    lifecycle = service.lifecycle

    def start(n: int) -> list[str]:
        return lifecycle.start(n) if service.gate().open else []

    running = service.pool.run(start, lifecycle.execute, until, 0.05)
    asyncio.run(asyncio.wait_for(running, timeout_s))
