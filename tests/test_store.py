from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claudomator.errors import StoreError, TransitionError
from claudomator.state import State
from claudomator.store.db import NewTask, Store
from claudomator.store.reader import Reader
from claudomator.store.schema import SCHEMA_VERSION


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


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "claudomator.db")
    yield s  # type: ignore[misc]
    s.close()


def test_new_database_is_private_and_versioned(tmp_path: Path, store: Store) -> None:
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store.integrity_check() == "ok"


def test_add_tasks_records_rows_and_events_together(store: Store) -> None:
    ids, events = store.add_tasks([new_task("a"), new_task("b", depends_on=["a"])])
    assert ids == sorted(ids)
    assert [(e["type"], e["task_id"], e["state"]) for e in events] == [
        ("task.created", ids[0], "QUEUED"),
        ("task.queued", ids[0], "QUEUED"),
        ("task.created", ids[1], "PENDING"),
    ]
    reader = Reader(store.path)
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


def test_compare_and_set_gives_exactly_one_winner(store: Store) -> None:
    (tid,), _ = store.add_tasks([new_task()])
    assert (
        store.transition(tid, State.CANCELLED, expect=[State.QUEUED], reason="by hand") is not None
    )
    assert store.start_execution(tid, store.path.parent) is None  # lost the race: no execution row
    assert store.transition(tid, State.CANCELLED, expect=[State.QUEUED]) is None
    with pytest.raises(TransitionError):
        store.transition(tid, State.RUNNING, expect=[State.COMPLETED])
    reader = Reader(store.path)
    task = reader.task(tid)
    assert task is not None and task["state"] == "CANCELLED" and task["reason"] == "by hand"
    assert task["executions"] == []


def test_cancel_racing_finish_yields_one_final_state(store: Store) -> None:
    (tid,), _ = store.add_tasks([new_task()])
    started = store.start_execution(tid, store.path.parent)
    assert started is not None
    eid, ev, _ = started
    assert ev["type"] == "task.started" and ev["attempts"] == 1
    cancelled = store.transition(tid, State.CANCELLED, expect=[State.RUNNING], reason="cancelled")
    assert cancelled is not None
    # the runner's finish arrives second: the execution is recorded, the task stays CANCELLED
    events = store.finish_execution(eid, tid, state=State.COMPLETED, reason="", cost_usd=0.25)
    assert events == []
    task = Reader(store.path).task(tid)
    assert task is not None and task["state"] == "CANCELLED"
    assert task["executions"][0]["state"] == "COMPLETED" and task["cost_usd"] == 0.25
    assert store.finish_execution(eid, tid, state=State.FAILED, reason="again") == []


def test_finish_then_retry_in_one_transaction(store: Store) -> None:
    (tid,), _ = store.add_tasks([new_task()])
    eid, _, _ = store.start_execution(tid, store.path.parent) or ("", {}, {})
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


def test_aging_lets_a_long_waiting_low_task_rise(tmp_path: Path) -> None:
    store = Store(tmp_path / "aging.db", aging_s=0.05)
    (low,), _ = store.add_tasks([new_task("low", priority="low", priority_rank=2)])
    time.sleep(0.12)  # more than two aging intervals: low now ranks above a fresh high
    (high,), _ = store.add_tasks([new_task("high", priority="high", priority_rank=0)])
    assert store.pick(2, time.time()) == [low, high]
    store.close()


def test_reader_lists_filters_and_masks(store: Store) -> None:
    ids, _ = store.add_tasks(
        [new_task("alpha"), new_task("beta", tags=["nightly"]), new_task("gamma")]
    )
    reader = Reader(store.path)
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


def test_reader_on_missing_database_answers_empty(tmp_path: Path) -> None:
    reader = Reader(tmp_path / "nope.db")
    assert reader.list_tasks() == [] and reader.counts() == {} and reader.task("x") is None
    assert reader.cost_since(0) == 0.0
    assert not (tmp_path / "nope.db").exists()


def test_older_schema_is_upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from claudomator.store import db, schema

    path = tmp_path / "claudomator.db"
    Store(path).close()
    # pretend the code moved on by one version with a migration that adds a column
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        schema.MIGRATIONS,
        SCHEMA_VERSION + 1,
        ["ALTER TABLE tasks ADD COLUMN extra TEXT DEFAULT ''"],
    )
    Store(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone() == (str(SCHEMA_VERSION + 1),)
        assert "extra" in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "claudomator.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999'")
    with pytest.raises(StoreError, match="newer than this claudomator"):
        Store(path)


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "claudomator.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE tasks (x)")
    with pytest.raises(StoreError, match="not a claudomator database"):
        Store(path)


WRITER = """
import sys, time
from claudomator.store.db import Store, NewTask
from claudomator.state import State
s = Store(__import__('pathlib').Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    (tid,), _ = s.add_tasks([NewTask(name=f'w{i}', spec_json='{}', priority='normal', priority_rank=1,
        tags=[], depends_on=[], retry_json='{}', source='t', source_path='')])
    started = s.start_execution(tid, s.path.parent)
    if started:
        s.finish_execution(started[0], tid, state=State.COMPLETED, reason='')
"""


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "claudomator.db"
    Store(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "60"], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert Reader(path).counts() == {"COMPLETED": 240}
