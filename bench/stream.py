"""1 GB of stream-json through ONE execution of the full runner path: the fake claude's `stream`
scenario (Bash tool_use/tool_result pairs, as fast as it can print them) is run as one task by
`claudomator.run.Run`, so claudomator reads the pipe, writes `stdout.log`, parses every line,
records the progress events and the final result. Goals (issue 3): ≥ 100 MB/s of log written and
parsed, RSS growth of the claudomator process ≤ 20 MB.

The baseline, measured in the same run: the same fake with the same prompt, its stdout read by a
plain asyncio loop and thrown away. The fake needs about one core to print ~600 MB/s, so on two
cores the full path is bounded by min(generator, claudomator); the CPU seconds claudomator itself
spent (its user + system time, all threads) give its own rate, independent of the generator.

RSS is sampled from /proc/self/status (VmRSS) every 5 ms by a thread; growth = peak during the run
minus the value just before it. MB = 10^6 bytes.

    python bench/stream.py [--gb 1.0] [--line-kb 4] [--rounds 3] [--quick]

`--quick` (CI): 20 MB of stream-json, one round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claudomator import log
from claudomator.run import Run
from claudomator.runner import RunResult
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.fakes import make_fake_claude
from tests.services import make_service

MB = 1_000_000
CHUNK = 1 << 20


def rss_bytes() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssSampler(threading.Thread):
    """VmRSS of this process every `every_s` while it runs: the peak, and the peak of the first
    half of the run (so a growth that goes on with the stream shows as a second-half growth)."""

    def __init__(self, every_s: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.start_rss = rss_bytes()
        self.samples: list[tuple[float, int]] = [(time.monotonic(), self.start_rss)]
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every_s):
            self.samples.append((time.monotonic(), rss_bytes()))

    def stop(self) -> tuple[int, int]:
        """(growth over the whole run, growth during its second half), in bytes."""
        self._done.set()
        self.join()
        self.samples.append((time.monotonic(), rss_bytes()))
        middle = (self.samples[0][0] + self.samples[-1][0]) / 2
        peak = max(rss for _, rss in self.samples)
        first_half = max(rss for t, rss in self.samples if t <= middle)
        return peak - self.start_rss, peak - first_half


def prompt(nbytes: int, line_kb: float) -> str:
    return (
        "Stream a lot.\n"
        "fake-scenario: stream\n"
        f"fake-mb: {nbytes / (1 << 20):.6f}\n"
        f"fake-line-kb: {line_kb}\n"
    )


async def raw_read(claude: Path, text: str, cwd: Path) -> tuple[int, float]:
    """The same fake and prompt; stdout read to EOF by a plain asyncio loop and thrown away."""
    proc = await asyncio.create_subprocess_exec(
        str(claude), "-p", "--output-format", "stream-json", "--verbose", cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, limit=CHUNK,
    )  # fmt: skip
    t0 = time.perf_counter()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    n = 0
    while chunk := await proc.stdout.read(CHUNK):
        n += len(chunk)
    await proc.wait()
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.returncode
    return n, seconds


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system  # this process, all its threads (children are not included)


async def full_run(claude: Path, text: str, home: Path, cwd: Path) -> dict[str, Any]:
    env = {"CLAUDOMATOR_HOME": str(home), "CLAUDOMATOR_CLAUDE_BIN": str(claude)}
    service = make_service(env=env, flags={"max_concurrency": 1, "claude.working_dir": str(cwd)})
    config = service.config
    results: list[RunResult] = []
    run = service.runner.run

    async def keep_result(*args: Any, **kwargs: Any) -> RunResult:
        result = await run(*args, **kwargs)
        results.append(result)
        return result

    service.runner.run = keep_result  # type: ignore[method-assign]
    spec = TaskSpec.model_validate({"name": "stream", "claude": {"instructions": text}})
    ids = service.submit(
        ParsedFile("bench.yaml", [spec], True, []), source="bench", dispatcher=service.identity
    )
    sampler = RssSampler()
    sampler.start()
    c0, t0 = cpu_s(), time.perf_counter()
    await Run(service, ids).until_final()
    seconds, cpu = time.perf_counter() - t0, cpu_s() - c0
    growth, late_growth = sampler.stop()
    task = service.task(ids[0])
    execution = task["executions"][-1] if task.get("executions") else None
    service.close()
    db = sqlite3.connect(config.data_dir.database)
    (events,) = db.execute("SELECT count(*) FROM events WHERE task_id = ?", ids).fetchone()
    (log_path,) = db.execute("SELECT stdout_path FROM executions WHERE task_id = ?", ids).fetchone()
    db.close()
    assert task["state"] == "COMPLETED", (task["state"], task.get("reason"), execution)
    stream = results[0].stream
    return {
        "log_path": log_path,
        "seconds": seconds,
        "cpu_s": cpu,
        "rss_start": sampler.start_rss,
        "rss_growth": growth,
        "rss_late_growth": late_growth,
        "lines": stream.lines,
        "tool_calls": stream.tool_calls,
        "events": events,
        "cost": stream.cost_usd,
    }


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def one_round(gb: float, line_kb: float) -> dict[str, Any]:
    """Raw read, then the full path, in this (fresh) process."""
    log.configure("warning", "json")
    os.environ.pop("CLAUDECODE", None)
    text = prompt(int(gb * 1e9), line_kb)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        root = Path(tmp)
        claude = make_fake_claude(root / "bin")
        cwd = root / "work"
        cwd.mkdir()
        n, s = asyncio.run(raw_read(claude, text, cwd))
        full = asyncio.run(full_run(claude, text, root / "home", cwd))
        log_path = Path(full.pop("log_path"))
        full["bytes"] = log_path.stat().st_size
        log_path.unlink()  # the 1 GB log is not kept
    return {"raw_bytes": n, "raw_s": s, **full}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="stream-json to send, in GB (1e9)")
    parser.add_argument("--line-kb", type=float, default=4, help="tool result size (KiB)")
    parser.add_argument("--rounds", type=int, default=3, help="each in a fresh process")
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (CI)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:  # new defaults; flags given still win
        parser.set_defaults(gb=0.02, rounds=1)
        args = parser.parse_args()
    if args.child:
        print(json.dumps(one_round(args.gb, args.line_kb)))
        return
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--gb", str(args.gb), "--line-kb",
             str(args.line_kb)],
            capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
        res = json.loads(out.stdout.splitlines()[-1])
        rounds.append(res)
        print(
            f"round {r + 1}: raw {res['raw_bytes'] / MB:,.0f} MB in {res['raw_s']:.2f} s; "
            f"claudomator {res['bytes'] / MB:,.0f} MB in {res['seconds']:.2f} s "
            f"({res['cpu_s']:.2f} CPU s), RSS +{res['rss_growth'] / MB:.1f} MB "
            f"(+{res['rss_late_growth'] / MB:.1f} MB in the second half)",
            flush=True,
        )
    raw = median([r["raw_bytes"] / MB / r["raw_s"] for r in rounds])
    full = median([r["bytes"] / MB / r["seconds"] for r in rounds])
    cpu_rate = median([r["bytes"] / MB / r["cpu_s"] for r in rounds])
    growth = max(r["rss_growth"] for r in rounds) / MB
    late = max(r["rss_late_growth"] for r in rounds) / MB
    last = rounds[-1]
    print(f"stream per round: {last['bytes'] / MB:,.0f} MB of stream-json, tool results "
          f"{args.line_kb:g} KiB, {last['lines']:,} lines ({last['tool_calls']:,} tool calls, "
          f"{last['events']:,} events recorded), rounds: {args.rounds} (medians; RSS: max)")  # fmt: skip
    print(f"raw asyncio read to /dev/null : {raw:8,.0f} MB/s  (the generator's pace)")
    print(f"claudomator runner, wall      : {full:8,.0f} MB/s  ({full / raw:.0%} of raw; "
          f"goal >= 100 MB/s: {'met' if full >= 100 else 'MISSED'})")  # fmt: skip
    print(f"claudomator runner, own CPU   : {cpu_rate:8,.0f} MB per CPU-second")
    print(f"RSS before the run            : {last['rss_start'] / MB:8.1f} MB")
    print(f"RSS growth during the run     : {growth:8.1f} MB  (goal <= 20 MB: "
          f"{'met' if growth <= 20 else 'MISSED'}); in its second half: {late:.1f} MB "
          f"(flat memory: ~0)")  # fmt: skip


if __name__ == "__main__":
    main()
