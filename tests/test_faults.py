"""Faults beyond kill -9: `serve` stopped (SIGSTOP) past a task's timeout, a claude that closes its
stdout and keeps running, and the SQLite database locked by another process past the busy
timeout. Real `serve` processes and the real runner, with the fake claude."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from claudomator.outcome import Ending, decide
from claudomator.records import TaskDetail
from claudomator.run import Run
from claudomator.runner import EOF_GRACE_S
from claudomator.service import Claudomator
from claudomator.state import FINAL_STATES
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.poll import wait_for
from tests.test_runner import service
from tests.test_serve import Server, serve_env, task

__all__ = ["service"]  # the fixture, shared with test_runner

# `serve`, with the SQLite busy timeout shortened so that a lock can outlast it within a test
SERVE = (
    "import sys; import claudomator.store.database as db; db.BUSY_TIMEOUT_S = float(sys.argv.pop(1)); "
    "from claudomator.cli import main; main()"
)


class FaultServer(Server):
    busy_timeout_s = 30.0

    def command(self) -> list[str]:
        return [sys.executable, "-c", SERVE, str(self.busy_timeout_s), "serve", "--no-api"]

    def died(self) -> bool:
        assert self.proc is not None
        return self.proc.poll() is not None

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.home / "claudomator.db", timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def executions(self) -> list[dict[str, Any]]:
        with self.db() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM executions ORDER BY started_at")]

    def finished_events(self) -> int:
        with self.db() as conn:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM events WHERE type = 'task.finished'"
            ).fetchone()
        return int(n)

    def claudes(self) -> list[dict[str, Any]]:
        """What each fake claude started recorded (its pid among it)."""
        return [json.loads(p.read_text()) for p in sorted(self.record.glob("*.json"))]


@pytest.fixture
def server(home: Path, fake_claude: Path, tmp_path: Path) -> Iterator[FaultServer]:
    srv = FaultServer(home, *serve_env(tmp_path))
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGCONT)  # a test may have left it stopped
        srv.stop(signal.SIGKILL)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def final(server: FaultServer) -> list[dict[str, Any]]:
    tasks = server.tasks()
    return tasks if tasks and all(t["state"] in FINAL_STATES for t in tasks) else []


# -- 1. serve stopped past a task's timeout ------------------------------------------------------


def test_serve_stopped_past_a_timeout_times_out_once_at_wake_up(server: FaultServer) -> None:
    server.start()
    server.drop("slow.yaml", task("slow", "sleep", sleep_s=60) + "timeout: 2s\n")
    (claude,) = wait_for(server.claudes)
    wait_for(
        lambda: b"Working on it" in next(server.home.glob("executions/*/stdout.log")).read_bytes()
    )
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(4)  # twice the timeout; claude keeps running meanwhile
        assert not gone(claude["pid"])
        assert server.tasks()[0]["state"] == "RUNNING"
    finally:
        server.proc.send_signal(signal.SIGCONT)
    woke = time.monotonic()
    (t,) = wait_for(lambda: final(server), 10)
    assert time.monotonic() - woke < 4  # at wake-up: SIGINT, then claude reports and exits
    assert (t["state"], t["reason"], t["attempts"]) == ("TIMED_OUT", "timeout", 1)
    assert gone(claude["pid"])
    time.sleep(1)  # nothing more comes of it: no second result, no second execution
    assert server.stop() == 0
    (ex,) = server.executions()
    assert ex["state"] == "TIMED_OUT"
    assert len(server.claudes()) == 1
    assert server.finished_events() == 1
    assert b"aborted_streaming" in Path(ex["stdout_path"]).read_bytes()  # it was interrupted
    assert server.files()["done"] == ["slow.yaml", "slow.yaml.result.json"]


def test_serve_stopped_while_claude_finishes_records_how_it_ended(server: FaultServer) -> None:
    """A claude that ended by itself while serve was stopped is not timed out afterwards."""
    server.start()
    server.drop("quick.yaml", task("quick", "sleep", sleep_s=1) + "timeout: 2s\n")
    (claude,) = wait_for(server.claudes)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: gone(claude["pid"]), 10)  # it ended (a zombie: serve cannot reap it)
        time.sleep(2.5)  # and the timeout passed too
    finally:
        server.proc.send_signal(signal.SIGCONT)
    (t,) = wait_for(lambda: final(server), 10)
    assert (t["state"], t["reason"], t["attempts"]) == ("COMPLETED", "", 1)
    assert server.stop() == 0
    assert len(server.executions()) == len(server.claudes()) == server.finished_events() == 1


# -- 2. a claude that closes its stdout and keeps running ----------------------------------------


def run(service: Claudomator, instructions: str, **fields: Any) -> tuple[TaskDetail, float]:
    """One task to its end: (the task with its executions, seconds it took)."""
    spec = TaskSpec.model_validate(
        {"name": "t", "claude": {"instructions": instructions}, **fields}
    )
    (task_id,) = service.submit(
        ParsedFile("t.yaml", [spec], False, []), source="test", dispatcher=service.identity
    )
    t0 = time.monotonic()
    asyncio.run(asyncio.wait_for(Run(service, [task_id]).until_final(), 30))
    return service.task(task_id), time.monotonic() - t0


def lines(*params: str) -> str:
    return "".join(f"fake-{p}\n" for p in params)


@pytest.mark.parametrize(
    ("params", "state", "reason"),
    [
        (("scenario: tools", "turns: 1"), "COMPLETED", ""),
        (("scenario: no_result", "message: about to hang"), "FAILED", "closed its stdout"),
    ],
)
def test_a_claude_that_closes_stdout_and_stays_is_stopped_after_a_grace(
    service: Claudomator, params: tuple[str, ...], state: str, reason: str
) -> None:
    # the timeout is a backstop here: the outcome must come from the stream, long before it
    t, took = run(service, lines(*params, "linger-s: 60"), timeout="20s")
    assert (t["state"], t["attempts"]) == (state, 1)
    assert reason in t["reason"]
    assert EOF_GRACE_S <= took < EOF_GRACE_S + 4  # the grace, then SIGINT ends it
    assert len(t["executions"]) == 1
    assert not list(psutil.Process().children(recursive=True))  # the claude is gone


@pytest.mark.parametrize(
    ("result", "stderr", "state", "reason"),
    [
        ({"subtype": "success", "is_error": False}, "", "COMPLETED", ""),
        ({"subtype": "error_max_budget_usd", "total_cost_usd": 1.2}, "", "BUDGET_EXCEEDED", "$1"),
        (
            None,
            "",
            "FAILED",
            "no result: claude closed its stdout and did not exit, so it was stopped",
        ),
        (None, "x\nboom\n", "FAILED", "so it was stopped: boom"),
    ],
)
def test_decide_after_stdout_closed(
    result: dict[str, Any] | None, stderr: str, state: str, reason: str
) -> None:
    ending = Ending(killed="stdout_closed", exit_code=130, stderr_tail=stderr, budget_usd=1.0,
                    result=result)  # fmt: skip
    outcome = decide(ending)
    assert outcome.state.value == state and reason in outcome.reason
    assert bool(outcome.reason) == bool(reason)


def test_the_timeout_still_applies_to_a_claude_that_closed_stdout(service: Claudomator) -> None:
    t, took = run(service, lines("scenario: no_result", "linger-s: 60"), timeout="1s")
    assert (t["state"], t["reason"]) == ("TIMED_OUT", "timeout")
    assert took < EOF_GRACE_S + 1
    assert not list(psutil.Process().children(recursive=True))


def test_a_claude_that_exits_leaving_a_child_on_stdout_is_not_held(
    service: Claudomator, tmp_path: Path
) -> None:
    """The other way round: claude exits, a detached child of its tool still holds stdout."""
    pidfile = tmp_path / "child.pid"
    t, took = run(
        service,
        lines(
            "scenario: grandchild",
            f"pidfile: {pidfile}",
            "keep-stdout: 1",
            "kill-children: 0",
            "sleep-s: 0",
        ),
        timeout="20s",
    )
    assert (t["state"], t["attempts"]) == ("COMPLETED", 1)
    assert took < 6
    assert gone(int(pidfile.read_text()))


# -- 3. the database locked by another process past the busy timeout -----------------------------

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def test_a_database_locked_past_the_busy_timeout_delays_but_loses_nothing(
    server: FaultServer,
) -> None:
    server.busy_timeout_s = 1.0
    server.start()
    server.drop("long.yaml", task("long", "sleep", sleep_s=3))
    wait_for(server.claudes)
    with subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(server.home / "claudomator.db"), "5"],
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        try:
            assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
            server.drop("meanwhile.yaml", task("meanwhile", turns=1))  # waits in the inbox
            assert locker.wait(15) == 0  # five seconds: the execution ends while it is held
        finally:
            if locker.poll() is None:
                locker.kill()
    assert not server.died()
    tasks = wait_for(lambda: len(final(server)) == 2 and final(server), 15)
    assert sorted((t["name"], t["state"], t["reason"], t["attempts"]) for t in tasks) == [
        ("long", "COMPLETED", "", 1),
        ("meanwhile", "COMPLETED", "", 1),
    ]
    wait_for(lambda: len(server.files()["done"]) == 4)
    assert not server.died()
    assert server.stop() == 0
    assert [ex["state"] for ex in server.executions()] == ["COMPLETED", "COMPLETED"]
    assert server.executions()[0]["cost_usd"] > 0
    assert len(server.claudes()) == 2
    assert server.finished_events() == 2
    text = server.text()
    assert "database is locked (another process held it past the busy timeout, 1 s)" in text
    # each part of the loop that met the lock said so once, and carried on
    waits = re.findall(r'"event": "([a-z]+)\.waits"', text)
    assert waits and len(waits) == len(set(waits)), waits
    assert all(f'"{what}.recovered"' in text for what in waits if what != "progress")
    assert server.files()["done"] == [
        "long.yaml", "long.yaml.result.json", "meanwhile.yaml", "meanwhile.yaml.result.json"
    ]  # fmt: skip
    with server.db() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
