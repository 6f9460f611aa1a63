"""`GitSources.run`: the watcher sees a local commit at once, the periodic fetch sees a push, and
`stop` ends everything promptly, a hanging fetch included."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.test_git import Repo, World, _git_isolated, repo, source_toml, task, world

__all__ = ["_git_isolated", "repo", "world"]  # fixtures, in force here too


async def until(predicate: Callable[[], object], limit_s: float = 10.0) -> float:
    """Seconds until `predicate()` holds (polled every 10 ms)."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > limit_s:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def running(world: World, scenario: Callable[[], Awaitable[None]]) -> float:
    """Run the sources (poll every 60 s: only the watcher and the fetch can find anything) while
    `scenario` runs; returns how long `run` took to return after `stop`."""

    async def main() -> float:
        stop = asyncio.Event()
        sources = asyncio.create_task(world.sources.run(stop))
        try:
            await until(lambda: all(w.git_dirs for w in world.sources.watchers))
            await asyncio.sleep(0.2)  # the watcher is armed once the first pass is done
            await scenario()
        finally:
            stop.set()
            t0 = time.monotonic()
            await sources
        return time.monotonic() - t0

    return asyncio.run(main())


def test_a_local_commit_is_queued_within_a_second(world: World, repo: Repo) -> None:
    seen: list[float] = []

    def commit(name: str) -> None:
        repo.write(f"tasks/{name}.yaml", task(name)).commit()

    def queued(name: str) -> bool:
        return name in {t for t, _ in world.states()}

    async def scenario() -> None:
        for name in ("one", "two", "three"):
            await asyncio.to_thread(commit, name)
            seen.append(await until(functools.partial(queued, name)))

    stopped = running(world, scenario)
    assert max(seen) < 1.0, seen
    assert stopped < 1.0
    assert [s for _, s in world.states()] == ["QUEUED"] * 3


def test_the_periodic_fetch_finds_pushes(home: Path, tmp_path: Path) -> None:
    origin = Repo.init(tmp_path / "origin.git", bare=True)
    dev = Repo.clone(origin, tmp_path / "dev")
    dev.write("README", "x\n").commit()
    dev.push()
    checkout = Repo.clone(origin, tmp_path / "checkout")
    w = World(home, source_toml(checkout.path, remote="origin", fetch_interval="1s"))

    def push() -> None:
        dev.write("a.yaml", task("a")).commit()
        dev.push()

    async def scenario() -> None:
        await asyncio.to_thread(push)
        assert await until(lambda: w.tasks(), 5.0) < 3.0

    running(w, scenario)
    assert w.states() == [("a", "QUEUED")]
    w.close()


def test_stop_ends_a_hanging_fetch_at_once(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = Repo.init(tmp_path / "checkout")
    checkout.write("README", "x\n").commit()
    checkout_remote = "ssh://git.example.invalid/tasks.git"
    from tests.test_git import git

    git(checkout.path, "remote", "add", "origin", checkout_remote)
    pidfile = tmp_path / "ssh.pid"
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake_ssh))
    w = World(home, source_toml(checkout.path, remote="origin"))

    async def scenario() -> None:
        await until(pidfile.exists)

    stopped = running(w, scenario)
    assert stopped < 1.0
    time.sleep(0.1)
    assert not alive(int(pidfile.read_text()))  # the fetch's ssh is gone with it
    w.close()


def alive(pid: int) -> bool:
    """Running (a zombie that nobody reaped yet is dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
