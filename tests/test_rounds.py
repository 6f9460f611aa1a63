"""Outcomes decided by checks, and sessions resumed: verify rounds, a retry's resume and its
fallback, money across rounds, permission denials — end to end against the fake claude."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claudomator.records import Execution, TaskDetail
from claudomator.run import Run
from claudomator.service import Claudomator
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.services import make_service
from tests.taskfiles import scenario


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    """Where the fake keeps its session transcripts, so that --resume finds them."""
    return tmp_path / "claude-config"


@pytest.fixture
def record(tmp_path: Path) -> Path:
    folder = tmp_path / "record"
    folder.mkdir()
    return folder


@pytest.fixture
def service(fake_claude: Path, home: Path, work: Path) -> Iterator[Claudomator]:
    flags = {"claude.working_dir": str(work), "runner.interrupt_grace": "2s"}
    with make_service(flags=flags) as svc:
        yield svc


def spec(instructions: str, env: dict[str, str] | None = None, **fields: Any) -> TaskSpec:
    claude = {"instructions": instructions, "permission_mode": "acceptEdits", "env": env or {},
              **fields.pop("claude", {})}  # fmt: skip
    return TaskSpec.model_validate({"name": "t", "claude": claude, **fields})


def run(service: Claudomator, task: TaskSpec) -> TaskDetail:
    (task_id,) = service.submit(
        ParsedFile("t.yaml", [task], False, []), source="test", dispatcher=service.identity
    )
    asyncio.run(asyncio.wait_for(Run(service, [task_id]).until_final(), 60))
    return service.task(task_id)


def in_order(task: TaskDetail) -> list[Execution]:
    return sorted(task["executions"], key=lambda ex: ex["id"])


def test_verify_passes_in_round_0(service: Claudomator, work: Path) -> None:
    task = run(service, spec(scenario("success", edit="DONE=ok"), verify="test -f DONE"))
    assert task["state"] == "COMPLETED" and task["reason"] == "", task["reason"]
    (ex,) = task["executions"]
    assert ex["round"] == 0 and ex["resumed_from"] is None
    verify = ex["verify"]
    assert verify is not None and verify["passed"] is True
    assert [c["command"] for c in verify["commands"]] == ["test -f DONE"]
    assert verify["commands"][0]["exit_code"] == 0
    assert Path(verify["log_path"]).read_text().startswith("$ test -f DONE\n")


def records(folder: Path) -> dict[str, dict[str, Any]]:
    """What the fake recorded of each session's first run, and of its last resumed run
    (`$FAKE_CLAUDE_RECORD`) under `<session>.resumed`."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
        data = json.loads(path.read_text())
        resumed = ".resumed." in path.name
        found[data["session_id"] + (".resumed" if resumed else "")] = data
    return found


def test_verify_fails_then_passes_when_claude_is_resumed(
    service: Claudomator, sessions: Path, record: Path
) -> None:
    env = {"FAKE_CLAUDE_RESUME_EDIT": "FIXED=ok", "CLAUDE_CONFIG_DIR": str(sessions),
           "FAKE_CLAUDE_RECORD": str(record)}  # fmt: skip
    task = run(service, spec("do it", env, verify={"commands": ["true", "test -f FIXED"]}))
    assert task["state"] == "COMPLETED" and task["attempts"] == 1, task["reason"]
    first, second = in_order(task)
    assert first["state"] == "FAILED" and first["reason"] == "verify failed: test -f FIXED exited 1"
    assert first["round"] == 0 and first["verify"] is not None
    assert first["workspace"] is not None and first["workspace"]["mode"] == "shared"
    assert [c["exit_code"] for c in first["verify"]["commands"]] == [0, 1]
    assert second["round"] == 1 and second["resumed_from"] == first["id"]
    assert second["state"] == "COMPLETED" and second["verify"]["passed"] is True  # type: ignore[index]
    assert second["session_id"] == first["session_id"]  # the same conversation, resumed
    assert second["cost_usd"] > 0 and task["cost_usd"] == pytest.approx(
        first["cost_usd"] + second["cost_usd"]
    )
    resumed = records(record)[first["session_id"] + ".resumed"]
    assert f"--resume={first['session_id']}" in resumed["argv"]
    assert "`test -f FIXED`" in resumed["prompt"] and "exited 1" in resumed["prompt"]
    assert Path(second["stdout_path"]).parent != Path(first["stdout_path"]).parent


def test_verify_that_never_passes_fails_after_its_rounds(
    service: Claudomator, sessions: Path
) -> None:
    task = run(service, spec("do it", {"CLAUDE_CONFIG_DIR": str(sessions)},
                             verify={"commands": "exit 3", "rounds": 2}))  # fmt: skip
    assert task["state"] == "FAILED" and task["reason"] == "verify failed: exit 3 exited 3"
    assert [ex["round"] for ex in in_order(task)] == [0, 1, 2]
    assert [ex["state"] for ex in in_order(task)] == ["FAILED"] * 3
    assert task["attempts"] == 1  # rounds are not retries


def test_money_is_a_hard_limit_across_rounds(
    service: Claudomator, sessions: Path, record: Path
) -> None:
    env = {"FAKE_CLAUDE_COST": "0.06", "CLAUDE_CONFIG_DIR": str(sessions),
           "FAKE_CLAUDE_RECORD": str(record)}  # fmt: skip
    task = run(service, spec("do it", env, claude={"max_budget_usd": 0.10},
                             verify={"commands": "false", "rounds": 5}))  # fmt: skip
    assert task["state"] == "BUDGET_EXCEEDED", task["reason"]
    assert "budget $0.10 reached across 2 rounds" in task["reason"]
    first, second = in_order(task)
    assert second["round"] == 1 and second["state"] == "BUDGET_EXCEEDED"
    argv = records(record)[first["session_id"] + ".resumed"]["argv"]
    assert argv[argv.index("--max-budget-usd") + 1] == "0.0400"  # what was left, not 0.10


def test_a_first_round_that_spends_it_all_is_not_verified(
    service: Claudomator, sessions: Path, work: Path
) -> None:
    env = {"FAKE_CLAUDE_COST": "0.05", "CLAUDE_CONFIG_DIR": str(sessions)}
    task = run(service, spec("do it", env, claude={"max_budget_usd": 0.05},
                             verify={"commands": "touch VERIFIED"}))  # fmt: skip
    assert task["state"] == "BUDGET_EXCEEDED", task["reason"]
    (ex,) = task["executions"]
    assert ex["verify"] is None and not (work / "VERIFIED").exists()


def test_verify_never_runs_when_claude_failed(service: Claudomator, work: Path) -> None:
    task = run(service, spec(scenario("error_during_execution"), verify="touch VERIFIED"))
    assert task["state"] == "FAILED" and "error_during_execution" in task["reason"]
    assert task["executions"][0]["verify"] is None and not (work / "VERIFIED").exists()


def test_a_retry_resumes_the_session_of_the_execution_before(
    service: Claudomator, sessions: Path, record: Path
) -> None:
    env = {"CLAUDE_CONFIG_DIR": str(sessions), "FAKE_CLAUDE_RECORD": str(record)}
    retry = {"max_attempts": 2, "backoff": 0}
    # the first run fails; the resumed one is told to carry on (no scenario line): a success
    task = run(service, spec(scenario("error_during_execution"), env, retry=retry))
    assert task["state"] == "COMPLETED", task["reason"]
    first, second = in_order(task)
    assert first["state"] == "FAILED" and second["resumed_from"] == first["id"]
    assert second["session_id"] == first["session_id"] and second["round"] == 0
    resumed = records(record)[first["session_id"] + ".resumed"]
    assert f"--resume={first['session_id']}" in resumed["argv"]
    assert "--session-id" not in " ".join(resumed["argv"])
    assert "Carry on" in resumed["prompt"]


def test_a_retry_falls_back_to_a_fresh_session_when_claude_has_none(
    service: Claudomator, record: Path
) -> None:
    # no CLAUDE_CONFIG_DIR: the fake kept no transcript, and answers a resume as the real CLI
    retry = {"max_attempts": 2, "backoff": 0}
    instructions = scenario("error_during_execution")
    task = run(service, spec(instructions, {"FAKE_CLAUDE_RECORD": str(record)}, retry=retry))
    first, second = in_order(task)
    lost = first["session_id"]
    assert second["reason"].endswith(f"fresh session: no conversation found for session {lost}")
    assert second["resumed_from"] is None and second["session_id"] != lost
    fresh = records(record)[second["session_id"]]
    assert f"--session-id={second['session_id']}" in fresh["argv"]
    assert fresh["prompt"].strip() == instructions.strip()  # the original instructions
    refused = Path(second["stderr_path"]).read_text()  # tried first, refused
    assert f"No conversation found with session ID: {lost}" in refused


def test_retry_resume_false_starts_over(service: Claudomator, sessions: Path, record: Path) -> None:
    env = {"CLAUDE_CONFIG_DIR": str(sessions), "FAKE_CLAUDE_RECORD": str(record)}
    retry = {"max_attempts": 2, "backoff": 0, "resume": False}
    task = run(service, spec(scenario("error_during_execution"), env, retry=retry))
    first, second = in_order(task)
    assert second["resumed_from"] is None and second["session_id"] != first["session_id"]
    assert not any("--resume" in " ".join(r["argv"]) for r in records(record).values())


@pytest.mark.parametrize("verify", [None, "true"])
def test_permission_denials_are_never_silent(service: Claudomator, verify: str | None) -> None:
    # the default permission mode: the fake's write is denied, as the real CLI does
    task = run(service, spec(scenario("success"), claude={"permission_mode": "default"},
                             verify=verify))  # fmt: skip
    assert task["state"] == "COMPLETED"
    assert task["reason"].startswith("permission denied: Bash(printf"), task["reason"]
    (ex,) = task["executions"]
    assert ex["reason"] == task["reason"] and ex["permission_denials"][0]["tool_name"] == "Bash"
    assert (ex["verify"] is None) is (verify is None)


def test_a_cancel_stops_the_verify_commands(service: Claudomator) -> None:
    (task_id,) = service.submit(
        ParsedFile("t.yaml", [spec("do it", verify="sleep 60")], False, []),
        source="test",
        dispatcher=service.identity,
    )

    async def go() -> None:
        job = asyncio.create_task(Run(service, [task_id]).until_final())
        for _ in range(400):  # until the check runs
            await asyncio.sleep(0.025)
            executions = service.task(task_id)["executions"]
            if executions and (Path(executions[0]["stdout_path"]).parent / "verify.log").exists():
                break
        service.cancel(task_id)
        await job

    asyncio.run(asyncio.wait_for(go(), 30))
    task = service.task(task_id)
    assert task["state"] == "CANCELLED"
    assert task["executions"][0]["verify"] is not None


def test_checks_run_in_the_tasks_worktree(service: Claudomator, tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "--quiet"], ["commit", "--quiet", "--allow-empty", "-m", "start"]):
        subprocess.run(
            ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
            cwd=repo, check=True,
        )  # fmt: skip
    task = run(service, spec(scenario("success", edit="DONE=ok"), workspace="worktree",
                             claude={"working_dir": str(repo)},
                             verify=["test -f DONE", "git rev-parse --show-toplevel"]))  # fmt: skip
    assert task["state"] == "COMPLETED", task["reason"]
    (ex,) = task["executions"]
    workspace, verify = ex["workspace"], ex["verify"]
    assert workspace is not None and verify is not None and verify["passed"]
    log = Path(verify["log_path"]).read_text()
    assert f"\n{workspace['path']}\n" in log  # git there sees the worktree, not the checkout
    assert not (repo / "DONE").exists()
    shown = subprocess.run(["git", "show", f"{workspace['branch']}:DONE"], cwd=repo,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert shown.stdout == "ok\n"  # the checked work, committed on the task's branch
