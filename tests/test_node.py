"""Nodes: ids per data dir, who may take an id (a table), leases judged by the database's clock,
`node lost`, claims refused without a lease, the migration that brought nodes, and the relay of
other nodes' events (PostgreSQL LISTEN/NOTIFY). Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from sqlalchemy import MetaData, Table, create_engine, event, insert, inspect, text
from sqlmodel import SQLModel

from claudomator.config import DataDir, load_config
from claudomator.errors import ConfigError, DatabaseUnavailable, LeaseLost
from claudomator.node import may_take, node_id_for
from claudomator.records import Event
from claudomator.service import Claudomator
from claudomator.state import State
from claudomator.store.db import Store
from claudomator.store.nodes import Nodes
from claudomator.store.reader import Reader
from claudomator.store.relay import Relay, parse_payload
from claudomator.store.schema import NODES, SCHEMA_VERSION
from claudomator.stored import ExecutionEnd, StoredNode, StoredSource
from tests.services import make_service
from tests.test_store import new_task, raw

ROW: StoredNode = {
    "id": "n1", "kind": "serve", "state": "up", "host": "h1", "pid": 10, "process_started": 100.0,
    "slots": 4, "heartbeat_at": 1000.0, "heartbeat_s": 10.0, "lease_s": 30.0,
    "started_at": 100.0, "stopped_at": None, "data_dir": "/d", "version": "1",
}  # fmt: skip
ME = {"host": "h1", "pid": 20, "process_started": 200.0}


@pytest.mark.parametrize(
    ("row", "me", "alive_started", "now", "free"),
    [
        (None, ME, None, 1000.0, True),  # never used
        ({**ROW, "state": "stopped"}, ME, 100.0, 1000.0, True),
        ({**ROW, "state": "lost"}, ME, 100.0, 1000.0, True),
        (ROW, {"host": "h1", "pid": 10, "process_started": 100.0}, 100.0, 1000.0, True),  # itself
        (ROW, ME, 100.0, 1031.0, True),  # its lease expired
        (ROW, ME, None, 1001.0, True),  # same host, its process is gone
        (ROW, ME, 150.0, 1001.0, True),  # same host, its pid reused by another process
        (ROW, ME, 100.0, 1001.0, False),  # same host, alive, lease held
        (ROW, {**ME, "host": "h2"}, None, 1001.0, False),  # another host: only the lease tells
        (ROW, {**ME, "host": "h2"}, None, 1030.0, False),  # exactly at the end: still held
    ],
)
def test_may_take(
    row: StoredNode | None,
    me: dict[str, Any],
    alive_started: float | None,
    now: float,
    free: bool,
) -> None:
    why = may_take(row, alive_started=alive_started, now=now, **me)
    assert (why == "") is free
    if not free:
        assert "n1" in why and "pid 10 on h1" in why and "node.id" in why


def test_node_id_is_made_once_per_data_dir(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path)
    assert data_dir.node_id() == ""
    first = node_id_for(data_dir, "", "myhost")
    assert first.startswith("myhost-") and len(first) == len("myhost-") + 6
    assert node_id_for(data_dir, "", "myhost") == first == data_dir.node_id()
    assert node_id_for(data_dir, "configured", "myhost") == "configured"
    assert (tmp_path / "node-id").stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other"
    other.mkdir()
    assert node_id_for(DataDir(other), "", "myhost") != first  # another data dir, another node


def test_lease_must_outlast_the_heartbeat(tmp_path: Path) -> None:
    env = {"CLAUDOMATOR_NODE_HEARTBEAT": "10s", "CLAUDOMATOR_NODE_LEASE": "10s"}
    with pytest.raises(ConfigError, match=r"node.lease \(10s, from env CLAUDOMATOR_NODE_LEASE\)"):
        load_config(tmp_path, env=env)
    assert load_config(tmp_path, env={**env, "CLAUDOMATOR_NODE_LEASE": "11s"}).lease_s == 11.0


def test_reader_reads_the_schema_the_store_writes(tmp_path: Path) -> None:
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    make_version_1(old)
    Store(new).close()
    readers = [Reader(old), Reader(new)]
    try:
        assert [r.outdated() for r in readers] == [True, False]
    finally:
        for r in readers:
            r.close()


# -- the nodes table, on both databases ------------------------------------------------------------


@pytest.fixture
def store(database: Path | str) -> Iterator[Store]:
    s = Store(database)
    yield s
    s.close()


def register(nodes: Nodes, node_id: str, *, kind: str = "serve", lease_s: float = 30.0) -> None:
    nodes.register(
        node_id, kind=kind, host="h", pid=os.getpid(), process_started=1.5,
        heartbeat_s=lease_s / 3, lease_s=lease_s, slots=4,
    )  # fmt: skip


def age(store: Store, node_id: str, seconds: float) -> None:
    """Pretend the node's last heartbeat was `seconds` ago."""
    with store.engine.begin() as conn:
        row = conn.execute(NODES.select().where(NODES.c.id == node_id)).mappings().one()
        conn.execute(
            NODES.update()
            .where(NODES.c.id == node_id)
            .values(heartbeat_at=row["heartbeat_at"] - seconds)
        )


def test_a_silent_node_is_lost_once_and_its_executions_fail(store: Store, tmp_path: Path) -> None:
    nodes = Nodes(store)
    register(nodes, "a")
    register(nodes, "b")
    assert abs(nodes.clock() - time.time()) < 5
    ids, _ = store.add_tasks([new_task("t1"), new_task("t2")])
    claimed = store.start(2, time.time(), tmp_path, owner_node="a", owner_pid=os.getpid())
    assert sorted(c[1]["task_id"] for c in claimed) == sorted(ids)
    assert {c[1]["node"] for c in claimed} == {"a"}
    assert nodes.expired() == ([], False) and nodes.lost_executions() == []
    age(store, "a", 29)
    assert nodes.expired() == ([], False)  # within its lease
    age(store, "a", 2)
    assert nodes.expired() == (["a"], False)
    event = nodes.mark_lost("a")
    assert event is not None and event["type"] == "node.lost" and event["node"] == "a"
    assert nodes.mark_lost("a") is None  # the second node to notice writes nothing
    assert nodes.expired() == ([], True)
    assert sorted(e["task_id"] for e in nodes.lost_executions()) == sorted(ids)
    assert not nodes.heartbeat("a", os.getpid(), 1.5)  # it comes back: refused
    assert nodes.heartbeat("b", os.getpid(), 1.5)
    assert not nodes.heartbeat("b", os.getpid(), 2.5)  # another process under its id
    store.add_tasks([new_task("t3")])
    with pytest.raises(LeaseLost):  # a lost node claims nothing
        store.start(1, time.time(), tmp_path, owner_node="a", owner_pid=os.getpid())
    with pytest.raises(LeaseLost):  # nor does a node that never joined
        store.start(1, time.time(), tmp_path, owner_node="nobody", owner_pid=os.getpid())
    with pytest.raises(LeaseLost):  # nor another process under a live node's id
        store.start(1, time.time(), tmp_path, owner_node="b", owner_pid=os.getpid() + 1)


def test_a_node_renewing_in_time_is_not_marked_lost(store: Store) -> None:
    nodes = Nodes(store)
    register(nodes, "a")
    age(store, "a", 31)
    assert nodes.expired() == (["a"], False)
    assert nodes.heartbeat("a", os.getpid(), 1.5)  # renewed before anyone marked it
    assert nodes.mark_lost("a") is None
    assert nodes.get("a")["state"] == "up"  # type: ignore[index]


def test_claiming_needs_a_lease_that_still_holds(store: Store, tmp_path: Path) -> None:
    nodes = Nodes(store)
    register(nodes, "a", lease_s=30)
    store.add_tasks([new_task("t1")])
    age(store, "a", 31)  # stalled past its lease, not yet marked lost
    mine: dict[str, Any] = {"owner_node": "a", "owner_pid": os.getpid()}
    with pytest.raises(LeaseLost):
        store.start(1, time.time(), tmp_path, **mine)
    assert nodes.heartbeat("a", os.getpid(), 1.5)
    assert len(store.start(1, time.time(), tmp_path, **mine)) == 1


def test_stopping_keeps_a_serve_row_and_drops_a_run_row(store: Store) -> None:
    nodes = Nodes(store)
    register(nodes, "s")
    register(nodes, "run:h:1:2", kind="run")
    assert nodes.stop("s", os.getpid())["type"] == "node.stopped"  # type: ignore[index]
    assert nodes.stop("run:h:1:2", os.getpid()) is not None
    assert nodes.get("s")["state"] == "stopped"  # type: ignore[index]
    assert nodes.get("run:h:1:2") is None
    assert nodes.stop("s", os.getpid()) is None


def test_a_late_result_records_its_spend_but_not_its_state(store: Store, tmp_path: Path) -> None:
    [task_id], _ = store.add_tasks([new_task("t1")])
    [(execution_id, *_)] = store.start(1, time.time(), tmp_path)
    lost = store.finish_execution(execution_id, task_id, state=State.FAILED, reason="node lost")
    assert lost[-1]["state"] == "FAILED"
    spend = ExecutionEnd(
        cost_usd=0.25, input_tokens=10, output_tokens=20, cache_read_tokens=30,
        cache_creation_tokens=40, model_usage_json="{}", result_text="done",
    )  # fmt: skip
    late = store.finish_execution(
        execution_id, task_id, state=State.COMPLETED, reason="", end=spend
    )
    assert late == []
    row = store.task_row(task_id)
    assert row is not None and row["state"] == "FAILED" and row["reason"] == "node lost"
    [(state, reason, cost, tokens, text)] = raw(
        store.path or store.engine.url.render_as_string(hide_password=False),
        f"SELECT state, reason, cost_usd, output_tokens, result_text FROM executions "
        f"WHERE id = '{execution_id}'",
    )
    assert (state, reason, cost, tokens, text) == ("FAILED", "node lost", 0.25, 20, "")


# -- the service: reaping, on both databases --------------------------------------------------------


@pytest.fixture
def service(database: Path | str, home: Path, fake_claude: Path) -> Iterator[Claudomator]:
    env = dict(os.environ)
    if isinstance(database, str):
        env["CLAUDOMATOR_DATABASE_URL"] = database
    with make_service(home, env=env) as s:
        yield s


def test_reap_fails_a_lost_nodes_executions_and_the_retry_policy_applies(
    service: Claudomator, tmp_path: Path
) -> None:
    service.node.join("serve")
    other = Nodes(service.store)
    register(other, "gone")
    retried = new_task("retried", retry_json=json.dumps({"max_attempts": 2, "backoff": "1s"}))
    ids, _ = service.store.add_tasks([new_task("once"), retried])
    service.store.start(2, time.time(), tmp_path, owner_node="gone", owner_pid=os.getpid())
    service.recovery.end_lost_nodes()
    assert [service.task(i)["state"] for i in ids] == ["RUNNING", "RUNNING"]  # lease holds
    age(service.store, "gone", 31)
    service.recovery.end_lost_nodes()
    once, again = (service.task(i) for i in ids)
    assert (once["state"], once["reason"]) == ("FAILED", "node lost")
    assert again["state"] == "QUEUED" and "node lost" in again["reason"]
    assert [e["state"] for e in again["executions"]] == ["FAILED"]
    nodes = {n["id"]: n for n in service.reader.nodes()}
    assert nodes["gone"]["state"] == "lost" and nodes[service.node_id]["state"] == "up"
    assert nodes[service.node_id]["kind"] == "serve" and not nodes[service.node_id]["expired"]


def test_a_second_process_cannot_take_a_live_node_id(
    service: Claudomator, database: Path | str, home: Path
) -> None:
    service.node.join("serve")
    env = {"CLAUDOMATOR_DATABASE_URL": str(database)} if isinstance(database, str) else {}
    env["CLAUDOMATOR_NODE_ID"] = service.node_id
    twin = make_service(home, env=env)  # the same database
    # on this host a live pid would be told apart; elsewhere only leases
    twin.node.process = dataclasses.replace(twin.node.process, host="elsewhere")
    try:
        with pytest.raises(Exception, match=f"node {service.node_id} is in use by pid"):
            twin.node.join("serve")
        age(service.store, service.node_id, 31)
        twin.node.join("serve")  # its lease expired: the id is free
        assert twin.node.nodes.get(twin.node_id)["host"] == "elsewhere"  # type: ignore[index]
    finally:
        twin.close()


# -- the migration from schema 1 -------------------------------------------------------------------

# what versions 2 to 5 added
ADDED = {
    ("executions", "owner_node"), ("files", "node"), ("files", "fingerprint"),
    ("executions", "workspace_json"), ("executions", "round"), ("executions", "resumed_from"),
    ("executions", "verify_json"), ("tasks", "batch_id"), ("tasks", "batch_budget_usd"),
}  # fmt: skip


def make_version_1(database: Path | str) -> None:
    """The schema as version 1 had it: no nodes table, no node columns; a file and a task."""
    url = f"sqlite:///{database}" if isinstance(database, Path) else str(database)
    engine = create_engine(url)
    old = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        if table.name != "nodes":
            columns = [c._copy() for c in table.columns if (table.name, c.name) not in ADDED]
            Table(table.name, old, *columns)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(insert(old.tables["meta"]).values(key="schema_version", value="1"))
        conn.execute(
            insert(old.tables["files"]).values(
                id="f1", source="inbox", rel_path="a.yaml", folder="queued", name="a.yaml",
                created_at=1.0, updated_at=1.0,
            )
        )  # fmt: skip
    engine.dispose()


def columns(database: Path | str) -> dict[str, set[str]]:
    url = f"sqlite:///{database}" if isinstance(database, Path) else str(database)
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
    finally:
        engine.dispose()


def test_schema_1_is_migrated_to_what_a_new_database_has(
    database: Path | str, tmp_path: Path
) -> None:
    make_version_1(database)
    assert "nodes" not in columns(database)
    Store(database).close()
    migrated = columns(database)
    fresh_db = tmp_path / "fresh.db"
    Store(fresh_db).close()
    assert migrated == columns(fresh_db)
    assert raw(database, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    store = Store(database)
    try:
        Nodes(store).adopt_files("n1")  # what the first node of the data dir does
        store.node = "n1"
        assert [f["id"] for f in store.files(["queued"])] == ["f1"]
        store.node = "n2"
        assert store.files(["queued"]) == []  # another node's spool
    finally:
        store.close()


def test_an_old_schema_is_migrated_before_the_cli_reads_it(
    database: Path | str, home: Path
) -> None:
    import subprocess
    import sys

    make_version_1(database)
    env = {**os.environ, "CLAUDOMATOR_HOME": str(home)}
    if isinstance(database, str):
        env["CLAUDOMATOR_DATABASE_URL"] = database
    else:
        home.mkdir(parents=True, exist_ok=True)
        os.replace(database, home / "claudomator.db")
    out = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "nodes", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


# -- the relay (PostgreSQL only) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        ("node-a 5 9", ("node-a", 5, 9)),
        ("run:host:12:3.50 7 7", ("run:host:12:3.50", 7, 7)),
        (" 1 2", ("", 1, 2)),  # a store without a node (e.g. a terminal's `cancel`)
        ("garbage", None),
        ("a b c", None),
    ],
)
def test_parse_payload(payload: str, parsed: tuple[str, int, int] | None) -> None:
    assert parse_payload(payload) == parsed


def test_the_relay_hears_other_nodes_events_at_commit(postgresql_url: str) -> None:
    writer, mine = Store(postgresql_url), Store(postgresql_url)
    writer.node, mine.node = "a", "b"
    reader = Reader(postgresql_url)
    heard: list[Event] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        relay = Relay(postgresql_url, mine.channel, "b", reader, heard.extend)
        listening = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(0.5)  # LISTEN is in place
        writer.add_tasks([new_task("from-a")])  # another node: relayed
        mine.add_tasks([new_task("from-b")])  # this node: its hub has it already
        for _ in range(50):
            if len(heard) >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # anything from b would have arrived too
        stop.set()
        await listening

    try:
        asyncio.run(scenario())
    finally:
        reader.close()
        writer.close()
        mine.close()
    assert [(e["type"], e["name"]) for e in heard] == [
        ("task.created", "from-a"),
        ("task.queued", "from-a"),
    ]
    assert mine.channel.startswith("claudomator:claudomator_test_")  # one channel per schema


def test_a_result_the_database_refused_is_recorded_once_it_is_back(
    service: Claudomator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import claudomator.lifecycle

    monkeypatch.setattr(claudomator.lifecycle, "RECORD_RETRY_S", 0.01)
    service.node.join("serve")
    [task_id], _ = service.store.add_tasks([new_task("t")])
    real = service.store.finish_execution
    refusals: list[int] = []

    def away_twice(*args: Any, **kwargs: Any) -> Any:
        if len(refusals) < 2:
            refusals.append(1)
            raise DatabaseUnavailable("the test database", "away")
        return real(*args, **kwargs)

    monkeypatch.setattr(service.store, "finish_execution", away_twice)
    assert service.lifecycle.start(1) == [task_id]
    asyncio.run(service.lifecycle.execute(task_id, asyncio.Event()))
    task = service.task(task_id)
    assert len(refusals) == 2, task
    assert task["state"] == "COMPLETED" and task["cost_usd"] > 0, task


def test_each_node_keeps_its_own_progress_on_a_git_source(store: Store) -> None:
    store.set_source_state("repo", "git", last_commit="c0")  # before nodes existed
    store.node = "a"
    assert store.source_state("repo")["last_commit"] == "c0"  # type: ignore[index]
    store.set_source_state("repo", "git", error="fetch refused")  # a's own row, from c0 on
    store.set_source_state("repo", "git", last_commit="c1")
    expected: StoredSource = {
        "name": "repo", "kind": "git", "last_commit": "c1", "error": "fetch refused",
        "updated_at": ANY,
    }  # fmt: skip
    assert store.source_state("repo") == expected
    store.node = "b"  # another checkout: its own walk, from the shared starting point
    assert store.source_state("repo")["last_commit"] == "c0"  # type: ignore[index]
    names = [r[0] for r in raw(store.path or str(store.engine.url), "SELECT name FROM sources")]
    assert sorted(names) == ["repo", "repo@a"]


def test_a_connection_error_is_one_to_try_again_and_shows_no_password() -> None:
    store = Store.__new__(Store)  # only what the handler needs: the masked URL
    store.shown = "postgresql+psycopg://claudo:***@127.0.0.1:1/jobs"
    engine = create_engine("postgresql+psycopg://claudo:hunter22@127.0.0.1:1/jobs")
    event.listen(engine, "handle_error", store._unavailable)
    with (
        pytest.raises(DatabaseUnavailable, match="unavailable") as caught,
        engine.connect() as conn,
    ):
        conn.execute(text("SELECT 1"))
    assert "claudo:***@" in str(caught.value) and "hunter22" not in str(caught.value)
    engine.dispose()


def test_a_git_version_seen_by_several_nodes_is_ingested_by_one(database: Path | str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stores = [Store(database) for _ in range(4)]
    for i, s in enumerate(stores):
        s.node = f"n{i}"
    version = ("@repo", "tasks/a.yaml", "blob1", "commit1")

    def offer(i: int) -> bool:
        row = (f"file{i}", "@repo", "tasks/a.yaml", f"file{i}-a.yaml")
        return stores[i].add_files([row], version=version)

    try:
        with ThreadPoolExecutor(4) as pool:
            won = list(pool.map(offer, range(4)))
        assert sorted(won) == [False, False, False, True]
        winner = won.index(True)
        assert [f["id"] for f in stores[winner].files(["staging"])] == [f"file{winner}"]
        assert all(s.files(["staging"]) == [] for i, s in enumerate(stores) if i != winner)
    finally:
        for s in stores:
            s.close()


def test_nodes_and_status_show_the_cluster_in_a_terminal(home: Path, tmp_path: Path) -> None:
    from tests.test_cli import cli

    home.mkdir(parents=True)
    store = Store(home / "claudomator.db")
    try:
        nodes = Nodes(store)
        register(nodes, "alpha")
        register(nodes, "beta")
        register(nodes, "gamma")
        age(store, "gamma", 31)  # silent past its lease: not yet marked
        [task_id], _ = store.add_tasks([new_task("build")])
        store.start(1, time.time(), tmp_path, owner_node="beta", owner_pid=os.getpid())
    finally:
        store.close()
    table = cli("nodes").stdout.splitlines()
    assert table[0].split() == [
        "NODE",
        "KIND",
        "STATE",
        "HOST:PID",
        "SLOTS",
        "HEARTBEAT",
        "RUNNING",
    ]
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == {"alpha", "beta", "gamma"}
    assert "up 0/4" in rows["alpha"] and rows["beta"].split()[-1] == "build"
    assert "up 1/4" in rows["beta"] and "silent 3" in rows["gamma"]  # 31 s or so
    status = cli("status").stdout
    assert f"running: {task_id} build on beta for" in status
    assert "nodes: alpha up 0/4, beta up 1/4, gamma silent" in status
    listed = json.loads(cli("nodes", "--json").stdout)
    assert [(n["id"], n["busy"], n["expired"]) for n in listed] == [
        ("alpha", 0, False),
        ("beta", 1, False),
        ("gamma", 0, True),
    ]


def test_nothing_starts_while_executions_stopped_for_a_lost_lease_wind_down(
    service: Claudomator,
) -> None:
    service.node.join("serve")
    [task_id], _ = service.store.add_tasks([new_task("t")])
    # its old execution, stopped because this node was found lost, has not recorded its end:
    # the task, retried by another node, must not start here again beside it
    service.lifecycle._lost.add("an execution still winding down")
    assert service.lifecycle.start(1) == []
    assert service.task(task_id)["state"] == "QUEUED"
    service.lifecycle._lost.clear()
    assert service.lifecycle.start(1) == [task_id]
