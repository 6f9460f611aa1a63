"""The runner: argv, environment, outcomes of every ending, timeouts and cancels ending whole
process trees — against the fake claude, as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from claudomator.command import EXECUTION_ENV, Invocation, build_argv, build_env
from claudomator.config import Config, load_config
from claudomator.records import Event, TaskDetail
from claudomator.run import Run
from claudomator.runner import Runner
from claudomator.service import Claudomator
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.services import make_service
from tests.taskfiles import scenario


def spec(**fields: Any) -> TaskSpec:
    claude = {"instructions": "do it", **fields.pop("claude", {})}
    return TaskSpec.model_validate({"name": "t", "claude": claude, **fields})


CONFIG = Config(data_dir=load_config(home=Path("/nonexistent"), env={}).data_dir)


@pytest.mark.parametrize(
    ("claude", "expected_tail"),
    [
        ({}, []),
        ({"max_budget_usd": 1.5}, ["--max-budget-usd", "1.5000"]),
        ({"allowed_tools": ["Bash(git *)", "Edit"]}, ["--allowedTools=Bash(git *),Edit"]),
        ({"disallowed_tools": ["WebFetch"]}, ["--disallowedTools=WebFetch"]),
        ({"max_turns": 7}, ["--max-turns", "7"]),
        ({"append_system_prompt": "-commit nothing"}, ["--append-system-prompt=-commit nothing"]),
        ({"add_dirs": ["/a", "/b c"]}, ["--add-dir=/a", "--add-dir=/b c"]),
        ({"fallback_model": "haiku"}, ["--fallback-model=haiku"]),
    ],
)
def test_build_argv(claude: dict[str, Any], expected_tail: list[str]) -> None:
    task = spec(claude=claude)
    argv = build_argv(task, CONFIG, "/bin/claude", Invocation.fresh(task, "SID"))
    head = ["/bin/claude", "-p", "--output-format", "stream-json", "--verbose", "--model", "sonnet",
            "--permission-mode", "default", "--session-id=SID"]  # fmt: skip
    assert argv == head + expected_tail
    assert "do it" not in argv  # the instructions go on stdin


def test_build_argv_model_and_permission_mode() -> None:
    task = spec(claude={"model": "opus", "permission_mode": "plan"})
    argv = build_argv(task, CONFIG, "c", Invocation.fresh(task))
    assert argv[5:9] == ["--model", "opus", "--permission-mode", "plan"]


@pytest.mark.parametrize(
    ("asked", "expected_tail"),
    [
        (Invocation("go on", "S1", resume=True), ["--resume=S1"]),
        (Invocation("go on", "S1", resume=True, budget_usd=0.25), ["--resume=S1", "--max-budget-usd", "0.2500"]),
        (Invocation("again", "S2", budget_usd=None), ["--session-id=S2"]),
        (Invocation("left", "S3", budget_usd=0.123456), ["--session-id=S3", "--max-budget-usd", "0.1234"]),
    ],
)  # fmt: skip
def test_build_argv_resume_and_budget_left(asked: Invocation, expected_tail: list[str]) -> None:
    # a resume names its session by the equals form (the value is optional), never with
    # --session-id; the budget is what the invocation may spend, not the task's whole limit
    argv = build_argv(spec(claude={"max_budget_usd": 5.0}), CONFIG, "c", asked)
    assert argv[9:] == expected_tail


def test_build_env_inherits_strips_claudecode_and_task_wins() -> None:
    base = {"PATH": "/bin", "HOME": "/h", "ANTHROPIC_API_KEY": "k", "CLAUDECODE": "1", "X": "ours"}
    env = build_env(spec(claude={"env": {"X": "task", "Y": "2"}}), "E1", base)
    assert env == {"PATH": "/bin", "HOME": "/h", "ANTHROPIC_API_KEY": "k", "X": "task", "Y": "2",
                   EXECUTION_ENV: "E1"}  # fmt: skip


# -- executions against the fake claude ---------------------------------------------------------


@pytest.fixture
def service(fake_claude: Path, home: Path, tmp_path: Path) -> Iterator[Claudomator]:
    work = tmp_path / "work"
    work.mkdir()
    flags = {
        "claude.working_dir": str(work),
        "runner.interrupt_grace": "2s",
        "runner.terminate_grace": "1s",
    }
    with make_service(flags=flags) as svc:
        yield svc


def run(service: Claudomator, *specs: TaskSpec) -> list[TaskDetail]:
    ids = service.submit(
        ParsedFile("t.yaml", list(specs), len(specs) > 1, []),
        source="test",
        dispatcher=service.identity,
    )
    asyncio.run(asyncio.wait_for(Run(service, ids).until_final(), 60))
    return [service.task(i) for i in ids]


def test_success_records_cost_tokens_session_and_logs(service: Claudomator) -> None:
    (task,) = run(
        service,
        spec(claude={"instructions": scenario("success"), "permission_mode": "acceptEdits"}),
    )
    assert task["state"] == "COMPLETED" and task["reason"] == ""
    (ex,) = task["executions"]
    assert ex["cost_usd"] == pytest.approx(0.0600318) and task["cost_usd"] == pytest.approx(
        0.0600318
    )
    assert (
        ex["num_turns"] == 3 and ex["cli_version"] == "2.1.197" and ex["model"] == "claude-sonnet-5"
    )
    assert ex["tokens"]["output"] > 0 and ex["tokens"]["cache_read"] > 0
    assert ex["session_id"] and ex["result"]
    stdout = Path(ex["stdout_path"]).read_bytes()
    assert stdout.count(b"\n") >= 8 and b'"type":"result"' in stdout
    assert oct(Path(ex["stdout_path"]).stat().st_mode & 0o777) == "0o600"
    assert ex["owner"]["pid"] == os.getpid()


@pytest.mark.parametrize(
    ("instructions", "claude", "state", "reason"),
    [
        (scenario("error_max_turns"), {"max_turns": 2}, "FAILED", "error_max_turns"),
        (
            scenario("error_max_budget_usd"),
            {"max_budget_usd": 0.05},
            "BUDGET_EXCEEDED",
            "budget $0.05",
        ),
        (scenario("success", cost=2.5), {"max_budget_usd": 1.0}, "BUDGET_EXCEEDED", "budget $1.00"),
        (scenario("error_during_execution"), {}, "FAILED", "error_during_execution"),
        (scenario("api_error", status=402), {}, "FAILED", "api_error 402"),
        (scenario("api_error", status=402), {}, "FAILED", "api_error 402"),
        (scenario("api_error", status="null"), {}, "FAILED", "unreachable"),
        (scenario("no_result", message="boom: it broke"), {}, "FAILED", "boom: it broke"),
        (
            scenario("usage_error", message="error: unknown option '--x'"),
            {},
            "FAILED",
            "unknown option",
        ),
        (scenario("garbage"), {"permission_mode": "acceptEdits"}, "COMPLETED", ""),
        (scenario("huge_line", mb=8), {}, "COMPLETED", ""),
    ],
)
def test_endings(
    service: Claudomator, instructions: str, claude: dict[str, Any], state: str, reason: str
) -> None:
    (task,) = run(service, spec(claude={"instructions": instructions, **claude}))
    assert task["state"] == state, task["reason"]
    assert reason in task["reason"]
    assert task["executions"][0]["state"] == state


def test_rate_limit_requeues_without_an_attempt_then_fails_when_capped(
    service: Claudomator,
) -> None:
    service.lifecycle.max_requeues = 0
    (task,) = run(service, spec(claude={"instructions": scenario("api_error", status=429)}))
    assert task["state"] == "FAILED" and "429" in task["reason"] and task["attempts"] == 1


def test_rate_limit_pauses_the_pool_and_requeues(service: Claudomator) -> None:
    resets = int(time.time()) + 3600
    ids = service.submit(
        ParsedFile(
            "t.yaml",
            [spec(claude={"instructions": scenario("rate_limit", resets_at=resets)})],
            False,
            [],
        ),
        source="test",
        dispatcher=service.identity,
    )

    async def go() -> None:
        run = Run(service, ids)
        job = asyncio.create_task(run.until_final())
        for _ in range(200):
            await asyncio.sleep(0.05)
            if service.task(ids[0])["state"] == "QUEUED" and service.task(ids[0])["executions"]:
                break
        await run.interrupt("interrupted")
        await job

    asyncio.run(asyncio.wait_for(go(), 30))
    task = service.task(ids[0])
    assert (
        task["executions"][0]["state"] == "FAILED"
        and task["executions"][0]["api_error_status"] == 429
    )
    assert task["attempts"] == 0 and task["requeues"] == 1
    pool = service.store.pool_state()
    assert pool["rate_limited_until"] == resets
    gate = service.gate()
    assert not gate.open and gate.until == resets and "rate limited" in gate.reason


def test_retry_policy_runs_again_after_backoff(service: Claudomator) -> None:
    (task,) = run(
        service,
        spec(
            claude={"instructions": scenario("api_error", status=500)},
            retry={"max_attempts": 2, "backoff": "100ms"},
        ),
    )
    assert task["state"] == "FAILED" and task["attempts"] == 2
    assert [e["state"] for e in task["executions"]] == ["FAILED", "FAILED"]


def test_missing_binary_and_working_dir_fail_cleanly(service: Claudomator, tmp_path: Path) -> None:
    (task,) = run(service, spec(claude={"working_dir": str(tmp_path / "nope")}))
    assert task["state"] == "FAILED" and "does not exist" in task["reason"]
    object.__setattr__(service.runner.config, "claude_binary", str(tmp_path / "no-claude"))
    (task,) = run(service, spec())
    assert task["state"] == "FAILED" and "not found" in task["reason"]


def test_depends_on_order_and_cancel_on_failure(service: Claudomator) -> None:
    tasks = run(
        service,
        TaskSpec.model_validate(
            {"name": "a", "claude": {"instructions": scenario("tools", turns=1)}}
        ),
        TaskSpec.model_validate(
            {
                "name": "b",
                "depends_on": ["a"],
                "claude": {"instructions": scenario("api_error", status=402)},
            }
        ),
        TaskSpec.model_validate(
            {"name": "c", "depends_on": ["b"], "claude": {"instructions": "x"}}
        ),
        TaskSpec.model_validate(
            {"name": "d", "depends_on": ["c"], "claude": {"instructions": "x"}}
        ),
    )
    assert [t["state"] for t in tasks] == ["COMPLETED", "FAILED", "CANCELLED", "CANCELLED"]
    assert (
        tasks[2]["reason"] == "dependency b FAILED"
        and tasks[3]["reason"] == "dependency c CANCELLED"
    )
    a_end = tasks[0]["executions"][0]["finished_at"]
    b_start = tasks[1]["executions"][0]["started_at"]
    assert a_end is not None and b_start is not None and b_start >= a_end


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_timeout_interrupts_and_keeps_the_cost(service: Claudomator) -> None:
    (task,) = run(
        service,
        spec(timeout="1s", claude={"instructions": scenario("sleep", sleep_s=30, cost=0.02)}),
    )
    assert task["state"] == "TIMED_OUT" and task["reason"] == "timeout"
    ex = task["executions"][0]
    assert ex["cost_usd"] == pytest.approx(0.02)
    assert b"aborted_streaming" in Path(ex["stdout_path"]).read_bytes()


def test_timeout_escalates_to_sigkill_of_the_whole_tree(
    service: Claudomator, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    (task,) = run(
        service,
        spec(
            timeout="1s",
            claude={
                "instructions": scenario("grandchild", pidfile=pidfile, kill_children=0, sleep_s=60)
            },
        ),
    )
    assert task["state"] == "TIMED_OUT"
    child = int(pidfile.read_text())
    assert not alive(child), "the detached grandchild survived"
    assert time.monotonic() - t0 < 15


def test_ignoring_sigint_and_sigterm_still_ends(service: Claudomator) -> None:
    t0 = time.monotonic()
    (task,) = run(
        service, spec(timeout="1s", claude={"instructions": scenario("ignore_sigterm", sleep_s=60)})
    )
    assert task["state"] == "TIMED_OUT"
    assert time.monotonic() - t0 < 10  # 1 s + 2 s SIGINT grace + 1 s SIGTERM grace + slack
    (ex,) = task["executions"]
    assert ex["exit_code"] == -9


def test_environment_passes_through_and_task_env_wins(
    service: Claudomator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setenv("MY_FLAG", "ours")
    (task,) = run(
        service,
        spec(claude={"instructions": scenario("echo_env", vars="ANTHROPIC_BASE_URL,CLAUDECODE,MY_FLAG,HOME"),
                     "env": {"MY_FLAG": "task"}}),
    )  # fmt: skip
    echoed = json.loads(task["executions"][0]["result"])
    assert echoed["env"] == {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CLAUDECODE": None,
                             "MY_FLAG": "task", "HOME": os.environ["HOME"]}  # fmt: skip
    assert echoed["cwd"] == str(service.config.claude_working_dir)


def test_secrets_never_reach_reasons_or_the_database(
    service: Claudomator, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-ant-very-secret-value"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("FAKE_CLAUDE_MESSAGE", f"bad key {secret}")  # claude prints it on stderr
    # as if claudomator had started with this environment
    service.lifecycle.rounds.runner = Runner(service.config)
    (task,) = run(
        service,
        spec(
            claude={"instructions": scenario("no_result"), "env": {"GH_TOKEN": "ghp_task_secret"}}
        ),
    )
    assert "***" in task["reason"] and secret not in task["reason"]
    assert task["spec"]["claude"]["env"] == {"GH_TOKEN": "***"}
    db = service.config.data_dir.database
    data = b"".join(p.read_bytes() for p in db.parent.glob("claudomator.db*"))
    assert secret.encode() not in data
    stderr_log = Path(task["executions"][0]["stderr_path"]).read_bytes()
    assert secret.encode() not in stderr_log


def test_daily_budget_stops_new_starts(fake_claude: Path, home: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    svc = make_service(
        flags={"claude.working_dir": str(work), "budget.daily_usd": 0.05, "max_concurrency": 1}
    )
    first = spec(claude={"instructions": scenario("success", cost=0.06)})
    second = TaskSpec.model_validate({"name": "second", "claude": {"instructions": "x"}})
    ids = svc.submit(
        ParsedFile("t.yaml", [first, second], True, []), source="t", dispatcher=svc.identity
    )
    sub = svc.hub.subscribe()

    async def go() -> Event:
        run = Run(svc, ids)
        job = asyncio.create_task(run.until_final())
        while (event := await asyncio.wait_for(sub.get(), 20))["type"] != "pool.waiting":
            pass
        await run.interrupt("interrupted")
        await job
        return event

    event = asyncio.run(go())
    assert event["reason"] == "daily budget reached ($0.06 of $0.05)"
    assert [svc.task(i)["state"] for i in ids] == ["COMPLETED", "CANCELLED"]
    assert svc.task(ids[1])["executions"] == []
    svc.close()


def test_task_env_secrets_are_masked_in_what_claude_says(service: Claudomator) -> None:
    (task,) = run(
        service,
        spec(
            claude={
                "instructions": scenario("echo_env", vars="GH_TOKEN,PLAIN"),
                "env": {"GH_TOKEN": "ghp_task_secret_1", "PLAIN": "visible-value"},
            }
        ),
    )
    result = task["executions"][0]["result"]
    assert "ghp_task_secret_1" not in result and "***" in result and "visible-value" in result
    events = list(service.reader.events_after(0))
    assert all(e["execution_id"] for e in events if e["type"] in ("task.started", "task.finished"))
