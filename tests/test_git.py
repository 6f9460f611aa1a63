"""The git source against real git: repositories, clones and a bare "remote" in tmp_path; a real
data dir whose pool is paused, so each committed version shows as tasks, rows and spool files
without running claude. The helpers here are shared by the other tests/test_git*.py files."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claudomator.intake import Intake
from claudomator.records import TaskDetail
from claudomator.serve import git_sources
from claudomator.sources.git import GitWatcher
from claudomator.stored import StoredSource
from tests.needs import needs
from tests.services import make_service
from tests.taskfiles import batch_yaml, scenario, task_data, task_yaml

pytestmark = needs(shutil.which("git"), "git is not installed")

DEV = "dev@example.com"


@pytest.fixture(autouse=True)
def _git_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's git configuration (signing, hooks, default branch) never leaks in."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str, email: str = DEV, check: bool = True) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", f"user.email={email}", "-c", "init.defaultBranch=main",
         "-c", "advice.detachedHead=false", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


class Repo:
    """A repository a person works in: write files, commit, push."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def init(cls, path: Path, *, bare: bool = False) -> Repo:
        path.mkdir(parents=True)
        git(path, "init", "-q", *(["--bare"] if bare else []))
        return cls(path)

    @classmethod
    def clone(cls, remote: Repo, path: Path) -> Repo:
        git(remote.path.parent, "clone", "-q", str(remote.path), str(path))
        return cls(path)

    def write(self, rel: str, text: str) -> Repo:
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return self

    def remove(self, rel: str) -> Repo:
        git(self.path, "rm", "-q", rel)
        return self

    def move(self, old: str, new: str) -> Repo:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        git(self.path, "mv", old, new)
        return self

    def commit(
        self, message: str = "change", *, email: str = DEV, key: str = "", fmt: str = "ssh"
    ) -> str:
        """Commit everything; with `key`, signed (`fmt` ssh: a private key file; openpgp: a
        fingerprint in $GNUPGHOME)."""
        signing = ["-c", f"gpg.format={fmt}", "-c", f"user.signingkey={key}"] if key else []
        git(self.path, "add", "-A")
        git(self.path, *signing, "commit", "-q", "--allow-empty", *(["-S"] if key else []),
            "-m", message, email=email)  # fmt: skip
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return git(self.path, "rev-parse", ref)

    def push(self, *, force: bool = False) -> None:
        git(self.path, "push", "-q", *(["--force"] if force else []), "origin", "HEAD:main")


def task(name: str, **fields: Any) -> str:
    return task_yaml(name, scenario("tools"), **fields)


def source_toml(path: Path, name: str = "team", **fields: Any) -> str:
    lines = ["[[sources]]", f'name = "{name}"', 'kind = "git"', f'path = "{path}"']
    for key, value in fields.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v) for v in value)}]".replace("'", '"'))
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


class World:
    """A data dir whose config.toml names git sources: the service (pool paused), its intake and
    the sources, wired as `serve` wires them, without running claude."""

    def __init__(self, home: Path, config: str) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config)
        self.open()

    def open(self) -> None:
        self.service = make_service()
        self.service.pause()
        self.intake = Intake.of(self.service)
        self.service.intake = self.intake
        self.sources = git_sources(self.service, self.intake, poll_s=60)
        self.service.recovery.run(self.intake)

    def close(self) -> None:
        self.service.intake = None
        self.service.close()

    def restart(self) -> None:
        self.close()
        self.open()

    def watcher(self, name: str = "team") -> GitWatcher:
        (found,) = [w for w in self.sources.watchers if w.source.name == name]
        return found

    def cycle(self, name: str = "team", *, fetch: bool = False) -> None:
        asyncio.run(self.watcher(name).cycle(fetch))

    def tasks(self) -> list[TaskDetail]:
        """Every task, oldest first, with its provenance."""
        rows = self.service.reader.list_tasks(limit=None)[::-1]
        found = [self.service.reader.task(t["id"]) for t in rows]
        return [t for t in found if t is not None]

    def states(self) -> list[tuple[str, str]]:
        return [(t["name"], t["state"]) for t in self.tasks()]

    def files(self, folder: str) -> list[str]:
        top = self.home / folder
        return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file())

    def source(self, name: str = "team") -> StoredSource:
        found = self.service.store.source_state(name)
        assert found is not None, f"no progress recorded on source {name}"
        return found


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A checkout with one commit (a task file that is the baseline)."""
    checkout = Repo.init(tmp_path / "checkout")
    checkout.write("tasks/old.yaml", task("old")).write("README", "hi\n").commit("start")
    return checkout


@pytest.fixture
def world(home: Path, repo: Repo) -> Iterator[World]:
    w = World(home, source_toml(repo.path, subdir="tasks"))
    w.cycle()  # the baseline
    yield w
    w.close()


# -- first sight, commits, provenance ------------------------------------------------------------


def test_baseline_does_not_run_and_a_new_commit_runs_once_with_provenance(
    world: World, repo: Repo
) -> None:
    assert world.tasks() == []
    assert world.source()["last_commit"] == repo.head()
    repo.write("tasks/team/fix.yaml", task("fix")).write("notes.yaml", task("outside"))
    sha = repo.commit("ask for a fix")
    world.cycle()
    world.cycle()
    (t,) = world.tasks()
    assert (t["name"], t["state"], t["source"], t["source_path"]) == (
        "fix", "QUEUED", "@team", "team/fix.yaml",
    )  # fmt: skip
    blob = git(repo.path, "rev-parse", f"{sha}:tasks/team/fix.yaml")
    provenance = t["provenance"]
    assert provenance is not None
    assert {k: provenance[k] for k in ("commit", "author", "path", "blob")} == {
        "commit": sha, "author": DEV, "path": "tasks/team/fix.yaml", "blob": blob,
    }  # fmt: skip
    assert provenance["committed_at"].startswith(time.strftime("%Y-"))
    assert t["spec"]["claude"]["working_dir"] == str(repo.path.resolve())
    assert world.files("queued") == ["@team/team/fix.yaml"]
    assert world.source() | {"updated_at": 0} == {
        "name": "team", "kind": "git", "last_commit": sha, "error": "", "updated_at": 0,
    }  # fmt: skip


def test_status_and_the_result_file_carry_the_provenance(world: World, repo: Repo) -> None:
    repo.write("tasks/a.yaml", task("a"))
    sha = repo.commit()
    world.cycle()
    (t,) = world.tasks()
    out = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "status", t["id"], "--json"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert f'"commit": "{sha}"' in out.stdout
    world.service.cancel(t["id"])
    result = (world.home / "done/@team/a.yaml.result.json").read_text()
    assert '"source": "@team"' in result


def test_only_committed_content_counts(world: World, repo: Repo) -> None:
    repo.write("tasks/draft.yaml", task("draft"))
    git(repo.path, "add", "tasks/draft.yaml")  # staged, not committed
    repo.write("tasks/untracked.yaml", task("untracked"))
    world.cycle()
    assert world.tasks() == []
    git(repo.path, "commit", "-q", "-m", "draft")  # only the staged file
    world.cycle()
    assert world.states() == [("draft", "QUEUED")]


def test_ingest_existing_runs_the_baseline_once(home: Path, repo: Repo) -> None:
    w = World(home, source_toml(repo.path, subdir="tasks", ingest_existing=True))
    w.cycle()
    assert w.states() == [("old", "QUEUED")]
    (old,) = w.tasks()
    assert old["provenance"] is not None and old["provenance"]["commit"] == repo.head()
    w.restart()
    w.cycle()
    assert w.states() == [("old", "QUEUED")]
    w.close()


def test_a_missing_subdir_or_branch_is_fine_until_it_appears(home: Path, tmp_path: Path) -> None:
    checkout = Repo.init(tmp_path / "empty")
    w = World(home, source_toml(checkout.path, subdir="jobs/ci"))
    w.cycle()
    assert "branch main not found" in w.source()["error"]
    checkout.write("README", "x\n").commit()
    w.cycle()  # the branch appears: its first commit is the baseline
    assert w.source()["error"] == "" and w.source()["last_commit"] == checkout.head()
    checkout.write("src/x.yaml", task("outside")).write("jobs/ci/.hidden/a.yaml", task("hidden"))
    checkout.write("jobs/ci/notes.txt", "not a task").write("jobs/ci/build.yml", task("build"))
    checkout.commit()
    w.cycle()
    assert w.states() == [("build", "QUEUED")]
    w.close()


def test_a_batch_file_in_a_subfolder(world: World, repo: Repo) -> None:
    batch = batch_yaml(
        task_data("build", scenario("tools")),
        task_data("test", scenario("tools"), depends_on=["build"]),
        defaults={"tags": ["nightly"]},
    )
    repo.write("tasks/nightly/ci/batch.yml", batch).commit()
    world.cycle()
    assert world.states() == [("build", "QUEUED"), ("test", "PENDING")]
    assert {t["source_path"] for t in world.tasks()} == {"nightly/ci/batch.yml"}
    assert world.files("queued") == ["@team/nightly/ci/batch.yml"]


# -- versions: each distinct one runs once ---------------------------------------------------------


def test_several_commits_in_one_fetch_each_version_runs_once(home: Path, tmp_path: Path) -> None:
    origin = Repo.init(tmp_path / "origin.git", bare=True)
    dev = Repo.clone(origin, tmp_path / "dev")
    dev.write("tasks/a.yaml", task("a-v1")).commit("start")
    dev.push()
    checkout = Repo.clone(origin, tmp_path / "checkout")
    w = World(home, source_toml(checkout.path, subdir="tasks", remote="origin"))
    w.cycle(fetch=True)
    dev.write("tasks/b.yaml", task("b")).commit("b")
    dev.write("tasks/a.yaml", task("a-v2")).commit("a to v2")
    dev.write("tasks/a.yaml", task("a-v3")).commit("a to v3")
    dev.write("tasks/a.yaml", task("a-v2")).commit("a back to v2")
    dev.push()
    w.cycle(fetch=True)
    assert w.states() == [("b", "QUEUED"), ("a-v2", "QUEUED"), ("a-v3", "QUEUED")]
    assert checkout.head() == dev.head()  # fast-forwarded
    assert w.source()["last_commit"] == dev.head() and w.source()["error"] == ""
    # the same version committed again later does not run again; a new one does (and replaces
    # the versions queued before it that have not started)
    dev.write("tasks/a.yaml", task("a-v3")).commit("v3 once more")
    dev.push()
    w.cycle(fetch=True)
    assert [s for _, s in w.states()] == ["QUEUED", "CANCELLED", "QUEUED"]
    dev.write("tasks/a.yaml", task("a-v4")).commit("v4")
    dev.push()
    w.cycle(fetch=True)
    assert w.states()[-1] == ("a-v4", "QUEUED")
    w.close()


def test_a_changed_file_cancels_its_previous_version_not_started(world: World, repo: Repo) -> None:
    repo.write("tasks/a.yaml", task("a-v1")).commit()
    world.cycle()
    repo.write("tasks/a.yaml", task("a-v2")).commit()
    world.cycle()
    (v1, v2) = world.tasks()
    assert (v1["state"], v1["reason"]) == (
        "CANCELLED",
        f"task file changed in commit {repo.head()[:12]}",
    )
    assert v2["state"] == "QUEUED"
    assert world.files("done") == ["@team/a.yaml", "@team/a.yaml.result.json"]
    assert world.files("queued") == ["@team/a.yaml"]


def test_a_deleted_task_file_cancels_what_has_not_started(world: World, repo: Repo) -> None:
    batch = batch_yaml(task_data("one", "x"), task_data("two", "x", depends_on=["one"]))
    repo.write("tasks/batch.yaml", batch).write("tasks/keep.yaml", task("keep")).commit()
    world.cycle()
    repo.remove("tasks/batch.yaml").commit("never mind")
    world.cycle()
    assert world.states() == [("one", "CANCELLED"), ("two", "CANCELLED"), ("keep", "QUEUED")]
    assert world.tasks()[0]["reason"].startswith("task file deleted in commit")
    assert "@team/batch.yaml.result.json" in world.files("done")


def test_added_and_deleted_in_one_pass_never_runs(world: World, repo: Repo) -> None:
    repo.write("tasks/oops.yaml", task("oops")).commit()
    repo.remove("tasks/oops.yaml").commit()
    world.cycle()
    assert world.states() == [("oops", "CANCELLED")]


def test_a_pure_rename_moves_tasks_and_does_not_run_again(world: World, repo: Repo) -> None:
    repo.write("tasks/a.yaml", task("a")).commit()
    world.cycle()
    repo.move("tasks/a.yaml", "tasks/team/renamed.yaml").commit("rename")
    world.cycle()
    (t,) = world.tasks()
    assert (t["state"], t["source_path"]) == ("QUEUED", "team/renamed.yaml")
    assert world.files("queued") == ["@team/team/renamed.yaml"]
    # a rename with edits is a new version: the old one is replaced
    repo.move("tasks/team/renamed.yaml", "tasks/b.yaml")
    repo.write("tasks/b.yaml", task("a", priority="high")).commit("rename and edit")
    world.cycle()
    assert [(t["state"], t["source_path"]) for t in world.tasks()] == [
        ("CANCELLED", "team/renamed.yaml"), ("QUEUED", "b.yaml"),
    ]  # fmt: skip


def test_a_merge_counts_as_its_diff_against_its_first_parent(world: World, repo: Repo) -> None:
    git(repo.path, "checkout", "-q", "-b", "feature")
    repo.write("tasks/feature.yaml", task("feature")).commit("on a branch")
    git(repo.path, "checkout", "-q", "main")
    repo.write("README", "changed\n").commit("meanwhile")
    world.cycle()
    assert world.tasks() == []  # the branch is not watched
    git(repo.path, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    world.cycle()
    (t,) = world.tasks()
    assert t["provenance"] is not None
    assert (t["name"], t["provenance"]["commit"]) == ("feature", repo.head())


# -- what is rejected -------------------------------------------------------------------------------


def test_invalid_yaml_is_rejected_with_the_reason_and_the_rest_runs(
    world: World, repo: Repo
) -> None:
    repo.write("tasks/bad.yaml", "name: [unclosed\n").write("tasks/good.yaml", task("good"))
    repo.write("tasks/worse.yaml", "name: x\nclaude: {instructions: y, bogus: 1}\n").commit()
    world.cycle()
    assert world.states() == [("good", "QUEUED")]
    assert world.files("rejected") == [
        "@team/bad.yaml", "@team/bad.yaml.error", "@team/worse.yaml", "@team/worse.yaml.error",
    ]  # fmt: skip
    error = (world.home / "rejected/@team/worse.yaml.error").read_text()
    assert error.startswith("@team/worse.yaml:2:") and "claude.bogus: unknown field" in error
    world.cycle()
    assert len(world.files("rejected")) == 4  # a version is looked at once


@pytest.mark.parametrize(
    ("working_dir", "rejected"),
    [("", False), ("src", False), ("../elsewhere", True), ("/tmp", True), ("escape", True)],
)
def test_working_dir_stays_inside_the_checkout(
    world: World, repo: Repo, working_dir: str, rejected: bool
) -> None:
    (repo.path / "src").mkdir()
    (repo.path.parent / "elsewhere").mkdir(exist_ok=True)
    os.symlink(repo.path.parent / "elsewhere", repo.path / "escape")  # untracked: a local link
    claude = {"working_dir": working_dir} if working_dir else {}
    repo.write("tasks/w.yaml", task("w", claude=claude)).commit()
    world.cycle()
    if rejected:
        assert world.tasks() == []
        error = (world.home / "rejected/@team/w.yaml.error").read_text()
        assert "claude.working_dir" in error and "outside the checkout" in error
    else:
        (t,) = world.tasks()
        assert t["spec"]["claude"]["working_dir"] == str((repo.path / working_dir).resolve())


def test_a_committed_symlink_is_rejected(world: World, repo: Repo) -> None:
    os.symlink("/etc/passwd", repo.path / "tasks/link.yaml")
    repo.commit()
    world.cycle()
    assert world.tasks() == []
    assert "symbolic link" in (world.home / "rejected/@team/link.yaml.error").read_text()


# -- restarts -----------------------------------------------------------------------------------


CRASH = """
import asyncio, os, sys
from claudomator.config import load_config
from claudomator.intake import Intake
from claudomator.serve import git_sources
from claudomator.service import Claudomator

service = Claudomator(load_config())
intake = Intake.of(service)
service.intake = intake
offers = []
real = intake.offer_bytes
def offer_bytes(*args, **kwargs):
    offers.append(args[1])
    if len(offers) == int(sys.argv[1]):  # the next record kills this process, as a crash would
        os.environ["CLAUDOMATOR_FAILPOINT"] = "recorded"
    return real(*args, **kwargs)
intake.offer_bytes = offer_bytes  # before the sources are wired: they are handed the callable
sources = git_sources(service, intake)
asyncio.run(sources.watchers[0].cycle())
"""


@pytest.mark.parametrize("crash_at", [1, 3, 4])
def test_a_crash_in_the_middle_loses_nothing_and_runs_nothing_twice(
    world: World, repo: Repo, crash_at: int
) -> None:
    repo.write("tasks/a.yaml", task("a")).write("tasks/b.yaml", task("b")).commit("two files")
    repo.write("tasks/c.yaml", task("c")).commit("c")
    repo.write("tasks/a.yaml", task("a2")).write("tasks/d.yaml", task("d")).commit("more")
    world.close()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, str(crash_at)], capture_output=True, timeout=60
    )
    assert crashed.returncode == -9, crashed.stderr.decode()
    world.open()  # repairs the interrupted claim, as serve does at start
    world.cycle()
    world.cycle()
    assert sorted(world.states()) == [
        ("a", "QUEUED"), ("a2", "QUEUED"), ("b", "QUEUED"), ("c", "QUEUED"), ("d", "QUEUED"),
    ]  # fmt: skip
    assert world.files("queued") == [
        "@team/a.1.yaml", "@team/a.yaml", "@team/b.yaml", "@team/c.yaml", "@team/d.yaml",
    ]  # fmt: skip
    assert world.files(".staging") == []
    assert world.source()["last_commit"] == repo.head()


def test_a_reclone_runs_nothing_again(world: World, repo: Repo, tmp_path: Path) -> None:
    repo.write("tasks/a.yaml", task("a")).commit()
    world.cycle()
    world.close()
    shutil.move(repo.path, tmp_path / "moved")
    git(tmp_path, "clone", "-q", str(tmp_path / "moved"), str(repo.path))
    world.open()
    world.cycle()
    assert world.states() == [("a", "QUEUED")]


def test_a_local_history_rewrite_is_walked_without_running_twice(world: World, repo: Repo) -> None:
    repo.write("tasks/a.yaml", task("a")).commit()
    world.cycle()
    repo.write("tasks/b.yaml", task("b"))
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-q", "--amend", "-m", "a and b")
    world.cycle()
    assert world.states() == [("a", "QUEUED"), ("b", "QUEUED")]
    git(repo.path, "reset", "-q", "--hard", "HEAD~1")
    world.cycle()
    assert world.source()["last_commit"] == repo.head() and world.source()["error"] == ""


def test_git_env_never_points_at_another_repository() -> None:
    from claudomator.sources.gitcmd import git_env

    env = git_env(
        {"GIT_DIR": "/x", "GIT_INDEX_FILE": "/i", "PATH": "/bin", "GIT_CONFIG_KEY_0": "a"}
    )
    assert env["PATH"] == "/bin" and env["GIT_OPTIONAL_LOCKS"] == "0"
    assert not {"GIT_DIR", "GIT_INDEX_FILE", "GIT_CONFIG_KEY_0"} & set(env)


def test_the_index_and_working_tree_are_left_alone(world: World, repo: Repo) -> None:
    repo.write("tasks/a.yaml", task("a")).commit()
    index = repo.path / ".git/index"
    before = index.stat().st_mtime_ns
    repo.write("README", "edited, not committed\n")
    world.cycle()
    world.cycle()
    assert index.stat().st_mtime_ns == before
    assert (repo.path / "README").read_text() == "edited, not committed\n"
    assert not (repo.path / ".git/index.lock").exists()


def test_a_checkout_that_is_not_there_yet_is_reported_then_read(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "later"
    inner = path / "src"
    w = World(home, source_toml(path) + source_toml(inner, name="inner"))
    w.cycle()
    assert w.source()["error"] == f"{path}: no such folder"
    path.mkdir()
    w.cycle()
    assert "not a git repository" in w.source()["error"]
    path.rmdir()
    Repo.init(path).write("a.yaml", task("a")).write("src/b.yaml", task("b")).commit()
    w.cycle()
    assert w.source()["error"] == "" and w.source()["last_commit"]
    w.cycle("inner")
    assert (
        w.source("inner")["error"] == f"{inner} is inside the checkout {path}, not its top folder"
    )
    w.close()
