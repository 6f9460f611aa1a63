"""Faults of the data dir's disk under a running `serve`: the disk fills up (the data dir on a
small tmpfs), and the spool folders become read-only (read-only bind mounts). serve says so
once, loses nothing, runs nothing twice, and carries on by itself once the fault is gone."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.needs import unavailable
from tests.poll import wait_for
from tests.test_serve import Server, executions_started, server, task

__all__ = ["server"]  # the fixture, shared with test_serve

SPOOL = ("queued", "running", "done", "rejected")


@pytest.fixture(scope="module", autouse=True)
def _can_mount(tmp_path_factory: pytest.TempPathFactory) -> None:
    """These tests mount filesystems: root with the right to mount (not every container has
    it). Tried once; the skip (outside CI) says what mount answered."""
    probe = tmp_path_factory.mktemp("mount-probe")
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if tried.returncode != 0:
        unavailable(f"cannot mount a tmpfs here (uid {os.getuid()}): {tried.stderr.strip()}")
    umount(probe)


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


@pytest.fixture
def small_disk(home: Path) -> Iterator[Path]:
    """The data dir on a 48 MiB tmpfs of its own."""
    home.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(home))
    try:
        yield home
    finally:
        umount(home)


def fill(path: Path) -> None:
    """Write `path` until the disk says it is full."""
    with open(path, "wb", buffering=0) as f:
        for size in (2**20, 2**12, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)


def warnings(srv: Server, event: str) -> int:
    return sum(1 for line in srv.log_path.read_bytes().splitlines() if event.encode() in line)


def test_a_full_disk_stops_starts_and_loses_nothing(small_disk: Path, server: Server) -> None:
    server.start()
    server.drop("first.yaml", task("first", turns=1))
    wait_for(lambda: server.files()["done"] == ["first.yaml", "first.yaml.result.json"])
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)  # so that the files land before the disk is full
    for n in range(3):
        server.drop(f"t{n}.yaml", task(f"t{n}", turns=1))
    filler = small_disk / "filler"
    fill(filler)
    with pytest.raises(OSError) as full:
        (small_disk / "probe").write_bytes(b"x" * 8192)
    assert full.value.errno == errno.ENOSPC
    server.proc.send_signal(signal.SIGCONT)
    time.sleep(3)  # several dispatch rounds and a sweep with no room
    assert server.proc.poll() is None
    assert executions_started(server) == 1  # nothing started without room for its log
    assert warnings(server, "disk.full") == 1
    filler.unlink()
    wait_for(lambda: warnings(server, "disk.recovered") == 1, timeout=10)
    wait_for(
        lambda: (
            len(server.files()["done"]) == 8
            and {t["state"] for t in server.tasks()} == {"COMPLETED"}
        ),
        timeout=30,
    )
    assert server.stop() == 0
    tasks = server.tasks()
    assert sorted(str(t["name"]) for t in tasks) == ["first", "t0", "t1", "t2"]
    assert [t["attempts"] for t in tasks] == [1, 1, 1, 1]
    assert executions_started(server) == 4
    files = server.files()
    assert files["inbox"] == files["queued"] == files["running"] == files[".staging"] == []


def test_read_only_spool_folders_hold_up_only_the_folders(server: Server) -> None:
    server.start()
    server.drop("first.yaml", task("first", turns=1))
    wait_for(lambda: server.files()["done"] == ["first.yaml", "first.yaml.result.json"])
    folders = [server.home / f for f in SPOOL]
    try:
        for folder in folders:
            mount("--bind", str(folder), str(folder))
            mount("-o", "remount,ro,bind", str(folder))
        with pytest.raises(OSError):
            (server.home / "queued" / "probe").write_text("x")
        for n in range(2):
            server.drop(f"t{n}.yaml", task(f"t{n}", turns=1))
        # the store is the truth: the tasks run although their files cannot move
        wait_for(
            lambda: (
                len(server.tasks()) == 3 and {t["state"] for t in server.tasks()} == {"COMPLETED"}
            ),
            timeout=20,
        )
        assert server.files()["done"] == ["first.yaml", "first.yaml.result.json"]
        staged = sorted(n.split("-", 1)[1] for n in server.files()[".staging"])
        assert staged == ["t0.yaml", "t1.yaml"]  # recorded, waiting to be placed
        time.sleep(1.5)  # a sweep or two meets the same fault
        assert warnings(server, "staging.waits") <= 1 and warnings(server, "intake.waits") <= 1
    finally:
        for folder in reversed(folders):
            umount(folder)
    wait_for(lambda: len(server.files()["done"]) == 6, timeout=10)
    files = server.files()
    assert files["done"] == sorted(
        ["first.yaml", "first.yaml.result.json", "t0.yaml", "t0.yaml.result.json", "t1.yaml",
         "t1.yaml.result.json"]
    )  # fmt: skip
    assert files["queued"] == files["running"] == files[".staging"] == []
    assert server.stop() == 0
    assert executions_started(server) == 3 and len(server.tasks()) == 3
