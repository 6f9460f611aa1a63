"""The workspace decisions, as tables: the `workspace:` field (also inside a pydantic model, as
`TaskSpec` holds it), branch names, the working_dir mapped into a worktree, what a task waits
for, the disk limit, the commit message and the record's JSON form."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from claudomator.workspace import (
    Admitted,
    Occupant,
    Wait,
    Workspace,
    WorkspaceRecord,
    admit,
    blocker,
    branch_name,
    check_prefix,
    commit_message,
    disk_wait,
    format_bytes,
    in_worktree,
    inside,
    overlaps,
    short_id,
    slug,
    workspace_input,
)

P = PurePath
ID = "01JABCDEFGHJKMNPQRSTVWXYZ9"


class Holder(BaseModel):
    """The field as `TaskSpec` is to declare it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    workspace: Annotated[Workspace | None, BeforeValidator(workspace_input)] = None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("shared", Workspace(mode="shared")),
        ("worktree", Workspace()),
        ({}, Workspace()),
        ({"mode": "shared"}, Workspace(mode="shared")),
        ({"setup": "npm ci"}, Workspace(setup="npm ci")),
        (
            {
                "mode": "worktree",
                "base": "main",
                "setup": "npm ci",
                "commit": False,
                "push": "origin",
                "keep": True,
            },
            Workspace(base="main", setup="npm ci", commit=False, push="origin", keep=True),
        ),
        ({"base": "v1.0~2"}, Workspace(base="v1.0~2")),
        ({"push": None}, Workspace()),
        ({"mode": "shared", "keep": True}, Workspace(mode="shared", keep=True)),
    ],
)
def test_workspace_accepts(given: object, expected: Workspace) -> None:
    assert Workspace.of(given) == expected
    held = Holder.model_validate({"workspace": given}).workspace
    assert held == expected
    assert Holder.model_validate_json(json.dumps({"workspace": given})).workspace == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("sandbox", "'sandbox' is not one of shared, worktree"),
        ("", "'' is not one of shared, worktree"),
        (5, "expected shared, worktree or a mapping, got int"),
        (["worktree"], "expected shared, worktree or a mapping, got list"),
        ({"mode": "Worktree"}, "Worktree"),
        ({"mdoe": "worktree"}, "unknown field 'mdoe' (did you mean mode?)"),
        ({"colour": "red"}, "unknown field 'colour'; known: mode, base, setup, commit, push"),
        ({"mode": "shared", "setup": "npm ci"}, "setup: applies to mode worktree only"),
        ({"mode": "shared", "base": "main"}, "base: applies to mode worktree only"),
        ({"mode": "shared", "push": "origin"}, "push: applies to mode worktree only"),
        ({"setup": "  "}, "setup: expected a non-empty string or null"),
        ({"base": ""}, "base: expected a non-empty string or null"),
        ({"base": "--upload-pack=x"}, "base: '--upload-pack=x' is not a git revision"),
        ({"base": "main branch"}, "is not a git revision"),
        ({"push": "-f"}, "push: '-f' is not a git remote"),
        ({"push": "origin\n"}, "is not a git remote"),
    ],
)
def test_workspace_refuses(given: object, message: str) -> None:
    with pytest.raises(ValueError) as direct:
        Workspace.of(given)
    assert message in str(direct.value)
    with pytest.raises(ValidationError) as held:
        Holder.model_validate({"workspace": given})
    assert message in str(held.value)
    assert held.value.errors()[0]["loc"][0] == "workspace"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"commit": "maybe"}, "commit"),
        ({"keep": []}, "keep"),
        ({"setup": 3}, "setup"),
    ],
)
def test_workspace_types_are_checked(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Workspace.of(given)
    with pytest.raises(ValidationError, match=message):
        Holder.model_validate({"workspace": given})


def test_workspace_round_trips_and_has_a_schema() -> None:
    ws = Workspace(base="main", push="origin")
    assert Workspace.of(ws.to_json()) == ws
    assert Holder(workspace=ws).model_dump(mode="json")["workspace"] == ws.to_json()
    schema = Holder.model_json_schema()
    shape = schema["$defs"]["Workspace"]
    word, mapping = shape["anyOf"]
    assert word == {"type": "string", "enum": ["shared", "worktree"]}
    assert set(mapping["properties"]) == {"mode", "base", "setup", "commit", "push", "keep"}
    assert mapping["additionalProperties"] is False
    assert "setup.log" in mapping["properties"]["setup"]["description"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fix the login bug", "fix-the-login-bug"),
        ("  --Hello,   World!!--  ", "hello-world"),
        ("Crème brûlée à la mode", "creme-brulee-a-la-mode"),
        ("docs/README.md: update", "docs-readme-md-update"),
        ("日本語", "task"),
        ("", "task"),
        ("---", "task"),
        ("a" * 100, "a" * 40),
        ("x" * 39 + "-yz", "x" * 39),  # cut at a dash: no dash is left at the end
        ("UPPER_case snake", "upper-case-snake"),
        ("tab\tand\nnewline", "tab-and-newline"),
    ],
)
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == expected


@pytest.mark.parametrize(
    ("task_id", "expected"),
    [
        ("01JABCDEFGHJKMNPQRSTVWXYZ9", "stvwxyz9"),
        ("abc", "abc"),
        ("a-b_c.D", "abcd"),
    ],
)
def test_short_id(task_id: str, expected: str) -> None:
    assert short_id(task_id) == expected


def test_short_ids_of_one_millisecond_differ() -> None:
    from claudomator.ids import new_id

    ids = [new_id() for _ in range(200)]
    assert len({short_id(i) for i in ids}) == len(ids)


def test_short_id_needs_a_letter() -> None:
    with pytest.raises(ValueError):
        short_id("--")


@pytest.mark.parametrize(
    ("prefix", "name", "expected"),
    [
        ("claudomator", "Fix the login bug", "claudomator/fix-the-login-bug-stvwxyz9"),
        ("claudomator/", "Fix", "claudomator/fix-stvwxyz9"),
        ("bots/claudomator", "", "bots/claudomator/task-stvwxyz9"),
        ("/ci/", "ü", "ci/u-stvwxyz9"),
    ],
)
def test_branch_name(prefix: str, name: str, expected: str) -> None:
    assert branch_name(prefix, name, ID) == expected


@pytest.mark.parametrize(
    "prefix", ["", "a//b", "-x", ".hidden", "x.lock", "a..b", "sp ace", "a:b", "x.", "@{-1}"]
)
def test_check_prefix_refuses_what_git_refuses(prefix: str) -> None:
    with pytest.raises(ValueError, match="branch prefix"):
        check_prefix(prefix)


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/srv/app", "/srv/app", True),
        ("/srv/app/web", "/srv/app", True),
        ("/srv/application", "/srv/app", False),
        ("/srv", "/srv/app", False),
        ("/other", "/srv/app", False),
        ("/", "/", True),
        ("/srv", "/", True),
    ],
)
def test_inside(path: str, root: str, expected: bool) -> None:
    assert inside(P(path), P(root)) is expected


@pytest.mark.parametrize(
    ("working_dir", "expected"),
    [
        ("/srv/app", "/data/workspaces/T1"),
        ("/srv/app/web/src", "/data/workspaces/T1/web/src"),
        ("/srv/application", ValueError),
        ("/srv", ValueError),
    ],
)
def test_in_worktree(working_dir: str, expected: str | type[Exception]) -> None:
    args = (P(working_dir), P("/srv/app"), P("/data/workspaces/T1"))
    if isinstance(expected, str):
        assert in_worktree(*args) == P(expected)
    else:
        with pytest.raises(expected):
            in_worktree(*args)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("/srv/app", "/srv/app", True),
        ("/srv/app/web", "/srv/app", True),
        ("/srv", "/srv/app", True),
        ("/srv/app2", "/srv/app", False),
        ("/srv/a", "/srv/b", False),
    ],
)
def test_overlaps(a: str, b: str, expected: bool) -> None:
    assert overlaps(P(a), P(b)) is expected
    assert overlaps(P(b), P(a)) is expected


APP = Occupant("T-app", P("/srv/app"))
WEB = Occupant("T-web", P("/srv/web"))
TREE = Occupant("T-tree", P("/data/ws/T-tree"), branch="claudomator/x-1", repo=P("/srv/app"))
HOME = Occupant("T-home", P("/home/dev"))


# a worktree candidate (the last rows) waits on its own folder, and on its branch in its
# repository
@pytest.mark.parametrize(
    ("directory", "branch", "repo", "running", "expected"),
    [
        ("/srv/app", None, None, [], None),
        ("/srv/app", None, None, [APP], Wait("/srv/app", "T-app")),  # same
        ("/srv/app/src", None, None, [APP], Wait("/srv/app", "T-app")),  # inside
        ("/srv", None, None, [APP], Wait("/srv/app", "T-app")),  # above
        ("/srv", None, None, [WEB, APP], Wait("/srv/web", "T-web")),  # the first one
        ("/srv/other", None, None, [APP, WEB], None),  # beside: runs
        ("/srv/app2", None, None, [APP], None),  # a name that starts alike is not inside
        ("/srv/app", None, None, [TREE], None),  # a worktree is not its repository
        ("/data", None, None, [TREE], Wait("/data/ws/T-tree", "T-tree")),
        (
            "/data/ws/T2",
            "claudomator/x-1",
            "/srv/app",
            [TREE],
            Wait("branch claudomator/x-1", "T-tree"),
        ),
        ("/data/ws/T2", "claudomator/x-1", "/srv/other", [TREE], None),  # another repository
        ("/data/ws/T2", "claudomator/y-2", "/srv/app", [TREE, APP], None),
        ("/home/dev/.claudomator/workspaces/T3", "b", "/r", [HOME], Wait("/home/dev", "T-home")),
    ],
)
def test_blocker(
    directory: str,
    branch: str | None,
    repo: str | None,
    running: list[Occupant],
    expected: Wait | None,
) -> None:
    found = blocker(P(directory), running, branch=branch, repo=P(repo) if repo else None)
    assert found == expected


A1 = Occupant("A1", P("/srv/app"))
A2 = Occupant("A2", P("/srv/app/src"))
B1 = Occupant("B1", P("/srv/web"))
T1 = Occupant("T1", P("/data/ws/T1"), branch="claudomator/a-1", repo=P("/srv/app"))
T2 = Occupant("T2", P("/data/ws/T2"), branch="claudomator/b-2", repo=P("/srv/app"))
DISK = "waiting for disk: worktrees use 1.0 KiB of workspace.max_disk 1.0 KiB"


# candidates in queue order, each with whether it needs a new worktree
@pytest.mark.parametrize(
    ("candidates", "running", "slots", "disk", "expected"),
    [
        ([], [], 4, None, Admitted([], {})),
        ([(A1, False), (B1, False)], [], 4, None, Admitted(["A1", "B1"], {})),
        ([(A1, False), (B1, False)], [], 1, None, Admitted(["A1"], {}, ["B1"])),  # no slot
        # the one behind a waiting task still starts
        ([(A1, False), (B1, False)], [A2], 4, None,
         Admitted(["B1"], {"A1": "waiting for /srv/app/src (task A2)"})),
        # two candidates on one folder: the first starts, the second waits for it
        ([(A1, False), (A2, False), (B1, False)], [], 4, None,
         Admitted(["A1", "B1"], {"A2": "waiting for /srv/app (task A1)"})),
        # worktrees of one repository run side by side, and beside its checkout
        ([(T1, True), (T2, True), (A1, False)], [], 4, None, Admitted(["T1", "T2", "A1"], {})),
        # the disk limit stops new worktrees only
        ([(T1, True), (T2, False), (B1, False)], [], 4, DISK,
         Admitted(["T2", "B1"], {"T1": DISK})),
        # a waiting task takes no slot
        ([(A1, False), (B1, False), (T1, True)], [A2], 2, None,
         Admitted(["B1", "T1"], {"A1": "waiting for /srv/app/src (task A2)"})),
        # past the slots, each is still judged: waiting, or ready for the next free slot
        ([(B1, False), (A1, False), (T1, True)], [A2], 1, None,
         Admitted(["B1"], {"A1": "waiting for /srv/app/src (task A2)"}, ["T1"])),
    ],
)  # fmt: skip
def test_admit(
    candidates: list[tuple[Occupant, bool]],
    running: list[Occupant],
    slots: int,
    disk: str | None,
    expected: Admitted,
) -> None:
    assert admit(candidates, running, slots, disk) == expected


def test_wait_says_on_what() -> None:
    assert str(Wait("/srv/app", "01J")) == "waiting for /srv/app (task 01J)"


@pytest.mark.parametrize(
    ("sizes", "max_disk", "expected"),
    [
        ([], None, None),
        ([10**12], None, None),
        ([], 1000, None),
        ([400, 500], 1000, None),
        ([500, 500], 1000, "waiting for disk: worktrees use 1000 B of workspace.max_disk 1000 B"),
        ([3 << 30], 2 << 30, "waiting for disk: worktrees use 3.0 GiB of workspace.max_disk 2.0 GiB"),
        ([0], 0, "waiting for disk: worktrees use 0 B of workspace.max_disk 0 B"),
    ],
)  # fmt: skip
def test_disk_wait(sizes: list[int], max_disk: int | None, expected: str | None) -> None:
    assert disk_wait(sizes, max_disk) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 << 20, "5.0 MiB"),
        (11 << 30, "11.0 GiB"),
        (3 << 40, "3.0 TiB"),
        (5000 << 40, "5000.0 TiB"),
    ],
)
def test_format_bytes(n: int, expected: str) -> None:
    assert format_bytes(n) == expected


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("Fix the bug", "claudomator: Fix the bug"),
        ("two\nlines  and\tspaces", "claudomator: two lines and spaces"),
        ("# not a comment", "claudomator: # not a comment"),
        ("   ", "claudomator: task"),
    ],
)
def test_commit_message(name: str, subject: str) -> None:
    message = commit_message(name, "T1", "E1")
    assert message == f"{subject}\n\nClaudomator-Task: T1\nClaudomator-Execution: E1\n"


def test_record_json_round_trip() -> None:
    record = WorkspaceRecord(
        mode="worktree", path="/w/T1", branch="claudomator/x-t1", base="a" * 40, head="b" * 40,
        commits=2, files_changed=3, insertions=10, deletions=4, diff_path="/e/E1/diff.patch",
    )  # fmt: skip
    data = json.loads(json.dumps(record.to_json()))
    assert WorkspaceRecord.from_json(data) == record
    assert WorkspaceRecord.from_json({**data, "added_later": 1}) == record
    shared = WorkspaceRecord(mode="shared", path="/srv/app")
    assert shared.to_json()["branch"] is None
    assert WorkspaceRecord.from_json(shared.to_json()) == shared
