"""An execution's changes through the API: the `workspace` of its record, and its diff
(`GET /api/executions/{id}/diff`) as real git wrote it, streamed whole, secrets masked, and a
404 that says why when there is none. A real server on 127.0.0.1 (no pool: executions are
started and ended through the store, as the lifecycle records them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from claudomator.api.diffs import diff_chunks, missing
from claudomator.logfiles import MAX_READ
from claudomator.records import Event
from claudomator.state import State
from claudomator.store.db import Store
from claudomator.stored import ExecutionEnd
from claudomator.workspace import WorkspaceRecord
from claudomator.worktree import parse_shortstat
from tests.apiserver import LiveServer
from tests.needs import needs
from tests.test_api import assert_error

pytestmark = [pytest.mark.timeout(60), needs(shutil.which("git"), "git is not installed")]

SECRET = "ghp_diff_secret_2468"
BRANCH = "claudomator/greet-01abcdef"


# -- helpers the other tests of workspaces use too -----------------------------------------------


def git(cwd: Path, *args: str) -> str:
    """git in `cwd`, with an identity and no config of the machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    out = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def changed_branch(
    root: Path, diff_path: Path, *, node: str = "", note: str = "", big_lines: int = 0
) -> WorkspaceRecord:
    """A real repository under `root` whose branch is two commits ahead of main (app.py changed,
    a line gone from README.md, docs/notes.md new with `note` in it, and `big_lines` lines of
    big.txt), its `git diff base..head` saved at `diff_path` as a worktree's end saves it; the
    record of it."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("def greet():\n    return 'hello'\n")
    (repo / "README.md").write_text("# demo\nan old line\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "-c", BRANCH)
    (repo / "app.py").write_text(
        "def greet(name):\n    return f'hello, {name}'\n\n\ndef part():\n    return 'bye'\n"
    )
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.md").write_text(f"# notes\n<b>not markup</b> {note}\n")
    if big_lines:
        (repo / "big.txt").write_text(
            "".join(f"line {i:07d} of the big file\n" for i in range(big_lines))
        )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "greet by name")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "commit", "-q", "-am", "drop the old line")
    head = git(repo, "rev-parse", "HEAD")
    diff_path.parent.mkdir(parents=True, exist_ok=True)
    diff = ("diff", "--no-color", "--no-ext-diff", "--src-prefix=a/", "--dst-prefix=b/")
    git(repo, *diff, f"--output={diff_path}", base, head)
    files, insertions, deletions = parse_shortstat(git(repo, *diff, "--shortstat", base, head))
    return WorkspaceRecord(
        mode="worktree", path=str(root / "worktree"), repo=str(repo), node=node, branch=BRANCH,
        base=base, head=head, commits=2, files_changed=files, insertions=insertions,
        deletions=deletions, diff_path=str(diff_path),
    )  # fmt: skip


class Ended(NamedTuple):
    task_id: str
    execution_id: str
    events: list[Event]


def end_with_workspace(
    store: Store, executions: Path, workspace: Callable[[str], WorkspaceRecord | None]
) -> Ended:
    """Start the first queued task and end its execution COMPLETED, recording the workspace
    that `workspace(execution id)` makes (None: none recorded)."""
    [(execution_id, _, task, _)] = store.start(1, time.time(), executions)
    record = workspace(execution_id)
    text = "" if record is None else json.dumps(record.to_json())
    events = store.finish_execution(
        execution_id,
        task["id"],
        state=State.COMPLETED,
        reason="",
        end=ExecutionEnd(cost_usd=0.01, workspace_json=text),
    )
    return Ended(task["id"], execution_id, events)


def diff_of(executions: Path, execution_id: str) -> Path:
    return executions / execution_id / "diff.patch"


# -- the decision and the reading, with tables ----------------------------------------------------

WORKTREE = {"mode": "worktree", "diff_path": "/data/executions/E/diff.patch", "node": "n1"}


@pytest.mark.parametrize(
    ("workspace", "here", "this_node", "why"),
    [
        (WORKTREE, True, "n1", None),
        (WORKTREE, True, "n2", None),  # the file is here whoever made it
        (None, False, "n1", "execution E has no workspace recorded, so no diff"),
        ({"mode": "shared", "diff_path": None}, False, "n1", "ran in the shared working_dir"),
        ({**WORKTREE, "diff_path": None}, False, "n1", "execution E saved no diff"),
        ({**WORKTREE, "diff_path": ""}, False, "n1", "execution E saved no diff"),
        (WORKTREE, False, "n1", "the diff of execution E is gone (/data/executions/E/diff.patch)"),
        ({**WORKTREE, "node": ""}, False, "n1", "the diff of execution E is gone"),
        (WORKTREE, False, "n2", "ran on node n1: its diff is in that node's data dir"),
    ],
)
def test_why_there_is_no_diff(
    workspace: dict[str, Any] | None, here: bool, this_node: str, why: str | None
) -> None:
    found = missing("E", workspace, here=here, this_node=this_node)
    assert found == why if why is None else why in (found or "")


def test_a_running_execution_has_its_diff_later() -> None:
    why = missing("E", None, here=False, this_node="n1", running=True)
    assert why == "execution E is still running: its diff is saved when claude ends"
    assert missing("E", WORKTREE, here=True, this_node="n1", running=True) is None


@pytest.mark.parametrize(
    ("content", "secrets", "expected"),
    [
        (b"", [], b""),
        (b"+a\n-b\n", [], b"+a\n-b\n"),
        (b"+a\n\\ No newline at end of file", [], b"+a\n\\ No newline at end of file"),
        (f"+key={SECRET}\n-{SECRET}".encode(), [SECRET.encode()], b"+key=***\n-***"),
        (b"+" + b"x" * (MAX_READ + 10) + b"\n", [], b"+" + b"x" * (MAX_READ + 10) + b"\n"),
    ],
)
def test_diff_chunks(tmp_path: Path, content: bytes, secrets: list[bytes], expected: bytes) -> None:
    path = tmp_path / "diff.patch"
    path.write_bytes(content)
    file = path.open("rb")
    assert b"".join(diff_chunks(file, secrets)) == expected
    assert file.closed


def test_diff_chunks_are_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "diff.patch"
    path.write_bytes(b"".join(b"+line %07d\n" % i for i in range(300_000)))  # 4 MiB
    chunks = list(diff_chunks(path.open("rb"), []))
    assert len(chunks) >= 3 and all(c.endswith(b"\n") for c in chunks)
    assert b"".join(chunks) == path.read_bytes()


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path / "data", pool=False) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=20) as c:
        yield c


def queue_task(client: httpx.Client, name: str = "greet") -> str:
    body = {"name": name, "claude": {"instructions": "x", "env": {"GITHUB_TOKEN": SECRET}}}
    task = client.post("/api/tasks", params={"run": "true"}, json=body)
    assert task.status_code == 201, task.text
    return str(task.json()["id"])


def ended(live: LiveServer, workspace: Callable[[str], WorkspaceRecord | None]) -> Ended:
    service = live.service
    assert service is not None
    executions = service.config.data_dir.executions
    done: Ended = live.call(lambda: end_with_workspace(service.store, executions, workspace))
    return done


def test_the_diff_and_the_workspace_of_a_worktree_execution(
    live: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    task_id = queue_task(client)
    executions = live.config.data_dir.executions
    records: list[WorkspaceRecord] = []

    def workspace(execution_id: str) -> WorkspaceRecord:
        records.append(changed_branch(tmp_path, diff_of(executions, execution_id), note=SECRET))
        return records[0]

    done = ended(live, workspace)
    assert done.task_id == task_id
    [record] = records
    assert (record.files_changed, record.insertions, record.deletions) == (3, 8, 3)
    response = client.get(f"/api/executions/{done.execution_id}/diff")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/x-diff")
    saved = diff_of(executions, done.execution_id).read_bytes()
    assert SECRET.encode() in saved  # claude wrote it into a file it committed
    assert response.content == saved.replace(SECRET.encode(), b"***")
    for name in ("a/app.py", "b/docs/notes.md", "a/README.md"):
        assert f"diff --git {name}" in response.text or f" {name}" in response.text
    assert "+def greet(name):" in response.text and "-an old line" in response.text

    shown = client.get(f"/api/executions/{done.execution_id}").json()
    assert shown["workspace"] == record.to_json()
    assert set(shown["workspace"]) == {f.name for f in fields(WorkspaceRecord)}
    [listed] = client.get(f"/api/tasks/{task_id}").json()["executions"]
    assert listed["workspace"] == record.to_json()


def test_a_large_diff_comes_whole(live: LiveServer, client: httpx.Client, tmp_path: Path) -> None:
    queue_task(client)
    executions = live.config.data_dir.executions
    done = ended(
        live, lambda eid: changed_branch(tmp_path, diff_of(executions, eid), big_lines=160_000)
    )
    saved = diff_of(executions, done.execution_id).read_bytes()
    assert len(saved) > 4 * MAX_READ
    with client.stream("GET", f"/api/executions/{done.execution_id}/diff") as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # streamed, not read whole first
        body = b"".join(response.iter_bytes())
    assert body == saved


NO_DIFF: list[tuple[str, Callable[[Path, Path], WorkspaceRecord | None], str]] = [
    ("none recorded", lambda root, diff: None, "has no workspace recorded"),
    (
        "shared",
        lambda root, diff: WorkspaceRecord(mode="shared", path=str(root)),
        "ran in the shared working_dir",
    ),
    (
        "no diff saved",
        lambda root, diff: replace(changed_branch(root, diff), diff_path=None),
        "saved no diff",
    ),
    ("gone", lambda root, diff: gone(changed_branch(root, diff)), "is gone"),
    (
        "elsewhere",
        lambda root, diff: changed_branch(root, root / "other-node" / "diff.patch", node="n9"),
        "ran on node n9: its diff is in that node's data dir",
    ),
]


def gone(record: WorkspaceRecord) -> WorkspaceRecord:
    assert record.diff_path is not None
    os.unlink(record.diff_path)
    return record


@pytest.mark.parametrize(("case", "workspace", "message"), NO_DIFF, ids=[c[0] for c in NO_DIFF])
def test_no_diff_is_a_404_that_says_why(
    live: LiveServer,
    client: httpx.Client,
    tmp_path: Path,
    case: str,
    workspace: Callable[[Path, Path], WorkspaceRecord | None],
    message: str,
) -> None:
    queue_task(client)
    executions = live.config.data_dir.executions
    done = ended(live, lambda eid: workspace(tmp_path, diff_of(executions, eid)))
    error = assert_error(client.get(f"/api/executions/{done.execution_id}/diff"), 404, "not_found")
    assert message in error["message"] and done.execution_id in error["message"]
    assert client.get(f"/api/executions/{done.execution_id}").status_code == 200


def test_an_unknown_execution_has_no_diff(client: httpx.Client) -> None:
    error = assert_error(client.get("/api/executions/01NOPE/diff"), 404, "not_found")
    assert error["message"] == "no execution with id '01NOPE'"


def test_the_schema_gives_the_workspace_its_shape(client: httpx.Client) -> None:
    schema = client.get("/api/schema/openapi.json").json()
    components = schema["components"]["schemas"]
    workspace = components["Execution"]["properties"]["workspace"]
    assert {"$ref": "#/components/schemas/Workspace"} in workspace["oneOf"]
    assert {"type": "null"} in workspace["oneOf"]
    shape = components["Workspace"]
    assert set(shape["properties"]) == {f.name for f in fields(WorkspaceRecord)}
    assert shape["properties"]["mode"] == {"enum": ["shared", "worktree"]}
    diff = schema["paths"]["/api/executions/{execution_id}/diff"]["get"]
    assert set(diff["responses"]["200"]["content"]) == {"text/x-diff"}
    assert diff["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
