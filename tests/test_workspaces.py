"""Workspaces end to end, with real git and the fake claude: worktree tasks side by side on one
repository, a chain on each other's branches, setup, the disk limit, shared tasks that never
overlap, and a kill -9 in the middle of a worktree execution."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from claudomator.inventory import Inventory
from claudomator.records import TaskDetail
from claudomator.run import Run
from claudomator.service import Claudomator
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.poll import wait_for
from tests.services import make_service
from tests.taskfiles import scenario, task_data, task_yaml
from tests.test_runner import run
from tests.test_serve import Server, serve_env


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    (path / "README").write_text("app\n")
    (path / "src").mkdir()
    (path / "src" / "main.py").write_text("print('hi')\n")
    git(path, "add", ".")
    git(path, "commit", "--quiet", "-m", "start")
    return path


@pytest.fixture
def service(fake_claude: Path, home: Path) -> Iterator[Claudomator]:
    with make_service(flags={"max_concurrency": 4}) as svc:
        yield svc


def spec(name: str, instructions: str, **fields: Any) -> TaskSpec:
    return TaskSpec.model_validate(task_data(name, instructions, **fields))


def workspace_of(t: TaskDetail, n: int = -1) -> dict[str, Any]:
    found = t["executions"][n]["workspace"]
    assert found is not None
    return dict(found)


def span(t: TaskDetail) -> tuple[datetime, datetime]:
    """When the task's first execution started and ended."""
    ex = t["executions"][0]
    assert ex["started_at"] is not None and ex["finished_at"] is not None
    return datetime.fromisoformat(ex["started_at"]), datetime.fromisoformat(ex["finished_at"])


def worktree(repo: Path, **more: Any) -> dict[str, Any]:
    return {"claude": {"working_dir": str(repo)}, "workspace": {"mode": "worktree", **more}}


def test_four_worktree_tasks_on_one_repository_run_side_by_side(
    service: Claudomator, repo: Path
) -> None:
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    specs = [
        spec(f"fix {i}", scenario("sleep", sleep_s=1, edit=f"file{i}.txt=change {i}"),
             **worktree(repo))
        for i in range(4)
    ]  # fmt: skip
    tasks = run(service, *specs)
    assert [t["state"] for t in tasks] == ["COMPLETED"] * 4
    branches = set()
    for i, t in enumerate(tasks):
        (ex,) = t["executions"]
        ws = workspace_of(t)
        assert ws["mode"] == "worktree" and ws["base"] == head
        assert (ws["commits"], ws["files_changed"], ws["insertions"]) == (1, 1, 1)
        branch = ws["branch"]
        branches.add(branch)
        assert branch.startswith(f"claudomator/fix-{i}-")
        message = git(repo, "log", "-1", "--format=%B", branch)
        assert message.startswith(f"claudomator: fix {i}\n")
        assert f"Claudomator-Task: {t['id']}" in message
        assert f"Claudomator-Execution: {ex['id']}" in message
        assert git(repo, "show", f"{branch}:file{i}.txt") == f"change {i}"
        assert f"+change {i}" in Path(ws["diff_path"]).read_text()
        assert not Path(ws["path"]).exists()  # removed once final; the branch stays
    assert len(branches) == 4
    # the person's checkout: HEAD, index and files untouched
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == status
    assert not list(repo.glob("file*.txt"))
    # the four ran at once
    spans = [span(t) for t in tasks]
    assert max(s for s, _ in spans) < min(f for _, f in spans)


def test_a_dependent_starts_from_its_dependencys_branch(service: Claudomator, repo: Path) -> None:
    build = spec("build", scenario("tools", edit="built.txt=built"), **worktree(repo))
    test = spec("test", scenario("tools", edit="tested.txt=tested"), depends_on=["build"],
                **worktree(repo))  # fmt: skip
    first, second = run(service, build, test)
    assert (first["state"], second["state"]) == ("COMPLETED", "COMPLETED")
    built, tested = workspace_of(first), workspace_of(second)
    assert tested["base"] == built["head"]
    assert git(repo, "show", f"{tested['branch']}:built.txt") == "built"
    assert git(repo, "show", f"{tested['branch']}:tested.txt") == "tested"
    assert tested["files_changed"] == 1  # its own work only: base..head


def test_a_failing_setup_fails_the_execution(service: Claudomator, repo: Path) -> None:
    (t,) = run(service, spec("s", scenario("tools"), **worktree(repo, setup="echo broken; exit 3")))
    assert t["state"] == "FAILED" and "setup" in t["reason"] and "3" in t["reason"]
    (ex,) = t["executions"]
    log = Path(ex["stdout_path"]).parent / "setup.log"
    assert "broken" in log.read_text()
    assert ex["num_turns"] in (0, None)  # claude never ran


def test_a_good_setup_runs_in_the_worktree_before_claude(service: Claudomator, repo: Path) -> None:
    (t,) = run(service, spec("s", scenario("tools"), **worktree(repo, setup="echo ok > made.txt")))
    assert t["state"] == "COMPLETED"
    ws = workspace_of(t)
    assert git(repo, "show", f"{ws['branch']}:made.txt") == "ok"  # setup's files are its work


def test_worktree_outside_a_repository_is_rejected_at_intake(
    service: Claudomator, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(Exception, match=r"worktree needs a git repository") as info:
        service.submit(
            ParsedFile("t.yaml", [spec("x", "do", **worktree(plain))], False, []), source="test"
        )
    assert "t.yaml" in str(info.value) and "workspace" in str(info.value)


def test_shared_tasks_on_one_folder_never_overlap_and_another_folder_runs_beside(
    service: Claudomator, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    specs = [
        spec("a1", scenario("sleep", sleep_s=1), claude={"working_dir": str(a)}),
        spec("a2", scenario("sleep", sleep_s=1), claude={"working_dir": str(a / "sub")}),
        spec("b1", scenario("sleep", sleep_s=1), claude={"working_dir": str(b)}),
    ]
    a1, a2, b1 = run(service, *specs)
    assert [t["state"] for t in (a1, a2, b1)] == ["COMPLETED"] * 3
    first, second = sorted([span(a1), span(a2)])
    assert first[1] <= second[0]  # one after the other
    assert span(b1)[0] < first[1]  # b ran beside the first one


def test_new_worktrees_wait_while_the_disk_limit_is_reached(
    fake_claude: Path, home: Path, repo: Path
) -> None:
    def submit(service: Claudomator, one: TaskSpec) -> str:
        parsed = ParsedFile("t.yaml", [one], False, [])
        return service.submit(parsed, source="test", dispatcher=service.identity)[0]

    async def go(service: Claudomator) -> None:
        kept = submit(service, spec("kept", scenario("tools"), **worktree(repo, keep=True)))
        await asyncio.wait_for(Run(service, [kept]).until_final(), 60)
        path = Path(workspace_of(service.task(kept))["path"])
        assert path.is_dir()  # noqa: ASYNC240 (keep: true)
        waiting = submit(service, spec("next", scenario("tools"), **worktree(repo)))
        # a shared task is not held by the disk limit
        shared = submit(
            service, spec("shared", scenario("tools"), claude={"working_dir": str(repo)})
        )
        job = asyncio.create_task(Run(service, [waiting, shared]).until_final())
        try:
            for _ in range(100):
                await asyncio.sleep(0.1)
                if service.task(shared)["state"] == "COMPLETED":
                    break
            seen = service.task(waiting)
            # pruning the final task's worktree and branch makes room
            pruned = await Inventory(service.workspaces).prune()
            await asyncio.wait_for(job, 60)
        finally:
            job.cancel()
        assert service.task(shared)["state"] == "COMPLETED"
        assert seen["state"] == "QUEUED", seen
        assert seen["reason"].startswith("waiting for disk: worktrees use"), seen
        assert [p.task_id for p in pruned] == [kept] and not path.exists()  # noqa: ASYNC240
        done = service.task(waiting)
        assert (done["state"], done["reason"]) == ("COMPLETED", "")

    with make_service(flags={"workspace.max_disk": "1"}) as service:
        asyncio.run(go(service))


def test_kill_9_mid_execution_then_restart_keeps_the_branch_and_its_work(
    home: Path, fake_claude: Path, tmp_path: Path, repo: Path
) -> None:
    server = Server(home, *serve_env(tmp_path))
    try:
        server.start()
        server.drop("victim.yaml", task_yaml(
            "victim", scenario("sleep", sleep_s=60, edit="half.txt=half done"),
            **worktree(repo),
        ))  # fmt: skip
        wait_for(lambda: server.files()["running"])
        (t,) = server.tasks()
        folder = home / "workspaces" / t["id"]
        wait_for(lambda: (folder / "half.txt").exists())
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        server.start()
        wait_for(lambda: [x["state"] for x in server.tasks()] == ["FAILED"], 30)
        wait_for(lambda: not folder.exists(), 30)  # pruned at start
        assert server.stop() == 0
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGKILL)
    assert server.tasks()[0]["reason"] == "interrupted"
    (branch,) = git(repo, "branch", "--list", "claudomator/*", "--format=%(refname:short)").split()
    assert git(repo, "show", f"{branch}:half.txt") == "half done"  # what claude left, committed
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claudomator.cli", *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


def test_the_workspaces_command_lists_and_prunes(service: Claudomator, repo: Path) -> None:
    (kept,) = run(service, spec("kept one", scenario("tools", edit="k.txt=k"),
                                **worktree(repo, keep=True)))  # fmt: skip
    ws = workspace_of(kept)
    (entry,) = json.loads(cli("workspaces", "--json").stdout)
    assert (entry["task_id"], entry["state"], entry["branch"]) == (
        kept["id"],
        "COMPLETED",
        ws["branch"],
    )
    assert entry["path"] == ws["path"] and entry["size_bytes"] > 0 and entry["age_s"] >= 0
    assert ws["branch"] in cli("workspaces").stdout
    assert f"would remove {ws['branch']}" in cli("workspaces", "prune", "--dry-run").stdout
    assert cli("workspaces", "prune", "--merged").stdout.strip() == "nothing to prune"  # not merged
    assert "nothing to prune" in cli("workspaces", "prune", "--older-than", "7d").stdout
    assert f"removed {ws['branch']}" in cli("workspaces", "prune").stdout
    assert not Path(ws["path"]).exists()
    assert git(repo, "branch", "--list", ws["branch"]) == ""
    assert json.loads(cli("workspaces", "--json").stdout) == []
