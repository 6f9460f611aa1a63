"""End to end: the real `claudomator serve --no-api` with a `[[sources]]` config and the fake
claude; a `git commit` in the checkout runs once, to COMPLETED, with its provenance."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.poll import wait_for
from tests.test_git import Repo, _git_isolated, repo, source_toml, task
from tests.test_serve import Server, server

__all__ = ["_git_isolated", "repo", "server"]  # fixtures, in force here too


def status(server: Server, task_id: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "status", task_id, "--json"],
        env=server.env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def test_a_commit_runs_once_to_completed_with_its_provenance(server: Server, repo: Repo) -> None:
    server.home.mkdir(parents=True, exist_ok=True)
    (server.home / "config.toml").write_text(source_toml(repo.path, subdir="tasks"))
    server.start()
    wait_for(lambda: b"source.baseline" in server.log_path.read_bytes())
    repo.write("tasks/team/fix.yaml", task("fix")).write("tasks/bad.yaml", "name: [\n")
    sha = repo.commit("please fix")
    wait_for(lambda: [t["state"] for t in server.tasks()] == ["COMPLETED"])
    (t,) = server.tasks()
    shown = status(server, t["id"])
    assert shown["provenance"] == {
        "source": "team", "commit": sha, "author": "dev@example.com",
        "committed_at": shown["provenance"]["committed_at"],
        "path": "tasks/team/fix.yaml",
        "blob": subprocess.run(
            ["git", "rev-parse", f"{sha}:tasks/team/fix.yaml"], cwd=repo.path,
            capture_output=True, text=True, check=True,
        ).stdout.strip(),
    }  # fmt: skip
    wait_for(lambda: "@team/team/fix.yaml.result.json" in server.files()["done"])
    result = json.loads((server.home / "done/@team/team/fix.yaml.result.json").read_text())
    assert result["provenance"] == shown["provenance"]  # the result file says it too
    text = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "status", t["id"]],
        env=server.env, capture_output=True, text=True, timeout=30, check=True,
    ).stdout.splitlines()  # fmt: skip
    for key in ("commit", "author", "committed_at", "blob"):
        assert f"{key + ':':<14}{shown['provenance'][key]}" in text, text
    files = server.files()
    assert files["done"] == ["@team/team/fix.yaml", "@team/team/fix.yaml.result.json"]
    assert files["rejected"] == ["@team/bad.yaml", "@team/bad.yaml.error"]
    (record,) = [json.loads(p.read_text()) for p in server.record.glob("*.json")]
    # working_dir defaults to the checkout; a source's task runs in a worktree of its own,
    # on a branch from the commit that asked for it
    assert record["cwd"] == str((server.home / "workspaces" / t["id"]).resolve())
    workspace = shown["executions"][-1]["workspace"]
    assert workspace["mode"] == "worktree" and workspace["base"] == sha
    assert workspace["repo"] == str(repo.path.resolve())
    assert workspace["branch"].startswith("claudomator/fix-")
    assert not (server.home / "workspaces" / t["id"]).exists()  # removed once final
    out = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "sources"],
        env=server.env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert sha[:12] in out.stdout
    assert server.stop() == 0
    server.start()  # a restart runs nothing again, and new commits as ever
    repo.write("tasks/next.yaml", task("next")).commit()
    wait_for(lambda: sorted(t["state"] for t in server.tasks()) == ["COMPLETED", "COMPLETED"])
    assert len(list(server.record.glob("*.json"))) == 2
    assert server.stop() == 0
