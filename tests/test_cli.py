"""The `claudomator` command as people run it: real processes, a real data dir, the fake claude."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import psutil
import pytest

from claudomator.cli import render
from claudomator.config import config_template
from claudomator.records import Execution
from tests.poll import wait_for
from tests.taskfiles import batch_yaml, checked_task, dump, scenario, task_data, task_yaml


def cli(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claudomator.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "claudomator.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("CLAUDOMATOR_CLAUDE_WORKING_DIR", str(work))
    monkeypatch.setenv("CLAUDOMATOR_RUNNER_INTERRUPT_GRACE", "2s")
    monkeypatch.setenv("CLAUDOMATOR_RUNNER_TERMINATE_GRACE", "1s")
    return work


def test_init_is_idempotent_and_never_overwrites(home: Path) -> None:
    out = cli("init")
    assert out.returncode == 0, out.stderr
    config = home / "config.toml"
    assert config.read_text() == config_template()
    assert (
        oct(config.stat().st_mode & 0o777) == "0o600"
        and oct(home.stat().st_mode & 0o777) == "0o700"
    )
    assert (home / "claudomator.db").is_file()
    for folder in ("inbox", "queued", "running", "done", "rejected", "executions"):
        assert (home / folder).is_dir()
    config.write_text("max_concurrency = 2\n")
    assert cli("init").returncode == 0
    assert config.read_text() == "max_concurrency = 2\n"


def test_validate(tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", task_yaml("a"))
    bad = write(
        tmp_path / "bad.yaml", "name: x\nclaude:\n  instructions: y\n  permission_mode: bogus\n"
    )
    dep = write(tmp_path / "dep.yaml", task_yaml("b", depends_on=["nothing"]))
    out = cli("validate", str(good), str(dep))
    assert out.returncode == 0, out.stderr
    assert f"{good}: ok (task)" in out.stdout
    assert "depends_on" in out.stderr and "warning" in out.stderr
    out = cli("validate", str(good), str(bad))
    assert out.returncode == 1
    assert f"{bad}:4:20: claude.permission_mode: 'bogus' is not one of acceptEdits" in out.stderr


def test_schema_and_config_print_json(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = json.loads(cli("schema").stdout)
    assert {"TaskSpec", "BatchSpec"} <= set(schema["$defs"])
    monkeypatch.setenv("CLAUDOMATOR_MAX_CONCURRENCY", "3")
    out = cli("config", "--json")
    keys = {k["key"]: k for k in json.loads(out.stdout)["keys"]}
    assert keys["max_concurrency"] == {  # typed JSON values, not TOML text
        "key": "max_concurrency",
        "value": 3,
        "origin": "env CLAUDOMATOR_MAX_CONCURRENCY",
    }
    assert keys["claude.binary"]["value"] == "claude"
    assert keys["claude.timeout"]["value"] == "30m"
    assert keys["intake.poll"]["value"] is False
    assert keys["claude.allowed_roots"]["value"] == []
    assert re.search(
        r"^max_concurrency +  = 3 +# env CLAUDOMATOR_MAX_CONCURRENCY$", cli("config").stdout, re.M
    )


def test_read_commands_on_an_empty_data_dir(home: Path) -> None:
    assert json.loads(cli("list", "--json").stdout) == []
    status = json.loads(cli("status", "--json").stdout)
    assert status["counts"]["QUEUED"] == 0 and status["cost_today_usd"] == 0
    assert status["pool"] == {
        "paused": False,
        "reason": "",
        "until": None,
        "draining": False,
        "slots": 4,
        "busy": 0,
    }
    assert cli("status", "NOPE").returncode == 4
    assert not (home / "claudomator.db").exists()


def test_run_json_list_status_logs(
    fake_claude: Path,
    work: Path,
    tmp_path: Path,
    home: Path,
    database: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if isinstance(database, str):  # the same commands against PostgreSQL: no SQLite file made
        monkeypatch.setenv("CLAUDOMATOR_DATABASE_URL", database)
    batch = write(
        tmp_path / "b.yaml",
        batch_yaml(
            task_data("build", scenario("success"), claude={"permission_mode": "acceptEdits"}),
            task_data("test", scenario("tools"), depends_on=["build"], priority="high"),
            defaults={"tags": ["ci"]},
        ),
    )
    out = cli("run", "--json", str(batch))
    assert out.returncode == 0, out.stderr
    tasks = json.loads(out.stdout)["tasks"]
    assert [t["name"] for t in tasks] == ["build", "test"]
    assert all(t["state"] == "COMPLETED" and t["attempts"] == 1 for t in tasks)
    for key in (
        "id",
        "name",
        "state",
        "priority",
        "tags",
        "cost_usd",
        "attempts",
        "reason",
        "created_at",
        "updated_at",
    ):
        assert key in tasks[0]
    listed = json.loads(cli("list", "--json", "--tag", "ci").stdout)
    assert [t["name"] for t in listed] == ["test", "build"]
    assert (
        json.loads(cli("list", "--json", "--state", "completed", "--limit", "1").stdout)[0]["name"]
        == "test"
    )
    status = json.loads(cli("status", "--json").stdout)
    assert status["counts"]["COMPLETED"] == 2 and status["cost_today_usd"] > 0.06
    one = json.loads(cli("status", "--json", tasks[0]["id"]).stdout)
    assert one["executions"][0]["cost_usd"] == pytest.approx(0.0600318)
    logs = cli("logs", tasks[0]["id"]).stdout
    assert (
        "I'll look at the project files first." in logs
        and "→ Bash: ls" in logs
        and "[result]" in logs
    )
    raw = cli("logs", "--raw", tasks[0]["id"]).stdout
    assert all(json.loads(line) for line in raw.splitlines())
    assert cli("logs", "NOPE").returncode == 4
    assert (home / "claudomator.db").exists() is isinstance(database, Path)


def test_run_exit_code_and_progress_lines(fake_claude: Path, work: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "f.yaml", task_yaml("bad", scenario("api_error", status=402)))
    out = cli("run", str(f))
    assert out.returncode == 1
    assert (
        "bad  RUNNING" in out.stderr
        and "bad  FAILED" in out.stderr
        and "api_error 402" in out.stderr
    )
    assert "FAILED" in out.stdout  # the summary table


def test_run_refuses_invalid_files_and_records_nothing(fake_claude: Path, tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", task_yaml("a"))
    bad = write(tmp_path / "bad.yaml", "name: x\n")
    out = cli("run", str(good), str(bad))
    assert out.returncode == 1 and "claude: missing required field" in out.stderr
    assert json.loads(cli("list", "--json").stdout) == []


def running_task() -> dict[str, Any] | None:
    tasks = json.loads(cli("list", "--json", "--state", "RUNNING").stdout)
    return tasks[0] if tasks else None


def test_ctrl_c_cancels_cleanly(fake_claude: Path, work: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    f = write(
        tmp_path / "f.yaml",
        batch_yaml(
            task_data("long", scenario("grandchild", pidfile=pidfile, kill_children=0, sleep_s=60)),
            task_data("later", "x", depends_on=["long"]),
        ),
    )
    proc = popen("run", str(f))
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # interrupted, as the README says
    states = {
        t["name"]: (t["state"], t["reason"]) for t in json.loads(cli("list", "--json").stdout)
    }
    assert states["long"][0] == "CANCELLED"
    assert states["later"][0] == "CANCELLED"
    assert (
        not psutil.pid_exists(int(pidfile.read_text()))
        or psutil.Process(int(pidfile.read_text())).status() == psutil.STATUS_ZOMBIE
    )


def test_cancel_from_another_process_ends_the_tree(
    fake_claude: Path, work: Path, tmp_path: Path
) -> None:
    f = write(tmp_path / "f.yaml", task_yaml("long", scenario("sleep", sleep_s=60)))
    proc = popen("run", "--json", str(f))
    running = wait_for(running_task)
    ex = json.loads(cli("status", "--json", running["id"]).stdout)["executions"][0]
    out = cli("cancel", running["id"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{running['id']} long: CANCELLED\n"  # waited for the final state
    stdout, _ = proc.communicate(timeout=30)
    (t,) = json.loads(stdout)["tasks"]
    assert t["state"] == "CANCELLED" and t["reason"] == "cancelled"
    assert ex["stdout_path"]
    assert cli("cancel", running["id"]).returncode == 1  # already final: refused, says why


def test_kill_9_then_next_run_marks_interrupted(
    fake_claude: Path, work: Path, tmp_path: Path
) -> None:
    f = write(tmp_path / "f.yaml", task_yaml("victim", scenario("sleep", sleep_s=60)))
    proc = popen("run", str(f))
    victim = wait_for(running_task)
    claude_pid = wait_for(lambda: json.loads(cli("status", "--json").stdout)["running"])
    assert claude_pid
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert any(c.is_running() for c in children)  # the claude process outlived its owner
    g = write(tmp_path / "g.yaml", task_yaml("next", scenario("tools", turns=1)))
    out = cli("run", str(g))
    assert out.returncode == 0, out.stderr
    after = json.loads(cli("status", "--json", victim["id"]).stdout)
    assert after["state"] == "FAILED" and after["reason"] == "interrupted"
    assert len(after["executions"]) == 1  # never started again
    wait_for(
        lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), 10
    )


def test_retry_by_hand(fake_claude: Path, work: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "f.yaml", task_yaml("once", scenario("api_error", status=402)))
    cli("run", str(f))
    (t,) = json.loads(cli("list", "--json").stdout)
    out = cli("retry", "--json", t["id"])
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "QUEUED"
    assert cli("retry", t["id"]).returncode == 1  # QUEUED cannot be retried


def test_status_shows_rounds_verify_and_permission_denials(
    fake_claude: Path, work: Path, tmp_path: Path
) -> None:
    f = write(tmp_path / "f.yaml", dump(checked_task("checked", tmp_path / "sessions")))
    out = cli("run", "--json", str(f))
    assert out.returncode == 0, out.stderr
    (task,) = json.loads(out.stdout)["tasks"]
    detail = json.loads(cli("status", "--json", task["id"]).stdout)
    first, second = sorted(detail["executions"], key=lambda ex: ex["id"])
    shown = cli("status", task["id"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    denied = "    permission denied: Bash(printf '# Notes\\n' > NOTES.md && cat NOTES.md)"
    at = lines.index(f"    log: {first['stdout_path']}")
    ms = r"\d+ms"
    assert lines[at + 1] == f"    verify: failed, log {first['verify']['log_path']}"
    assert re.fullmatch(rf"      true: exit 0, {ms}", lines[at + 2]), lines[at + 2]
    assert re.fullmatch(rf"      test -f FIXED: exit 1, {ms}", lines[at + 3]), lines[at + 3]
    assert lines[at + 4] == denied
    assert lines[at + 5].startswith(f"  execution {second['id']} #1 COMPLETED ")
    assert lines[at + 6] == f"    log: {second['stdout_path']}"
    assert lines[at + 7] == f"    round 1, resumed from {first['id']}"
    assert lines[at + 8] == f"    verify: passed, log {second['verify']['log_path']}"
    assert re.fullmatch(rf"      test -f FIXED: exit 0, {ms}", lines[at + 10]), lines[at + 10]
    assert lines[at + 11 :] == [denied]
    assert not any(line.startswith("    round 0") for line in lines)  # a first round says nothing


def test_checks_that_timed_out_or_were_stopped_and_denials_of_every_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ex = cast(Execution, {
        "round": 0, "resumed_from": "E0",
        "verify": {"passed": False, "log_path": "/x/verify.log", "commands": [
            {"command": "pytest -q", "exit_code": None, "duration_ms": 300000, "timed_out": True},
            {"command": "make", "exit_code": None, "duration_ms": 1500, "timed_out": False},
        ]},
        "permission_denials": [
            {"tool_name": "Write", "tool_input": {"file_path": "/x/NOTES.md", "content": "hi"}},
            {"tool_name": "WebFetch", "tool_input": {"url": "https://example.com"}},
            {"tool_name": "Task"},
            "not an object",
        ],
    })  # fmt: skip
    render.execution_checks(ex)
    assert capsys.readouterr().out.splitlines() == [
        "    resumed from E0",
        "    verify: failed, log /x/verify.log",
        "      pytest -q: timed out, 5m",
        "      make: stopped, 2s",
        "    permission denied: Write(/x/NOTES.md)",
        "    permission denied: WebFetch(https://example.com)",
        "    permission denied: Task",
    ]


def test_pause_resume_drain_show_in_status(home: Path) -> None:
    assert cli("init").returncode == 0
    assert cli("pause", "--reason", "maintenance").returncode == 0
    pool = json.loads(cli("status", "--json").stdout)["pool"]
    assert pool["paused"] is True and pool["reason"] == "maintenance"
    assert cli("resume").returncode == 0
    assert json.loads(cli("status", "--json").stdout)["pool"]["paused"] is False
    assert cli("drain").returncode == 0
    pool = json.loads(cli("status", "--json").stdout)["pool"]
    assert pool["paused"] is True and pool["draining"] is True and pool["reason"] == "draining"


def test_logs_follow_prints_while_running_and_ends_with_the_execution(
    fake_claude: Path, work: Path, tmp_path: Path
) -> None:
    f = write(tmp_path / "f.yaml", task_yaml("slowish", scenario("sleep", sleep_s=2)))
    proc = popen("run", str(f))
    running = wait_for(running_task)
    follow = popen("logs", "-f", running["id"])
    out, err = follow.communicate(timeout=30)
    proc.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert out.splitlines()[0].startswith("[init] model claude-sonnet-5, cli 2.1.197")
    assert "[result] success" in out  # written after `logs -f` started: it followed


def test_status_shows_the_tag_and_batch_budgets_with_their_spend(
    fake_claude: Path, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDOMATOR_BUDGET_TAGS", "nightly=5")
    text = (
        "budget_usd: 2.5\ntasks:\n"
        "  - {name: b1, tags: [nightly], retry: {max_cost_usd: 1.5}, claude: {instructions: x}}\n"
    )
    out = cli("run", "--json", str(write(tmp_path / "b.yaml", text)))
    assert out.returncode == 0, out.stderr
    (task,) = json.loads(out.stdout)["tasks"]
    shown = cli("status").stdout
    assert re.search(r"^tag nightly today: \$0\.\d+ of \$5\.0000$", shown, re.M), shown
    detail = cli("status", task["id"]).stdout
    assert re.search(r"^batch budget: +\$0\.\d+ of \$2\.5000$", detail, re.M), detail
    assert re.search(r"^retry stops: +at \$1\.5000 spent$", detail, re.M), detail
    api = json.loads(cli("status", "--json").stdout)["tag_budgets"]
    assert api[0]["tag"] == "nightly" and api[0]["budget_usd"] == 5.0 and api[0]["spent_usd"] > 0
