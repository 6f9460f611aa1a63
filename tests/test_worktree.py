"""Task worktrees against real git: repositories, a bare "remote" and the workspaces folder in
tmp_path; the person's checkout is checked to stay as it was (HEAD, index, files)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from claudomator.shell import run_shell
from claudomator.sources.gitplan import GitError
from claudomator.workspace import WorkspaceRecord, branch_name
from claudomator.worktree import (
    IDENTITY,
    Attached,
    Listed,
    Worktrees,
    parse_shortstat,
    parse_worktrees,
    repo_root,
    size_on_disk,
)
from tests.needs import needs

pytestmark = needs(shutil.which("git"), "git is not installed")

T = TypeVar("T")
BRANCH = "claudomator/fix-t1"


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.fixture(autouse=True)
def _no_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with no git identity at all: git must not guess one, so a commit that brings
    no identity of its own fails."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tuseConfigOnly = true\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GIT_COMMITTER_EMAIL", raising=False)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    (path / "README.md").write_text("hello\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("one\ntwo\nthree\n")
    (path / ".gitignore").write_text("node_modules/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def snapshot(repo: Path) -> dict[str, object]:
    """What a person sees of their checkout: HEAD, branch, index bytes, status, files."""
    files = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def trees(tmp_path: Path) -> Worktrees:
    return Worktrees(tmp_path / "data" / "workspaces")


def attach(trees: Worktrees, repo: Path, task_id: str = "T1", branch: str = BRANCH) -> Attached:
    return run(trees.attach(repo, task_id, branch))


# --- the repository of a path


def test_repo_root(tmp_path: Path, repo: Path) -> None:
    (tmp_path / "plain").mkdir()
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    link = tmp_path / "link"
    link.symlink_to(repo / "src")
    assert run(repo_root(repo)) == repo.resolve()
    assert run(repo_root(repo / "src")) == repo.resolve()
    assert run(repo_root(link)) == repo.resolve()
    assert run(repo_root(tmp_path / "plain")) is None
    assert run(repo_root(tmp_path / "missing")) is None
    assert run(repo_root(repo / "src" / "app.py")) is None  # a file is no folder
    assert run(repo_root(repo / ".git")) is None
    assert (
        run(repo_root(tmp_path / "bare.git")) == (tmp_path / "bare.git").resolve()
    )  # a worktree can come of it


# --- making and re-attaching


def test_attach_makes_a_worktree_on_a_new_branch(repo: Path, trees: Worktrees) -> None:
    (repo / "README.md").write_text("the person's own unfinished edit\n")
    before = snapshot(repo)
    tree = attach(trees, repo)
    assert tree.created
    assert tree.repo == repo.resolve()
    assert tree.path == (trees.workspaces / "T1").resolve()
    assert tree.base == git(repo, "rev-parse", "HEAD")
    assert git(tree.path, "symbolic-ref", "HEAD") == f"refs/heads/{BRANCH}"
    assert (tree.path / "README.md").read_text() == "hello\n"  # committed, not the edit
    assert git(repo, "rev-parse", BRANCH) == tree.base
    assert git(repo, "config", "--get", f"branch.{BRANCH}.merge", check=False) == ""
    assert stat.S_IMODE(trees.workspaces.stat().st_mode) == 0o700
    assert snapshot(repo) == before


def test_attach_from_a_base(repo: Path, trees: Worktrees) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "feature.txt").write_text("f\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feature")
    feature = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    tree = run(trees.attach(repo, "T1", BRANCH, base="feature"))
    assert tree.base == feature
    assert (tree.path / "feature.txt").exists()
    with pytest.raises(GitError, match="names no commit"):
        run(trees.attach(repo, "T2", "claudomator/other-t2", base="no-such-ref"))
    assert git(repo, "branch", "--list", "claudomator/other-t2") == ""
    with pytest.raises(GitError, match="not a revision"):
        run(trees.attach(repo, "T3", "claudomator/three-t3", base="--orphan"))


def test_attach_again_reuses_and_a_removed_folder_is_made_again(
    repo: Path, trees: Worktrees
) -> None:
    first = attach(trees, repo)
    (first.path / "work.txt").write_text("done\n")
    commit = run(trees.commit(first.path, "fix", "T1", "E1"))
    again = attach(trees, repo)
    assert again == Attached(first.repo, first.path, BRANCH, first.base, created=False)
    shutil.rmtree(first.path)  # someone cleaned up: the retry continues on the branch
    retried = attach(trees, repo)
    assert retried.created and retried.path == first.path and retried.base == first.base
    assert git(retried.path, "rev-parse", "HEAD") == commit
    assert (retried.path / "work.txt").read_text() == "done\n"
    assert len(run(trees.owned(repo))) == 1


def test_attach_after_remove_continues_on_the_branch(repo: Path, trees: Worktrees) -> None:
    first = attach(trees, repo)
    (first.path / "a.txt").write_text("a\n")
    commit = run(trees.commit(first.path, "fix", "T1", "E1"))
    assert run(trees.remove(repo, "T1"))
    second = run(trees.attach(repo, "T1", BRANCH, base=first.base))
    assert second.created and second.base == first.base
    assert git(second.path, "rev-parse", "HEAD") == commit


def test_attach_makes_again_a_worktree_whose_making_was_cut_short(
    repo: Path, trees: Worktrees
) -> None:
    first = attach(trees, repo)
    (first.path / "README.md").unlink()  # the checkout was under way when the process died
    (repo / ".git" / "worktrees" / "T1" / "locked").write_text("initializing")
    again = attach(trees, repo)
    assert again.created and again.path == first.path
    assert (again.path / "README.md").read_text() == "hello\n"
    assert git(again.path, "status", "--porcelain") == ""
    git(repo, "worktree", "lock", "--reason", "kept by hand", str(again.path))
    kept = attach(trees, repo)  # a lock of a person's own: the worktree is used as it is
    assert not kept.created
    assert {w.path: w for w in run(trees.listed(repo))}[kept.path].locked == "kept by hand"


def test_attach_refuses_what_is_not_its_worktree(repo: Path, trees: Worktrees) -> None:
    stray = trees.workspaces / "T1"
    stray.mkdir(parents=True)
    (stray / "left.txt").write_text("x")
    with pytest.raises(GitError, match="is not a worktree"):
        attach(trees, repo)
    assert (stray / "left.txt").read_text() == "x"
    attach(trees, repo, "T2", "claudomator/two-t2")
    with pytest.raises(GitError, match="not on claudomator/other"):
        attach(trees, repo, "T2", "claudomator/other-t2")
    with pytest.raises(GitError):  # checked out in the person's checkout
        attach(trees, repo, "T3", "main")
    with pytest.raises(GitError, match="not a branch name"):
        attach(trees, repo, "T4", "-bad")
    with pytest.raises(GitError, match="check-ref-format"):
        attach(trees, repo, "T4", "a..b")
    with pytest.raises(ValueError):
        attach(trees, repo, "../escape", "claudomator/x-1")


# --- setup


def test_setup_runs_in_the_worktree_with_its_log(repo: Path, trees: Worktrees) -> None:
    tree = attach(trees, repo)
    log = tree.path.parent.parent / "setup.log"
    command = "pwd; echo to-stderr >&2; mkdir node_modules; echo x > node_modules/dep"
    result = run(run_shell(tree.path, command, log, timeout_s=30))
    assert result.ok and result.exit_code == 0 and not result.timed_out
    lines = log.read_text().splitlines()
    assert lines[0] == f"$ {command}"
    assert lines[1] == str(tree.path)
    assert "to-stderr" in lines
    assert lines[-1] == "# exit 0"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert (tree.path / "node_modules" / "dep").exists()


def test_setup_failure_and_timeout(tmp_path: Path) -> None:
    failed = run(run_shell(tmp_path, "echo broken; exit 3", tmp_path / "a.log", timeout_s=30))
    assert not failed.ok and failed.exit_code == 3
    assert failed.output(1000) == "broken\n" and failed.output(3) == "en\n"
    assert (tmp_path / "a.log").read_text().splitlines()[-2:] == ["broken", "# exit 3"]
    began = time.monotonic()
    slow = run(run_shell(tmp_path, "sleep 30 & sleep 30", tmp_path / "b.log", timeout_s=0.5))
    assert time.monotonic() - began < 10
    assert slow.timed_out and slow.exit_code is None and not slow.ok
    assert (tmp_path / "b.log").read_text().splitlines()[-1] == "# timed out after 0.5s"


def test_setup_sees_no_other_repository(tmp_path: Path, repo: Path) -> None:
    env = {**os.environ, "GIT_DIR": str(tmp_path / "elsewhere"), "SETUP_MARK": "yes"}
    command = 'echo "dir=${GIT_DIR:-none} mark=$SETUP_MARK"'
    result = run(run_shell(repo, command, tmp_path / "s.log", timeout_s=30, env=env))
    assert result.ok
    assert "dir=none mark=yes" in (tmp_path / "s.log").read_text()


# --- commit, figures and diff


def test_commit_what_claude_left(repo: Path, trees: Worktrees) -> None:
    tree = attach(trees, repo)
    plain = subprocess.run(
        ["git", "commit", "--allow-empty", "-m", "x"],
        cwd=tree.path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert plain.returncode != 0 and "Author identity unknown" in plain.stderr  # none here
    (tree.path / "src" / "app.py").write_text("one\nTWO\nthree\nfour\n")
    (tree.path / "new.txt").write_text("new\n")
    (tree.path / "README.md").unlink()
    (tree.path / "node_modules").mkdir()
    (tree.path / "node_modules" / "ignored.js").write_text("x")
    commit = run(trees.commit(tree.path, "Fix the\nlogin bug", "T1", "E1"))
    assert commit == git(repo, "rev-parse", BRANCH)
    assert git(repo, "log", "-1", "--format=%s", BRANCH) == "claudomator: Fix the login bug"
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", BRANCH)
    assert trailers.splitlines() == ["Claudomator-Task: T1", "Claudomator-Execution: E1"]
    who = git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", BRANCH)
    assert who == "{0} <{1}>|{0} <{1}>".format(*IDENTITY)
    assert git(repo, "rev-parse", f"{BRANCH}^") == tree.base
    shown = git(repo, "show", "--name-status", "--format=", BRANCH).splitlines()
    assert sorted(shown) == ["A\tnew.txt", "D\tREADME.md", "M\tsrc/app.py"]
    assert git(tree.path, "status", "--porcelain") == ""
    assert run(trees.commit(tree.path, "again", "T1", "E2")) is None  # nothing changed
    assert git(repo, "rev-parse", BRANCH) == commit


def test_record_counts_the_branch_and_saves_the_diff(
    tmp_path: Path, repo: Path, trees: Worktrees
) -> None:
    tree = attach(trees, repo)
    diff = tmp_path / "diff.patch"
    empty = run(trees.record(tree, diff))
    assert (empty.commits, empty.files_changed, empty.insertions, empty.deletions) == (0, 0, 0, 0)
    assert empty.head == tree.base and diff.read_text() == ""
    (tree.path / "src" / "app.py").write_text("one\nTWO\nthree\nfour\n")
    run(trees.commit(tree.path, "one", "T1", "E1"))
    (tree.path / "b.txt").write_text("b1\nb2\n")
    (tree.path / "bin.dat").write_bytes(b"\0\1\2")
    head = run(trees.commit(tree.path, "two", "T1", "E2"))
    diff.unlink()
    record = run(trees.record(tree, diff))
    assert record == WorkspaceRecord(
        mode="worktree", path=str(tree.path), repo=str(tree.repo), branch=BRANCH, base=tree.base,
        head=head,
        commits=2, files_changed=3, insertions=4, deletions=1, diff_path=str(diff),
    )  # fmt: skip
    patch = diff.read_text()
    assert "diff --git a/src/app.py b/src/app.py" in patch
    assert "-two\n+TWO\n" in patch and "+four\n" in patch and "+b2\n" in patch
    assert "Binary files /dev/null and b/bin.dat differ" in patch
    assert stat.S_IMODE(diff.stat().st_mode) == 0o600
    assert run(trees.record(tree)).diff_path is None


# --- push


def test_push_to_a_remote_never_forced(tmp_path: Path, repo: Path, trees: Worktrees) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    tree = attach(trees, repo)
    (tree.path / "a.txt").write_text("a\n")
    first = run(trees.commit(tree.path, "fix", "T1", "E1"))
    assert run(trees.push(tree.repo, BRANCH, "origin")) is None
    assert git(remote, "rev-parse", f"refs/heads/{BRANCH}") == first
    assert git(remote, "tag") == ""
    # the remote's branch moved on elsewhere: ours does not fast-forward it, and is not forced
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", BRANCH, str(remote), str(other))
    (other / "theirs.txt").write_text("t\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "theirs")
    git(other, "push", "-q", "origin", BRANCH)
    theirs = git(other, "rev-parse", "HEAD")
    (tree.path / "b.txt").write_text("b\n")
    run(trees.commit(tree.path, "more", "T1", "E2"))
    error = run(trees.push(tree.repo, BRANCH, "origin"))
    assert error is not None and "rejected" in error
    assert git(remote, "rev-parse", f"refs/heads/{BRANCH}") == theirs
    missing = run(trees.push(tree.repo, BRANCH, "nowhere"))
    assert missing is not None and "nowhere" in missing


# --- removal, pruning, listing


def test_remove_keeps_the_branch(repo: Path, trees: Worktrees) -> None:
    before = snapshot(repo)
    tree = attach(trees, repo)
    (tree.path / "a.txt").write_text("a\n")
    commit = run(trees.commit(tree.path, "fix", "T1", "E1"))
    (tree.path / "uncommitted.txt").write_text("lost with the worktree\n")
    assert run(trees.remove(repo, "T1"))
    assert not tree.path.exists()
    assert git(repo, "rev-parse", BRANCH) == commit
    assert [w.path for w in run(trees.listed(repo))] == [repo.resolve()]
    assert not run(trees.remove(repo, "T1"))  # nothing left to remove
    assert snapshot(repo) == before


def test_prune_lists_and_branches(repo: Path, trees: Worktrees) -> None:
    one = attach(trees, repo, "T1", "claudomator/one-t1")
    two = attach(trees, repo, "T2", "claudomator/two-t2")
    git(repo, "branch", "unrelated")
    (two.path / "x.txt").write_text("x\n")
    run(trees.commit(two.path, "two", "T2", "E2"))
    shutil.rmtree(one.path)
    gone = {w.path: w for w in run(trees.listed(repo))}[one.path]
    assert gone.prunable
    left = run(trees.prune(repo))
    assert [w.path for w in left] == [two.path]
    assert left[0].branch == "claudomator/two-t2" and not left[0].prunable
    assert {w.path for w in run(trees.listed(repo))} == {repo.resolve(), two.path}
    branches = run(trees.branches(repo, "claudomator"))
    assert [b.name for b in branches] == ["claudomator/one-t1", "claudomator/two-t2"]
    assert branches[1].head == git(repo, "rev-parse", "claudomator/two-t2")
    assert abs(branches[1].committed_at - time.time()) < 600
    assert run(trees.branches(repo, "claudomator/")) == branches
    assert run(trees.branches(repo, "nothing")) == []
    assert run(trees.branch_has_commits(repo, "claudomator/two-t2", two.base))
    assert not run(trees.branch_has_commits(repo, "claudomator/one-t1", one.base))
    assert not run(trees.branch_has_commits(repo, "claudomator/none", one.base))
    assert run(trees.commits_ahead(repo, "claudomator/two-t2", two.base)) == 1
    with pytest.raises(GitError, match="not a revision"):
        run(trees.commits_ahead(repo, "claudomator/two-t2", "--all"))
    with pytest.raises(GitError):  # checked out in a worktree: git keeps it
        run(trees.delete_branch(repo, "claudomator/two-t2"))
    run(trees.delete_branch(repo, "claudomator/one-t1"))
    assert git(repo, "branch", "--list", "claudomator/one-t1") == ""


def test_size_on_disk(repo: Path, trees: Worktrees) -> None:
    tree = attach(trees, repo)
    small = size_on_disk(tree.path)
    assert small > 0
    (tree.path / "big.bin").write_bytes(os.urandom(1 << 20))
    assert size_on_disk(tree.path) >= small + (1 << 20)
    assert size_on_disk(tree.path / "missing") == 0


# --- concurrency


def test_four_worktrees_of_one_repository_at_once(repo: Path, trees: Worktrees) -> None:
    before = snapshot(repo)
    ids = [f"01JTASK{n}" for n in range(4)]
    branches = [branch_name("claudomator", f"task {n}", ids[n]) for n in range(4)]

    async def one(n: int) -> tuple[Attached, str | None]:
        tree = await trees.attach(repo, ids[n], branches[n])
        (tree.path / f"work{n}.txt").write_text(f"{n}\n")
        (tree.path / "src" / "app.py").write_text(f"changed by {n}\n")
        return tree, await trees.commit(tree.path, f"task {n}", ids[n], f"E{n}")

    async def all_four() -> list[tuple[Attached, str | None]]:
        return await asyncio.gather(*(one(n) for n in range(4)))

    done = run(all_four())
    base = before["head"]
    for n, (tree, commit) in enumerate(done):
        assert tree.branch == branches[n] and tree.base == base
        assert commit == git(repo, "rev-parse", branches[n])
        assert git(repo, "rev-parse", f"{branches[n]}^") == base
        files = git(repo, "show", "--name-only", "--format=", branches[n]).splitlines()
        assert sorted(files) == ["src/app.py", f"work{n}.txt"]
        assert git(repo, "show", f"{branches[n]}:src/app.py") == f"changed by {n}"
    assert len({commit for _, commit in done}) == 4
    assert len(run(trees.owned(repo))) == 4
    assert snapshot(repo) == before


# --- what git says, parsed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        (
            "worktree /r\nHEAD aaa\nbranch refs/heads/main\n\n"
            "worktree /w/T1\nHEAD bbb\nbranch refs/heads/claudomator/x-1\n\n"
            "worktree /w/T2\nHEAD ccc\ndetached\nlocked initializing\n\n"
            "worktree /w/T3\nHEAD ddd\nbranch refs/heads/b\nprunable gitdir file points to "
            "non-existent location\n",
            [
                Listed(Path("/r"), "aaa", "main"),
                Listed(Path("/w/T1"), "bbb", "claudomator/x-1"),
                Listed(Path("/w/T2"), "ccc", None, locked="initializing"),
                Listed(Path("/w/T3"), "ddd", "b", prunable=True),
            ],
        ),
        ("worktree /bare.git\nbare\n", [Listed(Path("/bare.git"), bare=True)]),
        ("worktree /a\nHEAD 1\nlocked\n\n\nworktree /b c\nHEAD 2\n\n",
         [Listed(Path("/a"), "1", locked=""), Listed(Path("/b c"), "2")]),
    ],
)  # fmt: skip
def test_parse_worktrees(text: str, expected: list[Listed]) -> None:
    assert parse_worktrees(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (0, 0, 0)),
        (" 1 file changed, 1 insertion(+)", (1, 1, 0)),
        (" 1 file changed, 2 deletions(-)", (1, 0, 2)),
        (" 3 files changed, 10 insertions(+), 4 deletions(-)", (3, 10, 4)),
        (" 1 file changed, 0 insertions(+), 0 deletions(-)", (1, 0, 0)),  # a binary file
    ],
)
def test_parse_shortstat(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_shortstat(text) == expected
