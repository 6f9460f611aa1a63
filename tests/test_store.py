from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from claudomator.errors import StoreError, TransitionError
from claudomator.state import State
from claudomator.store.db import NewTask, Store
from claudomator.store.reader import Reader
from claudomator.store.schema import SCHEMA_VERSION
from claudomator.stored import ExecutionEnd


def new_task(name: str = "a", **changes: object) -> NewTask:
    base: dict[str, object] = dict(
        name=name,
        spec_json=json.dumps(
            {
                "name": name,
                "claude": {"instructions": "x", "env": {"API_TOKEN": "s3cret", "MODE": "1"}},
            }
        ),
        priority="normal",
        priority_rank=1,
        tags=["ci"],
        depends_on=[],
        retry_json="{}",
        source="test",
        source_path=f"{name}.yaml",
    )
    base.update(changes)
    return NewTask(**base)  # type: ignore[arg-type]


# Every test here runs on SQLite and on PostgreSQL (the `database` fixture in conftest.py).


def raw(database: Path | str, sql: str) -> list[tuple[Any, ...]]:
    """Plain SQL straight to the database, behind the store's back."""
    if isinstance(database, Path):
        with closing(sqlite3.connect(database)) as conn, conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database.replace("+psycopg", "", 1), autocommit=True) as pg:
        cur = pg.execute(sql)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def store(database: Path | str) -> Iterator[Store]:
    s = Store(database)
    yield s
    s.close()


@pytest.fixture
def reader(database: Path | str) -> Iterator[Reader]:
    with closing(Reader(database)) as r:
        yield r


def test_new_database_is_private_and_versioned(database: Path | str, store: Store) -> None:
    assert raw(database, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    if isinstance(database, Path):
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        assert raw(database, "PRAGMA journal_mode") == [("wal",)]
        assert raw(database, "PRAGMA integrity_check") == [("ok",)]


def test_add_tasks_records_rows_and_events_together(store: Store, reader: Reader) -> None:
    ids, events = store.add_tasks([new_task("a"), new_task("b", depends_on=["a"])])
    assert ids == sorted(ids)
    assert [(e["type"], e["task_id"], e["state"]) for e in events] == [
        ("task.created", ids[0], "QUEUED"),
        ("task.queued", ids[0], "QUEUED"),
        ("task.created", ids[1], "PENDING"),
    ]
    assert [e["type"] for e in reader.events_after(0)] == [e["type"] for e in events]
    b = reader.task(ids[1])
    assert b is not None and b["depends_on_ids"] == [ids[0]] and b["state"] == "PENDING"


def test_depends_on_resolves_to_newest_task_of_that_name(store: Store) -> None:
    old, _ = store.add_tasks([new_task("build")])
    newer, _ = store.add_tasks([new_task("build")])
    (dep,), _ = store.add_tasks([new_task("test", depends_on=["build"])])
    row = store.task_row(dep)
    assert row is not None and json.loads(row["depends_on_ids_json"]) == newer
    assert newer != old
    with pytest.raises(StoreError, match="depends_on 'nope'"):
        store.add_tasks([new_task("x", depends_on=["nope"])])


def test_held_tasks_stay_pending(store: Store) -> None:
    (tid,), events = store.add_tasks([new_task(held=True)])
    assert [e["type"] for e in events] == ["task.created"]
    assert store.pick(10, time.time()) == []
    assert store.transition(tid, State.QUEUED, expect=[State.PENDING]) is not None
    assert store.pick(10, time.time()) == [tid]


def test_compare_and_set_gives_exactly_one_winner(
    store: Store, reader: Reader, tmp_path: Path
) -> None:
    (tid,), _ = store.add_tasks([new_task()])
    assert (
        store.transition(tid, State.CANCELLED, expect=[State.QUEUED], reason="by hand") is not None
    )
    assert store.start(1, time.time(), tmp_path) == []  # lost the race: no execution row
    assert store.transition(tid, State.CANCELLED, expect=[State.QUEUED]) is None
    with pytest.raises(TransitionError):
        store.transition(tid, State.RUNNING, expect=[State.COMPLETED])
    task = reader.task(tid)
    assert task is not None and task["state"] == "CANCELLED" and task["reason"] == "by hand"
    assert task["executions"] == []


def test_cancel_racing_finish_yields_one_final_state(
    store: Store, reader: Reader, tmp_path: Path
) -> None:
    (tid,), _ = store.add_tasks([new_task()])
    [(eid, ev, *_)] = store.start(1, time.time(), tmp_path)
    assert ev["type"] == "task.started" and ev["attempts"] == 1
    cancelled = store.transition(tid, State.CANCELLED, expect=[State.RUNNING], reason="cancelled")
    assert cancelled is not None
    # the runner's finish arrives second: the execution is recorded, the task stays CANCELLED
    events = store.finish_execution(
        eid, tid, state=State.COMPLETED, reason="", end=ExecutionEnd(cost_usd=0.25)
    )
    assert events == []
    task = reader.task(tid)
    assert task is not None and task["state"] == "CANCELLED"
    assert task["executions"][0]["state"] == "COMPLETED" and task["cost_usd"] == 0.25
    assert store.finish_execution(eid, tid, state=State.FAILED, reason="again") == []


def test_finish_then_retry_in_one_transaction(store: Store, tmp_path: Path) -> None:
    (tid,), _ = store.add_tasks([new_task()])
    [(eid, *_)] = store.start(1, time.time(), tmp_path)
    events = store.finish_execution(
        eid,
        tid,
        state=State.FAILED,
        reason="boom",
        then=(State.QUEUED, "retry 2/3", {"not_before": 5.0}),
    )
    assert [(e["type"], e["state"]) for e in events] == [
        ("task.finished", "FAILED"),
        ("task.queued", "QUEUED"),
    ]
    assert events[1]["not_before"] == 5.0
    assert store.pick(1, 4.0) == [] and store.pick(1, 6.0) == [tid]


def test_pick_orders_by_priority_then_age_and_filters(store: Store) -> None:
    ids, _ = store.add_tasks(
        [
            new_task("low", priority="low", priority_rank=2),
            new_task("n1"),
            new_task("high", priority="high", priority_rank=0),
            new_task("n2"),
        ]
    )
    low, n1, high, n2 = ids
    assert store.pick(10, time.time()) == [high, n1, n2, low]
    assert store.pick(2, time.time()) == [high, n1]
    (mine,), _ = store.add_tasks([new_task("mine", dispatcher="run:me")])
    assert mine not in store.pick(10, time.time())
    assert store.pick(10, time.time(), dispatcher="run:me") == [mine]


def test_aging_lets_a_long_waiting_low_task_rise(database: Path | str) -> None:
    store = Store(database, aging_s=0.05)
    (low,), _ = store.add_tasks([new_task("low", priority="low", priority_rank=2)])
    time.sleep(0.12)  # more than two aging intervals: low now ranks above a fresh high
    (high,), _ = store.add_tasks([new_task("high", priority="high", priority_rank=0)])
    assert store.pick(2, time.time()) == [low, high]
    store.close()


def test_reader_lists_filters_and_masks(store: Store, reader: Reader) -> None:
    ids, _ = store.add_tasks(
        [new_task("alpha"), new_task("beta", tags=["nightly"]), new_task("gamma")]
    )
    assert [t["name"] for t in reader.list_tasks()] == ["gamma", "beta", "alpha"]
    assert [t["name"] for t in reader.list_tasks(tag="nightly")] == ["beta"]
    assert [t["name"] for t in reader.list_tasks(limit=1)] == ["gamma"]
    assert [t["name"] for t in reader.list_tasks(search="ET")] == ["beta"]
    assert [t["name"] for t in reader.list_tasks(before_id=ids[2])] == ["beta", "alpha"]
    task = reader.task(ids[0])
    assert task is not None
    assert task["spec"]["claude"]["env"] == {"API_TOKEN": "***", "MODE": "1"}
    assert "s3cret" not in json.dumps(reader.list_tasks()) + json.dumps(task)
    assert reader.counts() == {"QUEUED": 3}
    assert [t["name"] for t in reader.list_tasks(search="50%_\\")] == []
    assert [t["name"] for t in reader.list_tasks(ids=[ids[0], ids[2]])] == ["gamma", "alpha"]
    assert reader.name_exists("beta") and not reader.name_exists("delta")
    assert reader.cost_since(0) == 0.0 and reader.pool_state() == {}
    store.set_pool_state(paused=True)
    assert reader.pool_state() == {"paused": True}
    assert reader.status(daily_budget_usd=0, slots=2)["pool"]["paused"] is True


def test_reader_reads_executions_and_spend(store: Store, reader: Reader, tmp_path: Path) -> None:
    (tid,), _ = store.add_tasks([new_task()])
    [(eid, *_)] = store.start(1, time.time(), tmp_path, owner_host="h", owner_pid=7)
    assert [r["execution_id"] for r in reader.running()] == [eid]
    store.request_cancel(tid)
    assert store.cancel_requested([tid]) == [tid]
    store.finish_execution(
        eid, tid, state=State.COMPLETED, reason="", end=ExecutionEnd(cost_usd=0.5, exit_code=0)
    )
    execution = reader.execution(eid)
    assert execution is not None and execution["cost_usd"] == 0.5
    assert execution["owner"] == {"host": "h", "pid": 7, "node": ""}
    assert reader.latest_execution(tid) == execution
    assert reader.cost_since(0) == 0.5 and reader.cost_since(time.time() + 60) == 0.0
    task = reader.task(tid)
    assert task is not None and task["state"] == "COMPLETED" and task["held"] is False
    assert task["cost_usd"] == 0.5 and task["executions"] == [execution]
    # the /metrics aggregates
    assert reader.execution_totals() == [("COMPLETED", 1, 0.5, 0, 0, 0, 0)]
    count, total, *buckets = reader.durations((1, 3600))
    assert (count, buckets) == (1, [1, 1]) and 0 <= total < 1
    assert reader.queue() == (0, None)
    store.add_tasks([new_task("next")])
    assert reader.queue()[0] == 1


def test_reader_on_missing_database_answers_empty(reader: Reader, database: Path | str) -> None:
    """No SQLite file, or a PostgreSQL database without the schema: empty, nothing created."""
    assert reader.list_tasks() == [] and reader.counts() == {} and reader.task("x") is None
    assert reader.cost_since(0) == 0.0
    if isinstance(database, Path):
        assert not database.exists()
    else:
        assert (
            raw(database, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            == []
        )


def test_older_schema_is_upgraded(database: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    from claudomator.store import database as db
    from claudomator.store import schema

    Store(database).close()
    # pretend the code moved on by one version with a migration that adds a column
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        schema.MIGRATIONS,
        SCHEMA_VERSION + 1,
        ["ALTER TABLE tasks ADD COLUMN extra TEXT DEFAULT ''"],
    )
    Store(database).close()
    assert raw(database, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION + 1),)
    ]
    assert raw(database, "SELECT extra FROM tasks") == []


def test_newer_schema_is_refused(database: Path | str) -> None:
    Store(database).close()
    raw(database, "UPDATE meta SET value = '999'")
    with pytest.raises(StoreError, match="newer than this claudomator"):
        Store(database)


def test_foreign_file_is_refused(database: Path | str) -> None:
    raw(database, "CREATE TABLE tasks (x TEXT)")
    with pytest.raises(StoreError, match="not a claudomator database"):
        Store(database)


WRITER = """
import sys, time
from claudomator.store.db import Store, NewTask
from claudomator.state import State
s = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    s.add_tasks([NewTask(name=f'w{i}', spec_json='{}', priority='normal', priority_rank=1,
        tags=[], depends_on=[], retry_json='{}', source='t', source_path='')])
    # another process's task, maybe: a claim takes the oldest queued one
    for execution_id, event, *_ in s.start(1, time.time(), __import__('pathlib').Path(sys.argv[3])):
        s.finish_execution(execution_id, event['task_id'], state=State.COMPLETED, reason='')
"""


def processes(script: str, *args: str, n: int = 4) -> list[str]:
    """Run `script` in `n` processes at once (released together); their stdouts."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args, str(time.time() + 1.0)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, [e.decode() for _, e in outs]
    return [o.decode() for o, _ in outs]


def test_several_processes_write_at_once(
    database: Path | str, reader: Reader, tmp_path: Path
) -> None:
    Store(database).close()
    processes(WRITER, str(database), "60", str(tmp_path))
    assert reader.counts() == {"COMPLETED": 240}


MIGRATOR = """
import sys, time
from claudomator.store.db import Store
time.sleep(max(0.0, float(sys.argv[-1]) - time.time()))
Store(sys.argv[1]).close()
"""


def test_several_processes_create_the_schema_at_once(database: Path | str, reader: Reader) -> None:
    """Nodes starting together on an empty database: one creates the schema (under an advisory
    lock on PostgreSQL, the write lock on SQLite), the others find it made."""
    processes(MIGRATOR, str(database), n=6)
    assert raw(database, "SELECT key, value FROM meta") == [("schema_version", str(SCHEMA_VERSION))]
    assert reader.counts() == {}


STARTER = """
import sys, time
from pathlib import Path
from claudomator.store.db import Store
s = Store(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[-1]) - time.time()))
print("won" if s.start(1, time.time(), Path(sys.argv[3])) else "lost")
"""


def test_dispatchers_racing_for_one_task_exactly_one_wins(
    store: Store, reader: Reader, database: Path | str, tmp_path: Path
) -> None:
    """Every dispatcher may see the same task queued; the compare-and-set QUEUED → RUNNING in
    the claim's UPDATE starts it, and exactly one wins it."""
    (tid,), _ = store.add_tasks([new_task()])
    outs = processes(STARTER, str(database), tid, str(tmp_path), n=8)
    assert sorted(o.strip() for o in outs) == ["lost"] * 7 + ["won"]
    task = reader.task(tid)
    assert task is not None and task["state"] == "RUNNING" and task["attempts"] == 1
    assert len(task["executions"]) == 1


def test_unreachable_postgresql_is_a_store_error_without_the_password() -> None:
    url = "postgresql+psycopg://claudo:hunter22@127.0.0.1:1/jobs"
    with pytest.raises(StoreError, match="cannot open the database") as opened:
        Store(url)
    with closing(Reader(url)) as reader, pytest.raises(StoreError) as read:
        reader.counts()
    for caught in (opened, read):
        assert "claudo:***@127.0.0.1:1/jobs" in str(caught.value)
        assert "hunter22" not in str(caught.value)


def test_state_change_events_carry_the_tasks_cost_so_far(store: Store, tmp_path: Path) -> None:
    (tid,), _ = store.add_tasks([new_task(retry_json='{"max_attempts": 2, "backoff": "0s"}')])
    eid, started, *_ = store.start(1, time.time(), tmp_path)[0]
    assert started["cost_usd"] == 0.0
    retried = store.finish_execution(
        eid, tid, state=State.FAILED, reason="x", end=ExecutionEnd(cost_usd=0.25),
        then=(State.QUEUED, "retry", {}),
    )  # fmt: skip
    assert [(e["state"], e["cost_usd"]) for e in retried] == [("FAILED", 0.25), ("QUEUED", 0.25)]
    eid2, again, *_ = store.start(1, time.time(), tmp_path)[0]
    assert (again["attempts"], again["cost_usd"]) == (2, 0.25)
    [done] = store.finish_execution(
        eid2, tid, state=State.COMPLETED, reason="", end=ExecutionEnd(cost_usd=0.5)
    )
    assert done["cost_usd"] == 0.75
