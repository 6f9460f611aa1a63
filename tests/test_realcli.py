"""claudomator running the REAL Claude Code CLI (2.1.197) against a local mock of the Messages API:
real CLI behaviour, no network beyond 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from claudomator.command import EXECUTION_ENV
from claudomator.records import Execution, TaskDetail
from claudomator.run import Run
from claudomator.service import Claudomator
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.fakes import real_claude
from tests.fakes.mock_api import MockAnthropic
from tests.needs import needs
from tests.services import make_service

REAL = real_claude()
pytestmark = [
    pytest.mark.realcli,
    needs(REAL, "the real claude CLI is not installed and npm cannot install it (see README)"),
]


@pytest.fixture
def mock(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MockAnthropic]:
    scenario, params = request.param
    # CI=true (set by CI itself) makes the real CLI exit on SIGINT without its final result
    # line: the environment of these tests is a user's, not a CI job's
    monkeypatch.delenv("CI", raising=False)
    with MockAnthropic(scenario, **params) as api:
        home = tmp_path / "claude-home"
        home.mkdir()
        for key, value in api.env(home=home).items():  # claudomator's own environment, inherited
            monkeypatch.setenv(key, value)
        yield api


@pytest.fixture
def service(home: Path, tmp_path: Path) -> Iterator[Claudomator]:
    work = tmp_path / "work"
    work.mkdir()
    flags = {
        "claude.binary": REAL,
        "claude.working_dir": str(work),
        "runner.interrupt_grace": "15s",  # a loaded machine: the CLI may take a while to report
        "runner.terminate_grace": "2s",
    }
    with make_service(flags=flags) as svc:
        # a rate limit fails at once here instead of waiting for its reset
        svc.lifecycle.max_requeues = 0
        yield svc


def spec(**fields: Any) -> TaskSpec:
    claude = {
        "instructions": "Run echo hi with Bash, then say done.",
        "model": "sonnet",
        **fields.pop("claude", {}),
    }
    return TaskSpec.model_validate({"name": "real", "claude": claude, **fields})


def run(service: Claudomator, task: TaskSpec, during: Any = None) -> TaskDetail:
    (task_id,) = service.submit(
        ParsedFile("t.yaml", [task], False, []), source="test", dispatcher=service.identity
    )

    async def go() -> None:
        job = asyncio.create_task(Run(service, [task_id]).until_final())
        if during is not None:
            await during(task_id)
        await job

    asyncio.run(asyncio.wait_for(go(), 90))
    return service.task(task_id)


def result_line(execution: Execution) -> dict[str, Any]:
    lines: list[dict[str, Any]] = [
        json.loads(line)
        for line in Path(execution["stdout_path"]).read_text().splitlines()
        if line.startswith("{")
    ]
    return [m for m in lines if m.get("type") == "result"][-1]


def leftovers(execution_id: str) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.environ().get(EXECUTION_ENV) == execution_id
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


@pytest.mark.parametrize("mock", [("tools", {})], indirect=True)
def test_tool_run_completes_with_the_clis_own_cost(
    service: Claudomator, mock: MockAnthropic
) -> None:
    task = run(service, spec(claude={"permission_mode": "acceptEdits", "allowed_tools": ["Bash"]}))
    assert task["state"] == "COMPLETED", task["reason"]
    (ex,) = task["executions"]
    final = result_line(ex)
    assert final["subtype"] == "success" and final["total_cost_usd"] > 0
    assert ex["cost_usd"] == final["total_cost_usd"]
    assert ex["cli_version"] == "2.1.197" and ex["num_turns"] == final["num_turns"]
    assert ex["tokens"]["output"] == final["usage"]["output_tokens"]
    assert len(mock.main_requests) == 2  # the tool call, then the answer after its result
    assert "hi" in json.dumps(mock.main_requests[1])  # the Bash tool really ran


@pytest.mark.parametrize("mock", [("budget", {})], indirect=True)
def test_budget_overrun_is_budget_exceeded(service: Claudomator, mock: MockAnthropic) -> None:
    task = run(
        service,
        spec(
            claude={
                "max_budget_usd": 0.01,
                "permission_mode": "acceptEdits",
                "allowed_tools": ["Bash"],
            }
        ),
    )
    assert task["state"] == "BUDGET_EXCEEDED", task["reason"]
    assert (
        task["executions"][0]["cost_usd"] > 0.01
    )  # the CLI overshoots by one call; recorded as reported


@pytest.mark.parametrize("mock", [("max_turns", {})], indirect=True)
def test_max_turns(service: Claudomator, mock: MockAnthropic) -> None:
    task = run(
        service,
        spec(claude={"max_turns": 1, "permission_mode": "acceptEdits", "allowed_tools": ["Bash"]}),
    )
    assert task["state"] == "FAILED" and "error_max_turns" in task["reason"]


@pytest.mark.parametrize(
    ("mock", "status"),
    [
        (("http_error", {"status": 429}), 429),
        (("http_error", {"status": 529}), 529),
    ],
    indirect=["mock"],
)
def test_http_errors_fail_with_the_status(
    service: Claudomator, mock: MockAnthropic, status: int
) -> None:
    task = run(service, spec())
    assert task["state"] == "FAILED"
    assert f"api_error {status}" in task["reason"]
    assert task["executions"][0]["api_error_status"] == status


@pytest.mark.parametrize("mock", [("http_error", {"status": 401})], indirect=True)
def test_a_401_pauses_the_pool_and_requeues_the_task(
    service: Claudomator, mock: MockAnthropic
) -> None:
    task = run(service, spec())  # `run` stops waiting: nothing starts until `resume`
    assert task["state"] == "QUEUED" and task["attempts"] == 0 and task["requeues"] == 1
    assert "api_error 401" in task["reason"], task["reason"]
    (ex,) = task["executions"]
    assert ex["state"] == "FAILED" and ex["api_error_status"] == 401
    gate = service.gate()
    assert not gate.open and gate.reason.startswith("authentication failed: api_error 401")
    assert "sk-test" not in gate.reason  # the key itself is never shown


@pytest.mark.parametrize("mock", [("slow", {"delay_s": 60})], indirect=True)
def test_timeout_mid_run_leaves_no_process(service: Claudomator, mock: MockAnthropic) -> None:
    # long enough for the CLI to start and send its request even on a loaded machine: SIGINT
    # while it waits on the API makes it report its end, as the real CLI does
    task = run(service, spec(timeout="8s"))
    assert task["state"] == "TIMED_OUT" and task["reason"] == "timeout"
    assert mock.main_requests
    ex = task["executions"][0]
    assert result_line(ex)["subtype"] == "error_during_execution"  # SIGINT: claude reported its end
    assert leftovers(ex["id"]) == []


@pytest.mark.parametrize("mock", [("slow", {"delay_s": 60})], indirect=True)
def test_cancel_mid_run_leaves_no_process(service: Claudomator, mock: MockAnthropic) -> None:
    async def cancel_when_requesting(task_id: str) -> None:
        for _ in range(300):
            await asyncio.sleep(0.05)
            if mock.main_requests:
                break
        service.cancel(task_id)

    task = run(service, spec(), during=cancel_when_requesting)
    assert task["state"] == "CANCELLED"
    assert leftovers(task["executions"][0]["id"]) == []


@pytest.mark.parametrize(
    "mock", [("tools", {"command": "echo written by claude > claude.txt"})], indirect=True
)
def test_a_file_written_in_a_worktree_is_committed_on_the_tasks_branch(
    service: Claudomator, mock: MockAnthropic, tmp_path: Path
) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "--quiet"], ["commit", "--quiet", "--allow-empty", "-m", "start"]):
        subprocess.run(
            ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
            cwd=repo, check=True,
        )  # fmt: skip
    claude = {"permission_mode": "acceptEdits", "allowed_tools": ["Bash"], "working_dir": str(repo)}
    task = run(service, spec(claude=claude, workspace="worktree"))
    assert task["state"] == "COMPLETED", task["reason"]
    workspace = task["executions"][0]["workspace"]
    assert workspace is not None and workspace["files_changed"] == 1
    shown = subprocess.run(
        ["git", "show", f"{workspace['branch']}:claude.txt"],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout == "written by claude\n"
    assert not (repo / "claude.txt").exists()  # the checkout itself is untouched


def main_prompts(mock: MockAnthropic) -> list[str]:
    return [json.dumps(body["messages"]) for body in mock.main_requests]


@pytest.mark.parametrize(
    "mock",
    [("script", {"steps": [{"scenario": "tools", "command": "echo first try"},
                           {"scenario": "tools", "command": "touch DONE"}]})],
    indirect=True,
)  # fmt: skip
def test_verify_resumes_the_real_session_until_the_check_passes(
    service: Claudomator, mock: MockAnthropic
) -> None:
    claude = {"permission_mode": "acceptEdits", "allowed_tools": ["Bash"]}
    task = run(service, spec(claude=claude, verify={"commands": "test -f DONE", "rounds": 1}))
    assert task["state"] == "COMPLETED", task["reason"]
    first, second = sorted(task["executions"], key=lambda ex: ex["id"])
    assert first["reason"] == "verify failed: test -f DONE exited 1"
    assert second["resumed_from"] == first["id"] and second["round"] == 1
    assert second["verify"] is not None and second["verify"]["passed"] is True
    assert second["cost_usd"] == result_line(second)["total_cost_usd"] > 0
    assert mock.steps_served[-1] == 1  # the resumed run answered the check's prompt
    # the resumed run carried the first run's conversation, and the check's failure
    resumed = main_prompts(mock)[-1]
    assert "echo first try" in resumed and "test -f DONE" in resumed


@pytest.mark.parametrize(
    "mock",
    [("script", {"steps": [{"scenario": "max_turns"}, {"scenario": "text"}]})],
    indirect=True,
)
def test_a_retry_resumes_a_session_the_real_cli_made(
    service: Claudomator, mock: MockAnthropic
) -> None:
    claude = {"permission_mode": "acceptEdits", "allowed_tools": ["Bash"], "max_turns": 1}
    task = run(service, spec(claude=claude, retry={"max_attempts": 2, "backoff": 0}))
    assert task["state"] == "COMPLETED", task["reason"]
    first, second = sorted(task["executions"], key=lambda ex: ex["id"])
    assert first["state"] == "FAILED" and "error_max_turns" in first["reason"]
    assert second["resumed_from"] == first["id"] and second["reason"] == ""
    assert second["cost_usd"] == result_line(second)["total_cost_usd"] > 0
    assert task["cost_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"])
    assert "Carry on" in main_prompts(mock)[-1]  # the session went on, told to carry on
