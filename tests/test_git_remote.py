"""A git source with a remote: fetched, fast-forwarded, never reset; a bare repository in tmp_path
stands for the remote, a clone for a person pushing to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_git import Repo, World, _git_isolated, git, source_toml, task

__all__ = ["_git_isolated"]  # the autouse fixture, in force here too


@dataclass
class Remote:
    origin: Repo
    dev: Repo  # a person who pushes
    checkout: Repo  # what claudomator watches
    world: World


@pytest.fixture
def remote(home: Path, tmp_path: Path) -> Iterator[Remote]:
    origin = Repo.init(tmp_path / "origin.git", bare=True)
    dev = Repo.clone(origin, tmp_path / "dev")
    dev.write("tasks/old.yaml", task("old")).commit("start")
    dev.push()
    checkout = Repo.clone(origin, tmp_path / "checkout")
    world = World(home, source_toml(checkout.path, subdir="tasks", remote="origin"))
    world.cycle(fetch=True)
    yield Remote(origin, dev, checkout, world)
    world.close()


def test_pushed_commits_are_fetched_fast_forwarded_and_run(remote: Remote) -> None:
    remote.dev.write("tasks/a.yaml", task("a")).commit()
    remote.dev.push()
    remote.world.cycle(fetch=True)
    assert remote.world.states() == [("a", "QUEUED")]
    assert remote.checkout.head() == remote.dev.head()
    assert (remote.checkout.path / "tasks/a.yaml").read_text() == task("a")
    assert git(remote.checkout.path, "status", "--porcelain") == ""


def test_amend_and_force_push_is_refused_and_nothing_is_reset(remote: Remote) -> None:
    dev, checkout, world = remote.dev, remote.checkout, remote.world
    dev.write("tasks/a.yaml", task("a")).commit("a")
    dev.push()
    world.cycle(fetch=True)
    ingested = checkout.head()
    dev.write("tasks/b.yaml", task("b"))
    git(dev.path, "add", "-A")
    git(dev.path, "commit", "-q", "--amend", "-m", "a and b")
    dev.push(force=True)
    world.cycle(fetch=True)
    error = world.source()["error"]
    assert error.startswith("refused: origin/main") and "never resets" in error
    assert checkout.head() == ingested and not (checkout.path / "tasks/b.yaml").exists()
    assert world.states() == [("a", "QUEUED")]
    world.cycle(fetch=True)  # refused again, still nothing reset
    assert checkout.head() == ingested and world.source()["error"] == error
    # a person reconciles by hand; the amended commit is then walked (a's version ran already)
    git(checkout.path, "reset", "-q", "--hard", "origin/main")
    world.cycle(fetch=True)
    assert world.states() == [("a", "QUEUED"), ("b", "QUEUED")]
    assert world.source()["error"] == ""


def test_a_dirty_checkout_is_not_fast_forwarded_until_it_is_clean(remote: Remote) -> None:
    dev, checkout, world = remote.dev, remote.checkout, remote.world
    (checkout.path / "tasks/old.yaml").write_text("edited by a person\n")
    dev.write("tasks/a.yaml", task("a")).commit()
    dev.push()
    before = checkout.head()
    world.cycle(fetch=True)
    assert "uncommitted changes" in world.source()["error"]
    assert checkout.head() == before and world.states() == []
    assert (checkout.path / "tasks/old.yaml").read_text() == "edited by a person\n"
    git(checkout.path, "checkout", "--", "tasks/old.yaml")
    world.cycle(fetch=True)
    assert world.states() == [("a", "QUEUED")] and world.source()["error"] == ""


def test_local_commits_not_yet_pushed_run_and_are_no_problem(remote: Remote) -> None:
    remote.checkout.write("tasks/local.yaml", task("local")).commit()
    remote.world.cycle(fetch=True)
    assert remote.world.states() == [("local", "QUEUED")]
    assert remote.world.source()["error"] == ""


def test_a_branch_checked_out_nowhere_is_moved_by_its_ref_alone(remote: Remote) -> None:
    dev, checkout, world = remote.dev, remote.checkout, remote.world
    git(checkout.path, "switch", "-q", "-c", "work")
    checkout.write("scratch.txt", "a person's work\n")
    dev.write("tasks/a.yaml", task("a")).commit()
    dev.push()
    world.cycle(fetch=True)
    assert world.states() == [("a", "QUEUED")]
    assert checkout.head("main") == dev.head()
    assert git(checkout.path, "branch", "--show-current") == "work"
    assert not (checkout.path / "tasks/a.yaml").exists()
    assert (checkout.path / "scratch.txt").read_text() == "a person's work\n"


def test_a_fetch_that_fails_is_reported_and_the_rest_goes_on(remote: Remote) -> None:
    remote.origin.path.rename(remote.origin.path.with_name("gone.git"))
    remote.checkout.write("tasks/local.yaml", task("local")).commit()
    remote.world.cycle(fetch=True)
    assert remote.world.source()["error"].startswith("git fetch in ")
    assert remote.world.states() == [("local", "QUEUED")]
    remote.origin.path.with_name("gone.git").rename(remote.origin.path)
    remote.world.cycle(fetch=True)
    assert remote.world.source()["error"] == ""


def test_a_branch_checked_out_in_another_worktree_is_left_alone(remote: Remote) -> None:
    dev, checkout, world = remote.dev, remote.checkout, remote.world
    git(checkout.path, "switch", "-q", "-c", "work")
    git(checkout.path, "worktree", "add", "-q", str(checkout.path.parent / "linked"), "main")
    dev.write("tasks/a.yaml", task("a")).commit()
    dev.push()
    before = checkout.head("main")
    world.cycle(fetch=True)
    assert "checked out in another worktree" in world.source()["error"]
    assert checkout.head("main") == before and world.states() == []


def test_a_bare_repository_people_push_to(home: Path, tmp_path: Path) -> None:
    origin = Repo.init(tmp_path / "origin.git", bare=True)
    dev = Repo.clone(origin, tmp_path / "dev")
    dev.write("README", "x\n").commit()
    dev.push()
    world = World(home, source_toml(origin.path))
    world.cycle()
    dev.write("a.yaml", task("a")).commit()
    dev.push()
    world.cycle()
    (t,) = world.tasks()
    assert t["spec"]["claude"]["working_dir"] == str(origin.path.resolve())
    world.close()
