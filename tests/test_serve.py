"""`claudomator serve` as a real process: intake, folders, the dispatcher lock, graceful stop, and
restarts after SIGKILL at each named point of the lifecycle."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.net import free_port
from tests.poll import wait_for
from tests.taskfiles import batch_yaml, task_data, task_yaml
from tests.taskfiles import scenario as fake


class Server:
    """`serve` as a process of its own, with the fake claude recording each run in `record`."""

    def __init__(self, home: Path, env: dict[str, str], record: Path) -> None:
        self.home, self.env, self.record = home, env, record
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"]

    def start(self, ready: bool = True, **extra_env: str) -> Server:
        """Start `serve`; with `ready`, wait until it says it serves (or it died)."""
        self.log_path = self.home.parent / f"serve-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = proc = subprocess.Popen(
            self.command(),
            env={**self.env, **extra_env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if ready:
            wait_for(
                lambda: b"serve.started" in self.log_path.read_bytes() or proc.poll() is not None
            )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.log.close()
        return code

    def drop(self, rel: str, text: str) -> Path:
        path = self.home / "inbox" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_text(text)
        os.rename(tmp, path)
        return path

    def tasks(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            [sys.executable, "-m", "claudomator.cli", "list", "--json", "--limit", "1000"],
            env=self.env, capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return list(json.loads(out.stdout))

    def files(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for folder in ("inbox", "queued", "running", "done", "rejected", ".staging"):
            top = self.home / folder
            out[folder] = sorted(
                str(p.relative_to(top)) for p in top.rglob("*") if not p.is_dir() or p.is_symlink()
            ) if top.exists() else []  # fmt: skip
        return out


def serve_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment of a test's `serve`: short graces, a sweep every second, and the fake
    claude recording each run in the folder returned with it."""
    work, record = tmp_path / "work", tmp_path / "record"
    work.mkdir()
    record.mkdir()
    env = {
        **os.environ,
        "CLAUDOMATOR_CLAUDE_WORKING_DIR": str(work),
        "CLAUDOMATOR_RUNNER_INTERRUPT_GRACE": "2s",
        "CLAUDOMATOR_RUNNER_TERMINATE_GRACE": "1s",
        "CLAUDOMATOR_RUNNER_STOP_GRACE": "5s",
        "CLAUDOMATOR_INTAKE_SWEEP_INTERVAL": "1s",
        "FAKE_CLAUDE_RECORD": str(record),
    }
    return env, record


@pytest.fixture
def server(home: Path, fake_claude: Path, tmp_path: Path) -> Iterator[Server]:
    srv = Server(home, *serve_env(tmp_path))
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.stop(signal.SIGKILL)


def task(name: str, scenario: str = "tools", **params: Any) -> str:
    """A task file whose one task plays the fake claude's `scenario` with `params`."""
    return task_yaml(name, fake(scenario, **params))


BATCH = batch_yaml(
    task_data("one", fake("tools")), task_data("two", fake("tools"), depends_on=["one"])
)


def test_files_move_through_the_folders(server: Server) -> None:
    server.start()
    server.drop("team/a.yaml", task("a", turns=1))
    server.drop("b.yaml", "name: b\nclaude: {instructions: x, bogus_key: 1}\n")
    server.drop("batch.yml", BATCH)
    (server.home / "inbox" / "notes.txt").write_text("left alone")
    (server.home / "inbox" / ".draft.yaml").write_text("left alone")
    wait_for(lambda: len(server.files()["done"]) == 4)
    files = server.files()
    assert files["done"] == [
        "batch.yml",
        "batch.yml.result.json",
        "team/a.yaml",
        "team/a.yaml.result.json",
    ]
    assert files["rejected"] == ["b.yaml", "b.yaml.error"]
    assert "claude.bogus_key: unknown field" in (server.home / "rejected/b.yaml.error").read_text()
    assert files["inbox"] == [".draft.yaml", "notes.txt"]
    assert files["queued"] == files["running"] == files[".staging"] == []
    result = json.loads((server.home / "done/batch.yml.result.json").read_text())
    assert [(t["name"], t["state"]) for t in result["tasks"]] == [
        ("one", "COMPLETED"),
        ("two", "COMPLETED"),
    ]
    assert result["tasks"][0]["executions"][0]["stdout_path"].endswith("stdout.log")
    assert result["provenance"] is None  # an inbox file: no git provenance
    assert server.stop() == 0
    events = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    for event in events:  # readable times, and no empty field (`execution_id=` for a task.*)
        assert "" not in event.values() and None not in event.values(), event
        if "at" in event:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["at"]), event
    assert any(e["event"] == "task.created" and "execution_id" not in e for e in events)


def test_a_second_server_is_refused(server: Server) -> None:
    server.start()
    second = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"],
        env=server.env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert second.returncode == 1 and server.proc is not None
    assert f"pid {server.proc.pid}" in second.stderr
    assert server.stop() == 0


def test_sigterm_lets_running_finish_then_second_signal_cancels(server: Server) -> None:
    server.start()
    server.drop("slow.yaml", task("slow", "sleep", sleep_s=60))
    wait_for(lambda: server.files()["running"])
    time.sleep(0.3)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert server.proc.poll() is None  # waiting for the running execution
    assert server.stop(signal.SIGINT) == 0
    (t,) = server.tasks()
    assert t["state"] == "CANCELLED"
    assert server.files()["done"] == ["slow.yaml", "slow.yaml.result.json"]


def test_pause_holds_new_work_until_resume(server: Server) -> None:
    server.start()
    subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "pause"],
        env=server.env,
        check=True,
        capture_output=True,
    )
    server.drop("a.yaml", task("a", turns=1))
    wait_for(lambda: server.files()["queued"])
    time.sleep(0.6)
    assert server.tasks()[0]["state"] == "QUEUED"
    subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "resume"],
        env=server.env,
        check=True,
        capture_output=True,
    )
    wait_for(lambda: server.tasks()[0]["state"] == "COMPLETED")
    server.stop()


def test_deleting_a_queued_file_cancels_it(server: Server) -> None:
    subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "init"],
        env=server.env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "pause"],
        env=server.env,
        check=True,
        capture_output=True,
    )
    server.start()
    server.drop("a.yaml", task("a"))
    wait_for(lambda: server.files()["queued"] == ["a.yaml"])
    (server.home / "queued/a.yaml").unlink()
    wait_for(lambda: server.tasks()[0]["state"] == "CANCELLED")
    assert server.tasks()[0]["reason"] == "task file deleted from queued/"
    server.stop()


def test_a_task_cancelled_from_a_terminal_moves_its_file_at_the_next_sweep(
    server: Server,
) -> None:
    cli = [sys.executable, "-m", "claudomator.cli"]
    subprocess.run([*cli, "pause"], env=server.env, check=True, capture_output=True)
    server.start()
    server.drop("a.yaml", task("a"))
    wait_for(lambda: server.files()["queued"] == ["a.yaml"])
    task_id = server.tasks()[0]["id"]
    # another process: the server hears of it only through the store (the sweep, every 1 s)
    subprocess.run([*cli, "cancel", task_id], env=server.env, check=True, capture_output=True)
    wait_for(lambda: server.files()["done"] == ["a.yaml", "a.yaml.result.json"], timeout=10)
    result = json.loads((server.home / "done/a.yaml.result.json").read_text())
    assert [t["state"] for t in result["tasks"]] == ["CANCELLED"]
    server.stop()


def executions_started(server: Server) -> int:
    return len(list(server.record.glob("*.json")))


@pytest.mark.parametrize("point", ["claimed", "recorded", "spawned", "running", "finished"])
def test_sigkill_at_each_point_then_restart(server: Server, point: str) -> None:
    scenario = (
        task("victim", "sleep", sleep_s=1)
        if point != "running"
        else task("victim", "sleep", sleep_s=60)
    )
    if point == "running":
        server.start()
        server.drop("victim.yaml", scenario)
        wait_for(lambda: server.files()["running"])
        time.sleep(0.3)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    else:
        server.start(ready=point != "claimed" and point != "recorded", CLAUDOMATOR_FAILPOINT=point)
        server.drop("victim.yaml", scenario)
        assert server.proc is not None
        assert server.proc.wait(20) == -signal.SIGKILL
        server.log.close()
    started_before = executions_started(server)
    server.start()
    wait_for(
        lambda: (
            server.tasks()
            and all(t["state"] not in ("QUEUED", "RUNNING", "PENDING") for t in server.tasks())
        ),
        30,
    )
    files = server.files()
    assert server.stop() == 0
    tasks = server.tasks()
    assert len(tasks) == 1, tasks
    (t,) = tasks
    expected = {
        "claimed": ("COMPLETED", ""),
        "recorded": ("COMPLETED", ""),
        "spawned": ("FAILED", "interrupted"),
        "running": ("FAILED", "interrupted"),
        "finished": ("COMPLETED", ""),
    }[point]
    assert (t["state"], t["reason"]) == expected
    # every file accounted for exactly once, nothing half-claimed
    assert files["done"] == ["victim.yaml", "victim.yaml.result.json"]
    assert files["inbox"] == files["queued"] == files["running"] == files[".staging"] == []
    # never started twice: an interrupted execution is not run again
    assert executions_started(server) == max(started_before, 1)
    assert t["attempts"] == 1
    with sqlite3.connect(server.home / "claudomator.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute(
            "SELECT COUNT(*) FROM executions WHERE state = 'RUNNING'"
        ).fetchone() == (0,)


def test_sigkill_between_a_final_state_and_its_dependents_then_restart(server: Server) -> None:
    server.start(CLAUDOMATOR_FAILPOINT="settling")
    server.drop("batch.yaml", BATCH)
    assert server.proc is not None
    assert server.proc.wait(20) == -signal.SIGKILL
    server.log.close()
    assert {t["name"]: t["state"] for t in server.tasks()} == {"one": "COMPLETED", "two": "PENDING"}
    server.start()
    wait_for(lambda: {t["state"] for t in server.tasks()} == {"COMPLETED"})
    wait_for(lambda: server.files()["done"] == ["batch.yaml", "batch.yaml.result.json"])
    assert server.stop() == 0
    assert len(server.tasks()) == 2 and executions_started(server) == 2


def test_a_retried_file_and_one_moved_back_to_the_inbox_follow_the_store(server: Server) -> None:
    cli = [sys.executable, "-m", "claudomator.cli"]
    server.start()
    server.drop("a.yaml", task("a", "error_max_turns"))
    wait_for(lambda: server.files()["done"] == ["a.yaml", "a.yaml.result.json"])
    task_id = server.tasks()[0]["id"]
    # from a terminal: the server hears of it through the store, and the file leaves done/
    subprocess.run([*cli, "pause"], env=server.env, check=True, capture_output=True)
    subprocess.run([*cli, "retry", task_id], env=server.env, check=True, capture_output=True)
    wait_for(lambda: server.files()["running"] == ["a.yaml"], timeout=10)
    assert server.files()["done"] == []
    subprocess.run([*cli, "resume"], env=server.env, check=True, capture_output=True)
    wait_for(lambda: server.files()["done"] == ["a.yaml", "a.yaml.result.json"], timeout=10)
    result = json.loads((server.home / "done/a.yaml.result.json").read_text())
    assert [len(t["executions"]) for t in result["tasks"]] == [2]
    # moved back to run again as new tasks: its result file does not stay behind
    subprocess.run([*cli, "pause"], env=server.env, check=True, capture_output=True)
    os.rename(server.home / "done/a.yaml", server.home / "inbox/a.yaml")
    wait_for(lambda: len(server.tasks()) == 2)
    wait_for(lambda: server.files()["queued"] == ["a.yaml"])
    assert server.files()["done"] == []  # its old .result.json went with it
    subprocess.run([*cli, "resume"], env=server.env, check=True, capture_output=True)
    wait_for(lambda: server.files()["done"] == ["a.yaml", "a.yaml.result.json"])
    result = json.loads((server.home / "done/a.yaml.result.json").read_text())
    assert [len(t["executions"]) for t in result["tasks"]] == [1]
    assert server.stop() == 0


class ApiServer(Server):
    """`serve` with its API, on the port of CLAUDOMATOR_SERVER_PORT in `env`."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "claudomator.cli", "serve"]


def test_a_second_server_is_told_who_serves_before_it_binds_the_port(
    home: Path, fake_claude: Path, tmp_path: Path
) -> None:
    env, record = serve_env(tmp_path)
    first = ApiServer(home, {**env, "CLAUDOMATOR_SERVER_PORT": str(free_port())}, record)
    first.start()
    try:
        wait_for(lambda: b"api.listening" in first.log_path.read_bytes())
        second = subprocess.run(
            first.command(), env=first.env, capture_output=True, text=True, timeout=30
        )  # the same data dir, the same port
        assert second.returncode == 1 and first.proc is not None
        assert second.stderr.startswith(f"Error: another claudomator serves {home} ")
        assert f"pid {first.proc.pid}" in second.stderr and "cannot listen" not in second.stderr
        shown = subprocess.run(
            [sys.executable, "-m", "claudomator.cli", "status"],
            env=first.env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert "pool: 0/4 slots busy; starting tasks" in shown
        assert re.search(rf"^serve: up for \d+s, node \S+, pid {first.proc.pid} on ", shown, re.M)
    finally:
        code = first.stop(signal.SIGINT)  # Ctrl-C
    assert code == 130


def test_a_relative_working_dir_of_an_inbox_task_is_claude_working_dir_s(server: Server) -> None:
    work = Path(server.env["CLAUDOMATOR_CLAUDE_WORKING_DIR"])
    (work / "sub").mkdir()
    server.start()
    server.drop("a.yaml", task_yaml("a", fake("tools", turns=1), claude={"working_dir": "sub"}))
    wait_for(lambda: {t["state"] for t in server.tasks()} == {"COMPLETED"})
    (t,) = server.tasks()
    detail = json.loads(
        subprocess.run(
            [sys.executable, "-m", "claudomator.cli", "status", "--json", t["id"]],
            env=server.env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    )  # fmt: skip
    assert detail["spec"]["claude"]["working_dir"] == str(work / "sub")  # not serve's cwd
    runs = [json.loads(p.read_text()) for p in server.record.glob("*.json")]
    assert {r["cwd"] for r in runs if "-p" in r["argv"]} == {str((work / "sub").resolve())}
    assert server.stop() == 0
