"""The watchdogs: a table of `watchdog.deadline`/`hung`, then each end to end against the fake
claude (a stall after one line; no system/init line at all)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claudomator.records import TaskDetail
from claudomator.run import Run
from claudomator.service import Claudomator
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from claudomator.watchdog import Watch, deadline, hung, next_look
from tests.services import make_service
from tests.taskfiles import scenario

BOTH = Watch(startup_s=120, stall_s=600)


@pytest.mark.parametrize(
    ("watch", "last_line_at", "initialized", "now", "which", "due", "verdict"),
    [
        (BOTH, None, False, 119.9, "no_start", 120, None),  # starting: only the startup watch
        (BOTH, None, False, 120, "no_start", 120, "no_start"),
        (BOTH, 5.0, False, 121, "no_start", 120, "no_start"),  # lines, but no init line yet
        (BOTH, 3.0, True, 500, "stall", 603, None),  # from the init line on: the stall watch
        (BOTH, 3.0, True, 603, "stall", 603, "stall"),
        (BOTH, 400.0, True, 700, "stall", 1000, None),  # a line came: the watch moves on
        (Watch(0, 600), None, False, 599, "stall", 600, None),  # no startup watch: from spawn
        (Watch(0, 600), None, False, 600, "stall", 600, "stall"),
        (Watch(120, 0), 1.0, True, 10**9, None, math.inf, None),  # no stall watch
        (Watch(0, 0), None, False, 10**9, None, math.inf, None),  # none at all
    ],
)
def test_deadline_and_hung(
    watch: Watch,
    last_line_at: float | None,
    initialized: bool,
    now: float,
    which: str | None,
    due: float,
    verdict: str | None,
) -> None:
    seen = {"spawned_at": 0.0, "last_line_at": last_line_at, "initialized": initialized}
    assert deadline(watch, **seen) == (which, due)  # type: ignore[arg-type]
    assert hung(watch, now=now, **seen) == verdict  # type: ignore[arg-type]
    assert next_look(watch, **seen) <= due  # type: ignore[arg-type]


def test_before_the_init_line_a_shorter_stall_watch_is_looked_at_first() -> None:
    # no line has come yet; the stall watch (10 s) is shorter than the startup one (60 s): an
    # init line may come meanwhile and the stall then be due, so the runner looks at 10 s
    watch = Watch(startup_s=60, stall_s=10)
    assert next_look(watch, spawned_at=0.0, last_line_at=None, initialized=False) == 10
    assert next_look(watch, spawned_at=0.0, last_line_at=None, initialized=True) == 10
    assert next_look(watch, spawned_at=0.0, last_line_at=4.0, initialized=True) == 14


@pytest.fixture
def service(fake_claude: Path, home: Path, tmp_path: Path) -> Iterator[Claudomator]:
    work = tmp_path / "work"
    work.mkdir()
    flags = {
        "claude.working_dir": str(work),
        "claude.startup_timeout": "3s",  # the fake begins in ~50 ms; a loaded CI machine is slower
        "runner.interrupt_grace": "2s",
        "runner.terminate_grace": "1s",
    }
    with make_service(flags=flags) as svc:
        yield svc


def run(service: Claudomator, spec: TaskSpec) -> TaskDetail:
    (task_id,) = service.submit(
        ParsedFile("t.yaml", [spec], False, []), source="test", dispatcher=service.identity
    )
    asyncio.run(asyncio.wait_for(Run(service, [task_id]).until_final(), 60))
    return service.task(task_id)


def spec(instructions: str, **fields: object) -> TaskSpec:
    return TaskSpec.model_validate(
        {"name": "t", "claude": {"instructions": instructions}, **fields}
    )


def test_a_stall_after_one_line_is_stopped_as_timed_out(service: Claudomator) -> None:
    began = time.monotonic()
    task = run(service, spec(scenario("stall", sleep_s=60), stall_timeout="1s"))
    assert task["state"] == "TIMED_OUT" and task["reason"] == "stalled: no output for 1s"
    assert time.monotonic() - began < 20  # not the sleep, not the 30-minute timeout
    (ex,) = task["executions"]
    assert ex["session_id"]  # it had begun: its init line was read


def test_no_init_line_fails_with_the_tail_of_stderr(service: Claudomator) -> None:
    began = time.monotonic()
    task = run(
        service, spec(scenario("no_init", sleep_s=60, message="still waiting for the keychain"))
    )
    assert task["state"] == "FAILED"
    assert (
        task["reason"] == "no start: no system/init line within 3s: still waiting for the keychain"
    )
    assert time.monotonic() - began < 20


def test_a_silence_under_the_stall_limit_is_not_a_stall(service: Claudomator) -> None:
    task = run(service, spec(scenario("sleep", sleep_s=2), stall_timeout="6s"))
    assert task["state"] == "COMPLETED", task["reason"]
