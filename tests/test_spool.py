from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from claudomator.config import load_config
from claudomator.intake import Intake
from claudomator.mirror import desired_folder
from claudomator.service import Claudomator
from claudomator.spool import Spool, is_task_file_name, is_watched_path, with_suffix_number
from claudomator.state import State
from claudomator.task import TaskSpec
from claudomator.workdir import confine
from tests.services import make_service
from tests.taskfiles import batch_yaml, task_data, task_yaml

S = State


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a.yaml", True),
        ("A.YML", True),
        ("batch.yml", True),
        (".a.yaml", False),
        ("a.yaml~", False),
        ("a.yaml.swp", False),
        (".a.yaml.swp", False),
        ("#a.yaml#", False),
        ("4913", False),
        ("a.yaml.tmp", False),
        ("a.yaml.part", False),
        ("a.json", False),
        ("yaml", False),
        (".yaml", False),
        ("notes.txt", False),
    ],
)
def test_task_file_names(name: str, ok: bool) -> None:
    assert is_task_file_name(name) is ok


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        ("a.yaml", True),
        ("team/x/a.yaml", True),
        ("@git/a.yaml", False),
        ("team/@x/a.yaml", True),
        (".cache/a.yaml", False),
        ("team/.tmp/a.yaml", False),
    ],
)
def test_watched_paths(rel: str, ok: bool) -> None:
    assert is_watched_path(rel) is ok


@pytest.mark.parametrize(
    ("rel", "n", "out"), [("a.yaml", 1, "a.1.yaml"), ("x/b.yml", 2, "x/b.2.yml"), ("c", 1, "c.1")]
)
def test_suffix_numbers(rel: str, n: int, out: str) -> None:
    assert with_suffix_number(rel, n) == out


@pytest.mark.parametrize(
    ("tasks", "folder"),
    [
        ([], "done"),
        ([(S.QUEUED, 0)], "queued"),
        ([(S.PENDING, 0), (S.QUEUED, 0)], "queued"),
        ([(S.RUNNING, 1), (S.PENDING, 0)], "running"),
        ([(S.COMPLETED, 1), (S.QUEUED, 0)], "running"),
        ([(S.QUEUED, 1)], "running"),  # a retry waiting for its back-off
        ([(S.COMPLETED, 1), (S.CANCELLED, 0)], "done"),
        ([(S.CANCELLED, 0)], "done"),
    ],
)
def test_desired_folder(tasks: list[tuple[State, int]], folder: str) -> None:
    assert desired_folder(tasks) == folder


def test_place_never_overwrites(tmp_path: Path) -> None:
    spool = Spool(load_config(home=tmp_path, env={}).data_dir)
    spool.ensure()
    (spool.folder("done") / "a.yaml").write_text("old")
    (spool.folder("done") / "a.1.yaml.result.json").write_text("{}")
    src = tmp_path / "src.yaml"
    src.write_text("new")
    assert spool.place(src, "done", "a.yaml") == "a.2.yaml"
    assert (spool.folder("done") / "a.yaml").read_text() == "old"
    assert (spool.folder("done") / "a.2.yaml").read_text() == "new"
    assert not src.exists()


def test_being_written_sees_an_open_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    with open(path, "w") as f:
        f.write("name: x\n")
        f.flush()
        assert Spool.being_written(path) is True
    assert Spool.being_written(path) is False


@pytest.fixture
def service(home: Path) -> Iterator[Claudomator]:
    with make_service() as svc:
        svc.intake = Intake.of(svc)
        yield svc


def drop(service: Claudomator, rel: str, text: str) -> Path:
    path = service.config.data_dir.root / "inbox" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / ("." + path.name)
    tmp.write_text(text)
    os.rename(tmp, path)
    return path


def test_intake_claims_valid_and_rejects_invalid(service: Claudomator) -> None:
    intake = service.intake
    assert intake is not None
    drop(service, "team/a.yaml", task_yaml("a"))
    drop(service, "b.yaml", "name: b\nclaude: {instructions: x, permission_mode: bogus}\n")
    drop(service, "c.yml", task_yaml("c"))
    (service.config.data_dir.root / "inbox" / "notes.txt").write_text("not a task")
    intake.sweep()
    root = service.config.data_dir.root
    assert (root / "queued/team/a.yaml").is_file() and (root / "queued/c.yml").is_file()
    assert (root / "rejected/b.yaml").is_file()
    error = (root / "rejected/b.yaml.error").read_text()
    assert error.startswith("inbox/b.yaml:2:44: claude.permission_mode: 'bogus' is not one of")
    assert (root / "inbox/notes.txt").is_file()
    assert sorted(t["name"] for t in service.reader.list_tasks()) == ["a", "c"]
    assert {t["state"] for t in service.reader.list_tasks()} == {"QUEUED"}
    assert list((root / ".staging").iterdir()) == []


def test_same_name_twice_gets_a_suffix(service: Claudomator) -> None:
    assert service.intake is not None
    drop(service, "a.yaml", task_yaml("first"))
    service.intake.sweep()
    drop(service, "a.yaml", task_yaml("second"))
    service.intake.sweep()
    root = service.config.data_dir.root / "queued"
    assert "first" in (root / "a.yaml").read_text() and "second" in (root / "a.1.yaml").read_text()


def test_symlink_and_fifo_are_moved_to_rejected_never_read(
    service: Claudomator, tmp_path: Path
) -> None:
    assert service.intake is not None
    inbox = service.config.data_dir.root / "inbox"
    target = tmp_path / "secret.yaml"
    target.write_text(task_yaml("linked"))
    os.symlink(target, inbox / "link.yaml")
    os.mkfifo(inbox / "pipe.yaml")
    service.intake.sweep()
    rejected = service.config.data_dir.root / "rejected"
    assert (rejected / "link.yaml").is_symlink() and target.is_file()
    assert (rejected / "pipe.yaml").exists() and not (rejected / "pipe.yaml").is_file()
    assert "not a regular file" in (rejected / "link.yaml.error").read_text()
    assert service.reader.list_tasks() == []


def test_a_file_being_written_waits(service: Claudomator) -> None:
    assert service.intake is not None
    path = service.config.data_dir.root / "inbox" / "slow.yaml"
    with open(path, "w") as f:
        f.write("name: slow\n")
        f.flush()
        service.intake.sweep()
        assert path.exists() and service.intake.pending == {"slow.yaml"}
        f.write("claude: {instructions: x}\n")
    service.intake.recheck_pending()
    assert not path.exists() and service.intake.pending == set()
    assert [t["name"] for t in service.reader.list_tasks()] == ["slow"]


def test_deleting_from_queued_cancels(service: Claudomator) -> None:
    assert service.intake is not None
    drop(
        service,
        "a.yaml",
        batch_yaml(task_data("x", "x"), task_data("y", "y")),
    )
    service.intake.sweep()
    (service.config.data_dir.root / "queued/a.yaml").unlink()
    service.intake.deleted("queued", ["a.yaml"])
    assert {t["state"] for t in service.reader.list_tasks()} == {"CANCELLED"}
    assert {t["reason"] for t in service.reader.list_tasks()} == {"task file deleted from queued/"}


def test_repair_finishes_an_interrupted_claim(service: Claudomator) -> None:
    intake = service.intake
    assert intake is not None
    # a crash right after the rename into staging: the row says staging, the file is there
    drop(service, "a.yaml", task_yaml("a"))
    service.store.add_files([("F1", "inbox", "a.yaml", "F1-a.yaml")])
    assert intake.spool.claim("a.yaml", "F1") is not None
    # a crash after recording the row, before the rename: the inbox file is still there
    drop(service, "b.yaml", task_yaml("b"))
    service.store.add_files([("F2", "inbox", "b.yaml", "F2-b.yaml")])
    # a file in queued/ the store never heard of
    (service.config.data_dir.root / "queued" / "c.yaml").write_text(task_yaml("c"))
    service.recovery.run(intake)
    names = sorted(t["name"] for t in service.reader.list_tasks())
    assert names == ["a", "b", "c"]
    root = service.config.data_dir.root
    assert sorted(p.name for p in (root / "queued").iterdir()) == ["a.yaml", "b.yaml", "c.yaml"]
    assert list((root / ".staging").iterdir()) == []


def test_result_file_when_all_final(service: Claudomator) -> None:
    assert service.intake is not None
    drop(service, "a.yaml", task_yaml("a"))
    service.intake.sweep()
    (task,) = service.reader.list_tasks()
    service.cancel(task["id"])
    root = service.config.data_dir.root
    result = json.loads((root / "done/a.yaml.result.json").read_text())
    assert result["file"] == "a.yaml"
    assert result["tasks"][0]["state"] == "CANCELLED" and result["tasks"][0]["cost_usd"] == 0


def spec_with(wd: str | None) -> TaskSpec:
    claude: dict[str, object] = {"instructions": "x"}
    if wd is not None:
        claude["working_dir"] = wd
    return TaskSpec.model_validate({"name": "t", "claude": claude})


def test_confine_in_a_checkout(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "escape").symlink_to(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    real = os.path.realpath
    assert confine(spec_with(None), repo, ()).claude.working_dir == real(repo)
    assert confine(spec_with("sub"), repo, ()).claude.working_dir == real(repo / "sub")
    assert confine(spec_with(str(other)), repo, (str(other),)).claude.working_dir == real(other)
    for bad in ("..", "sub/../..", "escape", str(other), "/etc"):
        with pytest.raises(ValueError, match="outside the checkout or allowed_roots"):
            confine(spec_with(bad), repo, ())


def test_confine_elsewhere_only_with_allowed_roots(tmp_path: Path) -> None:
    inside = tmp_path / "ok"
    inside.mkdir()
    assert confine(spec_with("/etc"), None, ()).claude.working_dir == "/etc"  # no roots: no limit
    assert confine(spec_with(str(inside)), None, (str(tmp_path),)).claude.working_dir == str(inside)
    with pytest.raises(ValueError, match="outside allowed_roots"):
        confine(spec_with("/etc"), None, (str(tmp_path),))


def test_a_source_copy_runs_once_per_version(service: Claudomator, tmp_path: Path) -> None:
    intake = service.intake
    assert intake is not None
    repo = tmp_path / "repo"
    repo.mkdir()
    data = task_yaml("from-git").encode()
    prov = {"commit": "c1", "author": "a@example.com", "path": "tasks/a.yaml"}
    assert intake.offer_bytes(
        "team", "tasks/a.yaml", data, provenance=prov, base_dir=repo, version=("b1", "c1")
    )
    assert not intake.offer_bytes(
        "team", "tasks/a.yaml", data, provenance=prov, base_dir=repo, version=("b1", "c2")
    )
    (task,) = service.reader.list_tasks()
    full = service.task(task["id"])
    assert full["source"] == "@team" and full["source_path"] == "tasks/a.yaml"
    assert full["provenance"] == prov
    assert full["spec"]["claude"]["working_dir"] == os.path.realpath(repo)
    root = service.config.data_dir.root
    assert (root / "queued/@team/tasks/a.yaml").read_bytes() == data
    bad = task_yaml("x", "y", claude={"working_dir": "../.."}).encode()
    assert intake.offer_bytes(
        "team", "tasks/b.yaml", bad, provenance=prov, base_dir=repo, version=("b2", "c1")
    )
    error = (root / "rejected/@team/tasks/b.yaml.error").read_text()
    assert error.startswith("@team/tasks/b.yaml: claude.working_dir: '../..' resolves to")
    assert list((root / ".staging").iterdir()) == []
