"""End-to-end tasks per second of the full path (record → pool → spawn → log files → parse →
record) with an instant fake claude, against a raw asyncio loop spawning the same fake in the same
run. Goal: the full path reaches ≥ 40 % of the raw rate.

    python bench/throughput.py [--tasks 2000] [--concurrency 8] [--rounds 3] [--quick]

`--quick` (CI): 16 tasks, one round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claudomator import log
from claudomator.run import Run
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.fakes import make_instant_claude
from tests.services import make_service


async def raw_rate(claude: Path, n: int, k: int, cwd: Path) -> float:
    """Spawn the fake n times through k workers, prompt on stdin, stdout read to EOF."""
    sem = asyncio.Semaphore(k)

    async def one() -> None:
        async with sem:
            proc = await asyncio.create_subprocess_exec(
                str(claude), "-p", cwd=cwd,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await proc.communicate(b"do it")
            assert proc.returncode == 0 and b'"result"' in out

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def full_rate(claude: Path, n: int, k: int, home: Path, cwd: Path) -> float:
    env = {"CLAUDOMATOR_HOME": str(home), "CLAUDOMATOR_CLAUDE_BIN": str(claude)}
    service = make_service(env=env, flags={"max_concurrency": k, "claude.working_dir": str(cwd)})
    specs = []
    for i in range(n):  # a folder each: shared tasks on one folder would run one at a time
        (cwd / f"t{i}").mkdir(exist_ok=True)
        claude_part = {"instructions": "do it", "working_dir": str(cwd / f"t{i}")}
        specs.append(TaskSpec.model_validate({"name": f"t{i}", "claude": claude_part}))
    t0 = time.perf_counter()
    ids = service.submit(
        ParsedFile("bench.yaml", specs, True, []), source="bench", dispatcher=service.identity
    )
    await Run(service, ids).until_final()
    rate = n / (time.perf_counter() - t0)
    counts = service.reader.counts()
    service.close()
    assert counts == {"COMPLETED": n}, counts
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (CI)")
    args = parser.parse_args()
    if args.quick:  # new defaults; flags given still win
        parser.set_defaults(tasks=16, rounds=1)
        args = parser.parse_args()
    log.configure("warning", "json")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        claude = make_instant_claude(root / "bin")
        cwd = root / "work"
        cwd.mkdir()
        os.environ.pop("CLAUDECODE", None)
        raws, fulls = [], []
        for r in range(args.rounds):
            raws.append(asyncio.run(raw_rate(claude, args.tasks, args.concurrency, cwd)))
            fulls.append(
                asyncio.run(full_rate(claude, args.tasks, args.concurrency, root / f"home{r}", cwd))
            )
        raw, full = sorted(raws)[len(raws) // 2], sorted(fulls)[len(fulls) // 2]
        print(
            f"tasks per round: {args.tasks}, max_concurrency: {args.concurrency}, rounds: {args.rounds}"
        )
        print(
            f"raw asyncio spawn loop : {raw:8.1f} tasks/s  (rounds: {', '.join(f'{x:.0f}' for x in raws)})"
        )
        print(
            f"claudomator full path  : {full:8.1f} tasks/s  (rounds: {', '.join(f'{x:.0f}' for x in fulls)})"
        )
        print(f"ratio                  : {full / raw:8.1%}  (goal >= 40%)")


if __name__ == "__main__":
    main()
