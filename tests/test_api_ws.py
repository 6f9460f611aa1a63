"""The WebSocket /api/ws against a real server on 127.0.0.1: every event, in id order, without gaps
or duplicates, every tool call of a fast execution; ?task= and ?after=; slow clients are told
and dropped without slowing anyone; a plain GET is told to upgrade."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from claudomator.progress import ProgressEvent, merge
from claudomator.store.db import Store
from tests.apiserver import LiveServer
from tests.taskfiles import scenario

pytestmark = pytest.mark.timeout(60)

TASK = {"name": "hello", "claude": {"instructions": "say hello"}}


@pytest.fixture
def server(tmp_path: Path, fake_claude: Path) -> Iterator[LiveServer]:
    flags = {"claude.binary": str(fake_claude), "server.ws_buffer": 8}
    with LiveServer(tmp_path / "data", flags=flags) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def ws(live: LiveServer, query: str = "", **kwargs: Any) -> ClientConnection:
    # with **kwargs, mypy cannot tell connect's overloads apart (legacy=False gives a reconnect)
    conn: ClientConnection = connect(live.ws_url + query, open_timeout=5, proxy=None, **kwargs)
    return conn


def receive_until(conn: ClientConnection, done: Any, timeout_s: float = 15) -> list[dict[str, Any]]:
    """Events until `done(event)` is true (that one included)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {[e.get('type') for e in got]}"
        event = json.loads(conn.recv(timeout=remaining))
        got.append(event)
        if done(event):
            return got


def finished(task_id: str) -> Any:
    return lambda e: e.get("type") == "task.finished" and e.get("task_id") == task_id


def test_every_event_of_a_task_in_order(server: LiveServer, client: httpx.Client) -> None:
    with ws(server) as conn:
        task = client.post("/api/tasks", params={"run": "true"}, json=TASK).json()
        events = receive_until(conn, finished(task["id"]))
    if events[0]["type"] == "node.up":  # the server joining, if it came after the connect
        events = events[1:]
    types = [e["type"] for e in events]
    assert types[:3] == ["task.created", "task.queued", "task.started"]
    assert "execution.tool_call" in types and "execution.cost" in types
    assert types[-1] == "task.finished" and events[-1]["state"] == "COMPLETED"
    assert events[-1]["cost_usd"] > 0 and events[-1]["name"] == "hello"
    ids = [e["id"] for e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # monotonic, no gaps
    assert all(
        "." in e["type"] and e["task_id"] == task["id"] and isinstance(e["at"], float)
        for e in events
    )


def test_a_fast_execution_tells_every_tool_call_in_order(
    server: LiveServer, client: httpx.Client
) -> None:
    """Six tool calls and the text that followed them, all within one progress batch: each tool
    call is its own event, and the final text comes after the last one (texts and cost ticks
    are the only things a batch merges)."""
    body = {"name": "steps", "claude": {"instructions": scenario("tools", turns=6)}}
    with ws(server, "?after=0") as conn:
        task = client.post("/api/tasks", params={"run": "true"}, json=body).json()
        events = receive_until(conn, finished(task["id"]))
    mine = [e for e in events if e.get("task_id") == task["id"]]
    ids = [e["id"] for e in mine]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    calls = [e for e in mine if e["type"] == "execution.tool_call"]
    assert [e["tool_calls"] for e in calls] == [1, 2, 3, 4, 5, 6]
    assert [e["summary"] for e in calls] == [f"echo step {n}" for n in range(1, 7)]
    texts = [e for e in mine if e["type"] == "execution.text"]
    assert texts and texts[-1]["text"] == "Ran 6 steps."
    assert texts[-1]["id"] > calls[-1]["id"]  # after the tool call it followed
    assert all(e["estimated_cost_usd"] > 0 for e in calls + texts)


def _progress(*types: str) -> list[ProgressEvent]:
    return [(f"execution.{t}", "task", "ex", {"n": i}) for i, t in enumerate(types)]


@pytest.mark.parametrize(
    ("batch", "written"),
    [
        ([], []),
        (["text", "tool_call", "text"], [1, 2]),  # the final text after the call it followed
        (["tool_call", "tool_call", "tool_call"], [0, 1, 2]),  # every call
        (["cost", "text", "cost", "tool_call", "cost"], [1, 3, 4]),
        (["started", "text", "api_retry", "api_retry", "rate_limit"], [0, 1, 2, 3, 4]),
        (["text", "text", "text"], [2]),
    ],
)
def test_a_progress_batch_merges_texts_and_cost_ticks_only(
    batch: list[str], written: list[int]
) -> None:
    assert [e[3]["n"] for e in merge(_progress(*batch))] == written


def test_task_filter(server: LiveServer, client: httpx.Client) -> None:
    first = client.post("/api/tasks", json=TASK).json()
    second = client.post("/api/tasks", json={**TASK, "name": "other"}).json()
    with ws(server, f"?task={second['id']}") as narrow, ws(server) as wide:
        client.post(f"/api/tasks/{first['id']}/run")
        client.post(f"/api/tasks/{second['id']}/run")
        everything = receive_until(wide, finished(second["id"]))
        receive_until(wide, finished(first["id"])) if not any(
            finished(first["id"])(e) for e in everything
        ) else None
        mine = receive_until(narrow, finished(second["id"]))
    assert {e["task_id"] for e in mine} == {second["id"]}
    assert [e["id"] for e in mine] == [e["id"] for e in everything if e["task_id"] == second["id"]]


def test_resume_after_a_disconnect_without_gaps_or_duplicates(
    server: LiveServer, client: httpx.Client
) -> None:
    with ws(server) as conn:
        task = client.post("/api/tasks", params={"run": "true"}, json=TASK).json()
        before = receive_until(conn, finished(task["id"]))
    last = before[-1]["id"]
    missed = [client.post("/api/tasks", json={**TASK, "name": f"m{i}"}).json() for i in range(3)]
    with ws(server, f"?after={last}") as conn:
        later = client.post("/api/tasks", params={"run": "true"}, json=TASK).json()
        after = receive_until(conn, finished(later["id"]))
    ids = [e["id"] for e in after]
    assert ids == list(range(last + 1, last + 1 + len(ids)))
    assert [e["task_id"] for e in after[:3]] == [t["id"] for t in missed]
    # from the very start: everything ever published, once each
    with ws(server, "?after=0") as conn:
        replay = receive_until(conn, lambda e: e["id"] == ids[-1])
    assert [e["id"] for e in replay] == list(range(1, ids[-1] + 1))
    shown = [(e["id"], e["type"], e["task_id"], e.get("state")) for e in replay[-len(after) :]]
    assert shown == [(e["id"], e["type"], e["task_id"], e.get("state")) for e in after]


def test_events_of_other_processes_are_passed_on(server: LiveServer, client: httpx.Client) -> None:
    """`claudomator pause` in a terminal writes the event table, not this hub."""
    with ws(server) as conn:
        first = client.post("/api/tasks", json=TASK).json()
        receive_until(conn, lambda e: e["task_id"] == first["id"])
        other = Store(server.config.data_dir.database)
        try:
            other.set_pool_state(paused=True, reason="from a terminal")
        finally:
            other.close()
        polled = receive_until(conn, lambda e: e["type"] == "pool.changed", timeout_s=5)
        assert polled[-1]["reason"] == "from a terminal" and len(polled) == 1
        other = Store(server.config.data_dir.database)
        try:  # and a gap before a local event is filled first
            other.set_pool_state(paused=False, reason="")
        finally:
            other.close()
        second = client.post("/api/tasks", json=TASK).json()
        filled = receive_until(conn, lambda e: e["task_id"] == second["id"])
    assert [e["type"] for e in filled] == ["pool.changed", "task.created"]
    assert filled[1]["id"] == filled[0]["id"] + 1 == polled[-1]["id"] + 2


def test_a_slow_client_is_told_and_dropped_without_slowing_anyone(
    server: LiveServer, client: httpx.Client
) -> None:
    big = "x" * 200_000  # a long name: each event is large, so the socket fills fast
    with ws(server, max_queue=1, max_size=None) as slow, ws(server, max_size=None) as fast:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            last = lambda e: e.get("name", "").endswith("x59")  # noqa: E731
            reading = pool.submit(receive_until, fast, last, 30)
            t0 = time.monotonic()
            ids = []
            for i in range(60):
                task = client.post("/api/tasks", json={**TASK, "name": f"{big}{i}"}).json()
                ids.append(task["id"])
            assert time.monotonic() - t0 < 20  # the API did not wait for the slow client
            got = reading.result()
        tasks = [e["task_id"] for e in got if e["type"].startswith("task.")]
        assert tasks == ids  # the fast one has everything
        received = []
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(200):
                received.append(json.loads(slow.recv(timeout=10)))
    notice = received[-1]
    assert notice["type"] == "ws.overflow" and "reconnect with ?after=" in notice["message"]
    assert len(received) > 1 and notice["after"] == received[-2]["id"]  # resume from there
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert len(received) < 60
    metrics = client.get("/metrics").text
    assert "claudomator_websocket_dropped_total 1.0" in metrics


def test_stopping_the_server_closes_websockets(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "d", pool=False).__enter__()
    with ws(live) as conn:
        live.stop()
        with pytest.raises(ConnectionClosed) as info:
            conn.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012


@pytest.mark.parametrize("query", ["?after=abc", "?after=-1", "?after=1e3"])
def test_a_bad_after_is_refused_in_the_one_shape(server: LiveServer, query: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws(server, query).close()
    assert info.value.response.status_code == 400
    body = json.loads(bytes(info.value.response.body or b""))
    assert body["error"]["code"] == "bad_request" and "after" in body["error"]["message"]


def test_a_plain_get_is_told_to_upgrade(server: LiveServer, client: httpx.Client) -> None:
    response = client.get("/api/ws")
    assert response.status_code == 426, response.text
    assert response.headers["upgrade"] == "websocket"
    error = response.json()["error"]
    assert error["code"] == "upgrade_required" and "WebSocket" in error["message"]
