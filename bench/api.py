"""HTTP throughput and latency of `GET /api/tasks` (a page of 50 out of 10,000 tasks in the store),
served by the real `claudomator serve`, against a trivial in-memory Litestar route (50 dicts)
under the same uvicorn settings, in the same run. Goal: >= 50 % of the trivial route's req/s,
with p99 <= 20 ms.

Two figures for the API: the same page again and again (served from the page cache, valid until
the next event), and pages that always miss it (each request another `cursor`, more of them than
the cache holds): the cost of building a page from the store.

The load generator is a keep-alive HTTP/1.1 client (raw asyncio streams, `--connections`
connections) in this process; each server is a process of its own. Client and servers share the
machine's cores, as wrk did for perf-limits §6, so the figures are ceilings of the whole box.

    python bench/api.py [--seconds 10] [--connections 32] [--tasks 10000] [--rounds 3] [--quick]

`--quick` (CI) shrinks the defaults to the least that prints every figure: 2,500 tasks (still more
cursor pages than the cache holds), 4 connections, one round of 0.3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.net import free_port

if TYPE_CHECKING:
    from claudomator.records import Task

PAGE = 50


def trivial_server(port: int) -> None:
    """A Litestar app with one in-memory route, under the settings `Api.run` gives uvicorn."""
    import uvicorn
    from litestar import Litestar, get

    items = [
        {"id": f"01J{i:023d}", "name": f"task {i}", "state": "PENDING", "priority": "normal",
         "tags": ["bench"], "attempts": 0, "cost_usd": 0.0}
        for i in range(PAGE)
    ]  # fmt: skip

    @get("/api/tasks")
    async def tasks() -> dict[str, object]:
        return {"items": items, "next_cursor": None}

    app = Litestar([tasks], logging_config=None, openapi_config=None)
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="asyncio", http="h11", lifespan="off",
        access_log=False, log_config=None, server_header=False,
    )  # fmt: skip


def seed(home: Path, n: int) -> None:
    from claudomator import log
    from claudomator.task import TaskSpec
    from claudomator.taskfile import ParsedFile
    from tests.services import make_service

    log.configure("warning", "json")
    service = make_service(home, env={})
    specs = [
        TaskSpec.model_validate(
            {"name": f"task {i}", "tags": ["bench"], "claude": {"instructions": "do it"}}
        )
        for i in range(n)
    ]
    service.submit(ParsedFile("bench", specs, True, []), source="bench", held=True)
    assert sum(service.reader.counts().values()) == n
    service.close()


async def load(
    port: int, paths: list[str], seconds: float, connections: int
) -> tuple[int, list[float], int]:
    """Requests done, their latencies (s), non-2xx answers; each connection cycles `paths`."""
    requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() for p in paths]
    latencies: list[float] = []
    bad = 0
    stop_at = time.perf_counter() + seconds

    async def one(start: int) -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = start
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                writer.write(requests[i % len(requests)])
                i += 1
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 2"):
                    bad += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(c * 7) for c in range(connections)))
    return len(latencies), latencies, bad


def measure(
    port: int, paths: list[str], seconds: float, connections: int
) -> tuple[float, float, float, int]:
    asyncio.run(load(port, paths, min(1.5, seconds), connections))  # warm-up
    count, latencies, bad = asyncio.run(load(port, paths, seconds, connections))
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return count / seconds, p50, p99, bad


def wait_up(port: int, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server died"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
                )
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not start")


def cursor_ids(home: Path) -> list[Task]:
    """Every 37th task: cursors for 270 different pages, far more than the page cache holds."""
    from claudomator.store.reader import Reader

    reader = Reader(home / "claudomator.db")
    try:
        return reader.list_tasks(limit=None)[::37]
    finally:
        reader.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (CI)")
    parser.add_argument("--trivial-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:  # new defaults; flags given still win
        parser.set_defaults(seconds=0.3, connections=4, tasks=2_500, rounds=1)
        args = parser.parse_args()
    if args.trivial_server:
        trivial_server(args.trivial_server)
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "data"
        seed(home, args.tasks)
        api_port, trivial_port = free_port(), free_port()
        env = {
            **os.environ,
            "CLAUDOMATOR_HOME": str(home),
            "CLAUDOMATOR_SERVER_PORT": str(api_port),
            "CLAUDOMATOR_LOG_LEVEL": "warning",
        }
        api = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve"], env=env, stderr=subprocess.DEVNULL
        )
        trivial = subprocess.Popen(
            [sys.executable, __file__, "--trivial-server", str(trivial_port)],
            stderr=subprocess.DEVNULL,
        )
        try:
            path = f"/api/tasks?limit={PAGE}"
            wait_up(api_port, path, api)
            wait_up(trivial_port, "/api/tasks", trivial)
            misses = [f"{path}&cursor={t['id']}" for t in cursor_ids(home)]
            rows: dict[str, list[tuple[float, float, float, int]]] = {
                "trivial": [],
                "api": [],
                "miss": [],
            }
            for _ in range(args.rounds):  # interleaved, so that all see the same noise
                rows["trivial"].append(
                    measure(trivial_port, ["/api/tasks"], args.seconds, args.connections)
                )
                rows["api"].append(measure(api_port, [path], args.seconds, args.connections))
                rows["miss"].append(measure(api_port, misses, args.seconds, args.connections))
        finally:
            stop(api)
            stop(trivial)
    print(
        f"{args.tasks} tasks in the store, pages of {PAGE}; {args.connections} connections, "
        f"{args.seconds:g} s x {args.rounds} rounds (median round shown)"
    )
    med = {}
    for name, label in (
        ("trivial", "trivial in-memory route"),
        ("api", "GET /api/tasks, same page"),
        ("miss", "GET /api/tasks, cache miss"),
    ):
        ordered = sorted(rows[name])
        rate, p50, p99, bad = ordered[len(ordered) // 2]
        med[name] = rate
        rounds = ", ".join(f"{r[0]:.0f}" for r in rows[name])
        print(
            f"{label:26}: {rate:7.0f} req/s  p50 {p50:5.1f} ms  p99 {p99:5.1f} ms  "
            f"non-2xx {bad}  (rounds: {rounds})"
        )
    worst_p99 = max(r[2] for r in rows["api"])
    print(
        f"ratio, same page          : {med['api'] / med['trivial']:7.1%}  "
        f"(goal >= 50 %, p99 <= 20 ms; worst p99 {worst_p99:.1f} ms)"
    )
    print(f"ratio, cache miss         : {med['miss'] / med['trivial']:7.1%}")


if __name__ == "__main__":
    main()
