"""WebSocket fan-out of the real `claudomator serve`: 1,000 clients on /api/ws, 100 events, the
time from an event's commit (its `at`) until the last client has it. Goal: p99 <= 50 ms. Then
the pool's throughput (an instant fake claude) with no client, with 1,000 connected clients that
watch another task, and with 1,000 clients that receive every event.

The clients are raw asyncio protocols in this process (handshake, frame headers, pong; no JSON
parsing, no compression), so that they cost little next to the server: a client library would
add its own ~20 µs per message to the figures (perf-limits §7).

    python bench/ws.py [--clients 1000] [--events 100] [--tasks 300] [--quick]

`--quick` (CI): 20 clients, 4 events 50 ms apart, 12 tasks. (The events pause and resume the
pool by turns: keep their number even, or the pool stays paused.)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes import make_instant_claude


class Client(asyncio.Protocol):
    """One WebSocket client: records when each text message holding `only` arrived (and, if
    asked, what)."""

    def __init__(self, path: str, port: int, keep: bool, only: bytes = b"") -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"
            "\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.keep = keep
        self.only = only
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.upgraded = False
        self.closed = False
        self.arrivals: list[float] = []
        self.messages: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buf += data
        if not self.upgraded:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                return
            self.upgraded, self.buf = True, rest
            self.open.set_result(None)
        while len(self.buf) >= 2:
            opcode, size, start = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(self.buf[2:4], "big"), 4
            elif size == 127:
                size, start = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < start + size:
                return
            payload, self.buf = self.buf[start : start + size], self.buf[start + size :]
            if opcode == 1 and self.only in payload:
                self.arrivals.append(now)
                if self.keep:
                    self.messages.append(payload)
            elif opcode == 9 and self.transport is not None:  # ping: a masked pong
                mask = os.urandom(4)
                body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + body)
            elif opcode == 8:
                self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


async def connect_all(port: int, n: int, path: str, only: bytes = b"") -> list[Client]:
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for batch in range(0, n, 100):
        made = [Client(path, port, batch + i == 0, only) for i in range(min(100, n - batch))]
        for client in made:
            await loop.create_connection(lambda c=client: c, "127.0.0.1", port)  # type: ignore[misc]
        await asyncio.gather(*(c.open for c in made))
        clients += made
    return clients


def close_all(clients: list[Client]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.close()


async def fan_out(port: int, n: int, events: int, gap_s: float) -> dict[str, float]:

    # only the bench's own events: serve's node.up may reach some clients, not others
    clients = await connect_all(port, n, "/api/ws", only=b'"pool.changed"')
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
    await asyncio.sleep(0.5)
    for i in range(events):
        if i % 2 == 0:
            await http.post("/api/pool/pause", params={"reason": f"bench {i}"})
        else:
            await http.post("/api/pool/resume")
        await asyncio.sleep(gap_s)
    await asyncio.sleep(0.5)
    await http.aclose()
    first = clients[0]
    ats = [json.loads(m)["at"] for m in first.messages]
    assert len(ats) == events, f"client 0 got {len(ats)} of {events} events"
    lasts, medians = [], []
    for k, at in enumerate(ats):
        got = [c.arrivals[k] - at for c in clients if len(c.arrivals) > k]
        assert len(got) == n, f"event {k} reached {len(got)} of {n} clients"
        lasts.append(max(got) * 1000)
        medians.append(statistics.median(got) * 1000)
    close_all(clients)
    worst = sorted(range(len(lasts)), key=lasts.__getitem__)[-3:]
    print("  slowest events (index: ms):", ", ".join(f"{k}: {lasts[k]:.0f}" for k in worst))
    lasts.sort()
    return {
        "last_p50": lasts[len(lasts) // 2],
        "last_p99": lasts[min(len(lasts) - 1, int(len(lasts) * 0.99))],
        "last_max": lasts[-1],
        "median_p50": statistics.median(medians),
    }


async def pool_rate(port: int, tasks: int) -> float:
    """Tasks/s for a batch of instant tasks through the pool, submit to last COMPLETED."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        done_before = (await http.get("/api/status")).json()["counts"]["COMPLETED"]
        batch = {
            "tasks": [{"name": f"t{i}", "claude": {"instructions": "x"}} for i in range(tasks)]
        }
        t0 = time.perf_counter()
        response = await http.post("/api/tasks", params={"run": "true"}, json=batch)
        assert response.status_code == 201, response.text
        while True:
            counts = (await http.get("/api/status")).json()["counts"]
            if counts["COMPLETED"] - done_before >= tasks:
                return tasks / (time.perf_counter() - t0)
            assert counts["FAILED"] == 0, counts
            await asyncio.sleep(0.02)


async def with_clients(port: int, n: int, path: str, tasks: int) -> tuple[float, int]:
    clients = await connect_all(port, n, path) if n else []
    await asyncio.sleep(0.3)
    rate = await pool_rate(port, tasks)
    await asyncio.sleep(0.3)
    dropped = sum(c.closed for c in clients)
    close_all(clients)
    await asyncio.sleep(0.3)
    return rate, dropped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between events")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (CI)")
    args = parser.parse_args()
    if args.quick:  # new defaults; flags given still win
        parser.set_defaults(clients=20, events=4, gap=0.05, tasks=12)
        args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        claude = make_instant_claude(root / "bin")
        (root / "work").mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "CLAUDOMATOR_HOME": str(root / "data"),
            "CLAUDOMATOR_SERVER_PORT": str(port),
            "CLAUDOMATOR_CLAUDE_BIN": str(claude),
            "CLAUDOMATOR_CLAUDE_WORKING_DIR": str(root / "work"),
            "CLAUDOMATOR_MAX_CONCURRENCY": str(args.concurrency),
            "CLAUDOMATOR_LOG_LEVEL": "warning",
        }
        env.pop("CLAUDECODE", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            fan = asyncio.run(fan_out(port, args.clients, args.events, args.gap))
            rates = {}
            for label, n, path in (
                ("no client", 0, ""),
                (f"{args.clients} clients watching another task", args.clients, "/api/ws?task=0"),
                (f"{args.clients} clients receiving every event", args.clients, "/api/ws"),
                ("no client, again", 0, ""),
            ):
                rates[label] = asyncio.run(with_clients(port, n, path, args.tasks))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    print(f"fan-out: {args.clients} clients, {args.events} events {args.gap * 1000:.0f} ms apart")
    print(
        f"  commit -> last client: p50 {fan['last_p50']:.1f} ms  p99 {fan['last_p99']:.1f} ms  "
        f"max {fan['last_max']:.1f} ms   (goal p99 <= 50 ms)"
    )
    print(f"  commit -> median client: p50 {fan['median_p50']:.1f} ms")
    print(f"pool: {args.tasks} instant tasks, max_concurrency {args.concurrency}")
    base = rates["no client"][0]
    for label, (rate, dropped) in rates.items():
        extra = f", {dropped} clients dropped as too slow" if dropped else ""
        print(f"  {label:42}: {rate:6.1f} tasks/s ({rate / base:6.1%}){extra}")


if __name__ == "__main__":
    main()
