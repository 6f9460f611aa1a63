"""The git source (issue 5): how soon committed task files are QUEUED, and how soon a committed
task's claude is started. Goals: a commit adding 1,000 task files → all QUEUED ≤ 3 s after the
commit; a `git commit` of one file → its claude process started ≤ 1 s after it.

Method. Everything runs as `claudomator serve` does, in this process: `ServeLoop.run` with the
git sources beside it (`git_sources(service, intake).run`), a real checkout in a temp folder, the
watcher on its git metadata, the default intake.debounce/step. Commits are made with the real
`git` (`git add -A && git commit`); t0 is when `git commit` returns.

1. Bulk: the pool is paused; one commit adds N files; the time until the store counts N tasks
   QUEUED. Baseline, in the same run: the same N files offered straight to the intake
   (`Intake.offer_bytes`, no git at all) in a fresh data dir — the floor that git reading and
   watching add to.
2. Latency: the pool runs; the fake claude is a shell script that writes the time it started
   (`date +%s%N`) before exec'ing the instant fake; K commits of one file each, one after another;
   latency = that start time - t0. Baseline: the same fake spawned directly (`sh` start cost).

    python bench/git.py [--files 1000] [--commits 20] [--rounds 3] [--quick]

`--quick` (CI): 200 files (two folders of 100), 2 commits, one round.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claudomator import log
from claudomator.intake import Intake
from claudomator.serve import ServeLoop, git_sources
from claudomator.service import Claudomator
from tests.fakes import make_instant_claude
from tests.services import make_service
from tests.taskfiles import task_yaml

T = TypeVar("T")


def task(i: int) -> str:
    return task_yaml(f"t{i}", f"task number {i}")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com", *args],
        cwd=cwd, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def checkout(root: Path) -> Path:
    repo = root / "checkout"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    return repo


def write_config(home: Path, repo: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        f'[[sources]]\nname = "bench"\nkind = "git"\npath = "{repo}"\nsubdir = "tasks"\n'
    )


async def serving(service: Claudomator, scenario: Callable[[Claudomator], Awaitable[T]]) -> T:
    """Run `ServeLoop(service)` with the git sources beside it while `scenario(service)` runs."""
    result: list[T] = []

    async def also(stop: asyncio.Event) -> None:
        assert service.intake is not None
        sources = git_sources(service, service.intake)
        running = asyncio.create_task(sources.run(stop))
        await until(lambda: service.store.source_state("bench") is not None)  # the baseline
        await asyncio.sleep(0.2)  # the watcher is armed
        try:
            result.append(await scenario(service))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
            await running

    await ServeLoop(service).run(also)
    return result[0]


async def bulk(service: Claudomator, repo: Path, n: int) -> float:
    for i in range(n):
        path = repo / "tasks" / f"batch{i // 100}" / f"t{i}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(task(i))
    await asyncio.to_thread(git, repo, "add", "-A")
    await asyncio.to_thread(git, repo, "commit", "-q", "-m", f"{n} tasks")
    t0 = time.perf_counter()
    await until(lambda: service.reader.counts().get("QUEUED", 0) >= n)
    return time.perf_counter() - t0


def baseline_bulk(root: Path, repo: Path, n: int) -> float:
    service = make_service(env={"CLAUDOMATOR_HOME": str(root)})
    service.pause()
    intake = Intake.of(service)
    t0 = time.perf_counter()
    for i in range(n):
        data = task(i).encode()
        rel = f"batch{i // 100}/t{i}.yaml"
        intake.offer_bytes(
            "floor", rel, data, provenance={}, base_dir=repo, version=(f"blob{i}", "commit")
        )
    elapsed = time.perf_counter() - t0
    assert service.reader.counts() == {"QUEUED": n}
    service.close()
    return elapsed


async def latencies(repo: Path, starts: Path, k: int) -> list[float]:
    out = []
    (repo / "tasks").mkdir(exist_ok=True)

    def more_than(n: int) -> bool:
        return len(started(starts)) > n

    for i in range(k):
        (repo / "tasks" / f"one{i}.yaml").write_text(task(i))
        await asyncio.to_thread(git, repo, "add", "-A")
        await asyncio.to_thread(git, repo, "commit", "-q", "-m", f"one {i}")
        t0 = time.time_ns()
        await until(functools.partial(more_than, i))
        out.append((max(started(starts)) - t0) / 1e9)
    return out


def started(starts: Path) -> list[int]:
    """When each claude started (ns since the epoch), as the recording fake wrote it."""
    return [int(p.read_text()) for p in starts.glob("[0-9]*")]


async def until(predicate: Callable[[], bool], limit_s: float = 30.0) -> None:
    """Poll `predicate` every 2 ms: the measurement looks from outside, as a person would."""
    deadline = time.monotonic() + limit_s
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.002)


def recording_claude(root: Path, starts: Path) -> Path:
    instant = make_instant_claude(root / "instant")
    wrapper = root / "bin" / "claude"
    wrapper.parent.mkdir()
    record = f'date +%s%N > "{starts}/.$$" && mv "{starts}/.$$" "{starts}/$$"'
    wrapper.write_text(f'#!/bin/sh\n{record}\nexec "{instant}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def spawn_floor(claude: Path, starts: Path, k: int) -> list[float]:
    out = []
    for _ in range(k):
        t0 = time.time_ns()
        subprocess.run([str(claude), "-p"], input=b"x", capture_output=True, check=True)
        newest = max(starts.glob("[0-9]*"), key=lambda p: p.stat().st_mtime_ns)
        out.append((int(newest.read_text()) - t0) / 1e9)
        newest.unlink()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (CI)")
    args = parser.parse_args()
    if args.quick:  # new defaults; flags given still win
        parser.set_defaults(files=200, commits=2, rounds=1)
        args = parser.parse_args()
    os.environ.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    os.environ.pop("CLAUDECODE", None)
    log.configure("warning", "json")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # 1. bulk: pool paused; rounds alternate with the floor, medians reported
        queued_runs, floor_runs = [], []
        for r in range(args.rounds):
            repo = checkout(root / f"bulk{r}")
            write_config(root / f"home-bulk{r}", repo)
            env = {"CLAUDOMATOR_HOME": str(root / f"home-bulk{r}")}
            service = make_service(env=env)
            service.pause()
            queued_runs.append(
                asyncio.run(serving(service, functools.partial(bulk, repo=repo, n=args.files)))
            )
            service.close()
            floor_runs.append(baseline_bulk(root / f"floor{r}", repo, args.files))
        queued, floor = statistics.median(queued_runs), statistics.median(floor_runs)
        # 2. latency: pool running, a recording instant claude
        starts = root / "starts"
        starts.mkdir()
        claude = recording_claude(root, starts)
        repo = checkout(root / "latency")
        write_config(root / "home-latency", repo)
        env = {
            "CLAUDOMATOR_HOME": str(root / "home-latency"),
            "CLAUDOMATOR_CLAUDE_BIN": str(claude),
        }
        service = make_service(env=env)
        lat = asyncio.run(serving(service, lambda s: latencies(repo, starts, args.commits)))
        service.close()
        for p in starts.iterdir():
            p.unlink()
        sh = spawn_floor(claude, starts, args.commits)

    def ms(values: list[float]) -> str:
        q = sorted(values)
        p95 = q[min(len(q) - 1, round(0.95 * (len(q) - 1)))]
        return (
            f"p50 {statistics.median(q) * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms, "
            f"max {q[-1] * 1000:6.1f} ms"
        )

    def rounds(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    print(f"commit adding {args.files} task files -> all QUEUED (pool paused), median of rounds")
    print(f"  after the commit      : {queued:6.2f} s   ({rounds(queued_runs)}; goal <= 3 s)")
    print(f"  intake alone (floor)  : {floor:6.2f} s   ({rounds(floor_runs)}; no git)")
    print(f"  git reading + watching: {queued - floor:6.2f} s")
    print(f"one-file commit -> its claude started ({args.commits} commits)")
    print(f"  after the commit      : {ms(lat)}   (goal <= 1 s)")
    print(f"  sh spawn alone (floor): {ms(sh)}")


if __name__ == "__main__":
    main()
