"""The spool mirror and recovery: folders follow every state change (retries too), result files
stand beside files in done/ only, and a crash anywhere never makes a known file a new one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from claudomator.intake import Intake
from claudomator.mirror import branch_and_head, locate, side_file_left, stale
from claudomator.publisher import moves_file
from claudomator.records import Event, Execution, Task
from claudomator.state import State
from claudomator.workspace import WorkspaceRecord
from tests.needs import needs
from tests.services import make_service, run_pool
from tests.taskfiles import batch_yaml, checked_task, dump, task_data, task_yaml
from tests.test_api_diff import BRANCH, changed_branch, diff_of, end_with_workspace

BATCH = batch_yaml(task_data("a", "x"), task_data("b", "y", depends_on=["a"]))


@pytest.mark.parametrize(
    ("recorded", "found", "place", "extras"),
    [
        ("queued/a.yaml", ["queued/a.yaml"], "queued/a.yaml", []),
        ("queued/a.yaml", [], None, []),  # a person deleted it
        # linked into running/, not yet unlinked from queued/: the record wins
        ("queued/a.yaml", ["queued/a.yaml", "running/a.yaml"], "queued/a.yaml", ["running/a.yaml"]),
        # moved, not yet recorded: where it is now
        ("queued/a.yaml", ["running/a.1.yaml"], "running/a.1.yaml", []),
        ("running/a.yaml", ["done/a.yaml"], "done/a.yaml", []),
        # (never made by one move) the place furthest along wins
        ("queued/a.yaml", ["done/a.yaml", "running/a.yaml"], "done/a.yaml", ["running/a.yaml"]),
    ],
)
def test_locate(recorded: str, found: list[str], place: str | None, extras: list[str]) -> None:
    assert locate(recorded, found) == (place, extras)


@pytest.mark.parametrize(
    ("exists", "file_at", "tasks_at", "expected"),
    [(True, 10.0, 9.0, False), (True, 10.0, 10.0, False), (True, 10.0, 11.0, True),
     (False, 10.0, 9.0, True)],
)  # fmt: skip
def test_stale(exists: bool, file_at: float, tasks_at: float, expected: bool) -> None:
    assert stale(exists, file_at, tasks_at) is expected


@pytest.mark.parametrize(
    ("event", "moves"),
    [
        ({"type": "task.started", "file_id": "F"}, True),
        ({"type": "task.finished", "file_id": "F", "reason": ""}, True),
        ({"type": "task.queued", "file_id": "F", "reason": "retry by hand"}, True),
        ({"type": "task.queued", "file_id": "F"}, False),  # queued as it was created
        ({"type": "task.created", "file_id": "F"}, False),
        ({"type": "task.finished", "reason": ""}, False),  # not from a file
        ({"type": "execution.tool_call", "file_id": "F"}, False),
    ],
)
def test_moves_file(event: Event, moves: bool) -> None:
    assert moves_file(event) is moves


class Node:
    """A serve's service and intake in this process; `restart` is a crash and a new start."""

    def __init__(self) -> None:
        self.service = make_service()
        self.intake = Intake.of(self.service)
        self.root = self.service.config.data_dir.root

    def follow(self) -> Node:
        self.service.intake = self.intake
        return self

    def restart(self) -> Node:
        self.service.close()
        node = Node()
        node.service.recovery.run(node.intake)
        return node.follow()

    def drop(self, rel: str, text: str) -> None:
        path = self.root / "inbox" / rel
        tmp = path.with_name("." + path.name)
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.rename(tmp, path)
        self.intake.sweep()

    def tasks(self) -> list[Task]:
        return self.service.reader.list_tasks(limit=None)

    def files(self) -> dict[str, list[str]]:
        return {
            folder: sorted(str(p.relative_to(self.root / folder)) for p in (self.root / folder).rglob("*") if p.is_file())
            for folder in ("inbox", "queued", "running", "done", "rejected", ".staging")
        }  # fmt: skip


@pytest.fixture
def node(home: Path) -> Iterator[Node]:
    n = Node().follow()
    yield n
    n.service.close()


def interrupt(node: Node) -> str:
    """Start the first queued task as a process that then died (a kill -9); returns its id."""
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    (started,) = node.service.store.start(
        1, time.time(), node.service.config.data_dir.executions,
        owner_host=node.service.node.process.host, owner_pid=dead.pid, owner_started=1.0, owner_node="",
    )  # fmt: skip
    return str(started[1]["task_id"])


def test_a_file_moved_by_recovery_is_never_ingested_again(node: Node) -> None:
    node.drop("a.yaml", task_yaml("a", retry={"max_attempts": 2, "backoff": "1s"}))
    interrupt(node)  # the store says RUNNING, the crash came before the file left queued/
    assert node.files()["queued"] == ["a.yaml"]
    node = node.restart()
    (task,) = node.tasks()  # once, not twice
    assert (task["state"], task["reason"]) == ("QUEUED", "retry 2/2 after: interrupted")
    assert node.files()["running"] == ["a.yaml"] and node.files()["queued"] == []


@pytest.mark.parametrize("cut", ["linked", "unlinked"])
def test_a_move_cut_short_is_finished_not_ingested(node: Node, cut: str) -> None:
    node.drop("a.yaml", task_yaml("a"))
    (task,) = node.tasks()
    node.service.store.transition(str(task["id"]), State.CANCELLED, expect=[State.QUEUED])
    # the move to done/: a hard link, then the unlink, then the record; the crash came between
    os.link(node.root / "queued/a.yaml", node.root / "done/a.yaml")
    if cut == "unlinked":
        os.unlink(node.root / "queued/a.yaml")
    node = node.restart()
    assert len(node.tasks()) == 1
    files = node.files()
    assert files["queued"] == files["running"] == []
    assert files["done"] == ["a.yaml", "a.yaml.result.json"]


def test_a_dependent_left_waiting_by_a_crash_is_settled_at_start(node: Node) -> None:
    node.drop("batch.yaml", BATCH)
    a, b = sorted(node.tasks(), key=lambda t: str(t["name"]))
    # a's final state committed; the crash came before its dependents were settled
    node.service.store.transition(str(a["id"]), State.CANCELLED, expect=[State.QUEUED])
    node = node.restart()
    assert node.service.task(str(b["id"]))["state"] == "CANCELLED"
    assert node.service.task(str(b["id"]))["reason"] == "dependency a CANCELLED"
    assert node.files()["done"] == ["batch.yaml", "batch.yaml.result.json"]


def test_a_retried_file_leaves_done_and_comes_back_with_a_true_result(node: Node) -> None:
    node.drop("a.yaml", task_yaml("a"))
    (task,) = node.tasks()
    task_id = str(task["id"])
    node.service.cancel(task_id)
    assert node.files()["done"] == ["a.yaml", "a.yaml.result.json"]
    node.service.retry(task_id)  # runnable again: back in queued/ (it never started)
    assert node.files()["done"] == [] and node.files()["queued"] == ["a.yaml"]
    interrupt(node)
    node.service.recovery.end_orphans()  # FAILED interrupted: final again, after one execution
    assert node.files()["done"] == ["a.yaml", "a.yaml.result.json"]
    result = json.loads((node.root / "done/a.yaml.result.json").read_text())
    assert [(t["state"], len(t["executions"])) for t in result["tasks"]] == [("FAILED", 1)]
    node.service.retry(task_id)  # it has run: running/, as a file whose task started
    assert node.files()["done"] == [] and node.files()["running"] == ["a.yaml"]


def test_a_done_file_moved_back_to_the_inbox_takes_its_result_file_along(node: Node) -> None:
    node.drop("a.yaml", task_yaml("a"))
    node.service.cancel(str(node.tasks()[0]["id"]))
    os.rename(node.root / "done/a.yaml", node.root / "inbox/a.yaml")
    node.intake.deleted("done", ["a.yaml"])  # what the watcher says
    node.intake.sweep()
    assert node.files()["done"] == [] and node.files()["queued"] == ["a.yaml"]
    assert [t["state"] for t in node.tasks()] == ["QUEUED", "CANCELLED"]


def test_a_file_moved_back_unheard_of_loses_its_side_file_at_the_next_sweep(node: Node) -> None:
    node.drop("a.yaml", task_yaml("a"))
    node.drop("bad.yaml", "name: [\n")
    node.service.cancel(str(node.tasks()[0]["id"]))
    # the watcher missed both moves (a watch limit, a burst it dropped): no `deleted` is told
    os.rename(node.root / "done/a.yaml", node.root / "inbox/a.yaml")
    os.rename(node.root / "rejected/bad.yaml", node.root / "inbox/bad.yaml")
    node.intake.mirror.forget_gone()  # a step of every sweep
    node.intake.sweep()
    files = node.files()
    assert files["done"] == [] and files["queued"] == ["a.yaml"]
    assert files["rejected"] == ["bad.yaml", "bad.yaml.error"]  # rejected again, its own reason
    assert [t["state"] for t in node.tasks()] == ["QUEUED", "CANCELLED"]


def test_result_files_without_their_file_are_removed_at_start(node: Node) -> None:
    node.drop("a.yaml", task_yaml("a"))
    node.drop("bad.yaml", "name: [\n")
    node.service.cancel(str(node.tasks()[0]["id"]))
    # moved away while serve was down: nobody heard of it
    os.rename(node.root / "done/a.yaml", node.root.parent / "a.yaml")
    os.rename(node.root / "rejected/bad.yaml", node.root.parent / "bad.yaml")
    node = node.restart()
    assert node.files()["done"] == node.files()["rejected"] == []


def test_a_missing_result_file_is_written_at_start(node: Node) -> None:
    node.drop("a.yaml", task_yaml("a"))
    node.service.cancel(str(node.tasks()[0]["id"]))
    (node.root / "done/a.yaml.result.json").unlink()  # a crash before it was written
    node = node.restart()
    result = json.loads((node.root / "done/a.yaml.result.json").read_text())
    assert [t["state"] for t in result["tasks"]] == ["CANCELLED"]


def test_claimed_files_are_private(node: Node) -> None:
    node.drop("a.yaml", task_yaml("a"))
    node.drop("bad.yaml", "name: [\n")
    assert (node.root / "queued/a.yaml").stat().st_mode & 0o777 == 0o600
    assert (node.root / "rejected/bad.yaml").stat().st_mode & 0o777 == 0o600
    assert (node.root / "rejected/bad.yaml.error").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "suffix", "beside", "left"),
    [
        ("a.yaml.result.json", ".result.json", {"a.yaml"}, False),
        ("a.yaml.result.json", ".result.json", set(), True),  # its file was moved away
        (".a.yaml.result.json.123.tmp", ".result.json", {"a.yaml"}, True),  # a cut write
        ("a.yaml", ".result.json", set(), False),
        ("b.yaml.error", ".error", {"b.yaml"}, False),
        ("b.yaml.error", ".error", {"c.yaml"}, True),
        (".b.yaml.error.9.tmp", ".error", {"b.yaml"}, True),
        (".notes.tmp", ".error", set(), False),  # not ours
    ],
)
def test_side_file_left(name: str, suffix: str, beside: set[str], left: bool) -> None:
    assert side_file_left(name, suffix, beside) is left


def test_a_move_into_rejected_cut_short_is_finished_once(node: Node) -> None:
    node.drop("bad.yaml", "name: [\n")
    (row,) = node.service.store.files(["rejected"])
    placed = node.root / "rejected/bad.yaml"
    staged = node.root / ".staging" / f"{row['id']}-bad.yaml"
    os.link(placed, staged)  # as if the crash came between the link and the unlink
    (node.root / "rejected/bad.yaml.error").unlink()  # and before the reason was written
    node = node.restart()
    assert node.files()["rejected"] == ["bad.yaml", "bad.yaml.error"]
    assert node.files()[".staging"] == []


def executions_with(*workspaces: dict[str, Any] | None) -> list[Execution]:
    return [cast(Execution, {"id": f"E{i}", "workspace": w}) for i, w in enumerate(workspaces)]


WORKTREE = {"mode": "worktree", "path": "/w", "branch": "b/one", "head": "abc123"}
SHARED = {"mode": "shared", "path": "/w", "branch": None, "head": None}


@pytest.mark.parametrize(
    ("executions", "expected"),
    [
        (executions_with(), (None, None)),
        (executions_with(None), (None, None)),
        (executions_with(SHARED), (None, None)),
        (executions_with(WORKTREE), ("b/one", "abc123")),
        (executions_with(WORKTREE, {**WORKTREE, "head": "def456"}), ("b/one", "def456")),
        # the latest ended before its workspace was recorded: the one before it says
        (executions_with(WORKTREE, None), ("b/one", "abc123")),
        (executions_with(WORKTREE, SHARED), (None, None)),
        (executions_with({"mode": "worktree", "path": "/w"}), (None, None)),
    ],
)
def test_branch_and_head(
    executions: list[Execution], expected: tuple[str | None, str | None]
) -> None:
    assert branch_and_head(executions) == expected


@needs(shutil.which("git"), "git is not installed")
def test_the_result_file_says_each_tasks_branch_and_head(node: Node, tmp_path: Path) -> None:
    node.drop("batch.yaml", batch_yaml(task_data("a", "x"), task_data("b", "y")))
    executions = node.service.config.data_dir.executions
    records: list[WorkspaceRecord] = []

    def workspace(execution_id: str) -> WorkspaceRecord:
        records.append(changed_branch(tmp_path, diff_of(executions, execution_id)))
        return records[0]

    ended = []
    for made in (workspace, lambda execution_id: None):  # a worktree, then none recorded
        ended.append(done := end_with_workspace(node.service.store, executions, made))
        node.service.publish(done.events)
    assert node.files()["done"] == ["batch.yaml", "batch.yaml.result.json"]
    result = json.loads((node.root / "done/batch.yaml.result.json").read_text())
    in_worktree, without = ({t["id"]: t for t in result["tasks"]}[e.task_id] for e in ended)
    assert (in_worktree["branch"], in_worktree["head"]) == (BRANCH, records[0].head)
    assert in_worktree["executions"][0]["workspace"] == records[0].to_json()
    assert (without["branch"], without["head"]) == (None, None)


def test_the_result_file_has_each_executions_round_verify_and_denials(
    fake_claude: Path, node: Node, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    task = checked_task("checked", tmp_path / "sessions", claude={"working_dir": str(work)})
    node.drop("checked.yaml", dump(task))
    (ran,) = node.tasks()
    run_pool(node.service, [str(ran["id"])])
    assert node.files()["done"] == ["checked.yaml", "checked.yaml.result.json"]
    result = json.loads((node.root / "done/checked.yaml.result.json").read_text())
    (told,) = result["tasks"]
    assert told["state"] == "COMPLETED" and told["attempts"] == 1
    first, second = told["executions"]
    assert told["execution_ids"] == [first["id"], second["id"]]
    assert (first["round"], first["resumed_from"]) == (0, None)
    assert (second["round"], second["resumed_from"]) == (1, first["id"])
    assert [(c["command"], c["exit_code"]) for c in first["verify"]["commands"]] == [
        ("true", 0),
        ("test -f FIXED", 1),
    ]
    assert first["verify"]["passed"] is False and second["verify"]["passed"] is True
    assert all(c["timed_out"] is False for c in second["verify"]["commands"])
    assert Path(second["verify"]["log_path"]).is_file()
    for ex in (first, second):
        (denial,) = ex["permission_denials"]
        assert denial["tool_name"] == "Bash" and "NOTES.md" in denial["tool_input"]["command"]
    # the very records the API hands out, nothing lost on the way to the file
    assert told["executions"] == sorted(
        node.service.task(told["id"])["executions"], key=lambda ex: ex["id"]
    )
