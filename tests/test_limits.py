"""Concurrency limits: the table of `limits.admit`, then a burst of 50 tasks on 8 slots whose
limits are never exceeded (checked from the executions' start and end times), on SQLite and
with two nodes racing on PostgreSQL."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from claudomator.limits import Caps, admit, limits_of
from claudomator.service import Claudomator
from claudomator.state import FINAL_STATES
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.services import make_service, serve_until
from tests.taskfiles import scenario

CAPS = Caps(tags={"gpu": 1, "deploy": 2}, models={"opus": 2}, default_model="sonnet")


def config(tags: list[str] = [], model: str | None = None, key: str | None = None) -> str:  # noqa: B006
    claude: dict[str, Any] = {"instructions": "x", **({"model": model} if model else {})}
    return json.dumps({"tags": tags, "claude": claude, "concurrency_key": key})


@pytest.mark.parametrize(
    ("spec", "limits"),
    [
        (config(), {}),
        (config(["gpu", "other"]), {"tag:gpu": ("gpu", 1)}),
        (config(model="claude-opus-4-8"), {"model:opus": ("model opus", 2)}),
        (config(model="OPUS"), {"model:opus": ("model opus", 2)}),
        (config(key="repo-a"), {"key:repo-a": ("concurrency_key repo-a", 1)}),
    ],
)
def test_limits_of(spec: str, limits: dict[str, tuple[str, int]]) -> None:
    assert limits_of(spec, CAPS) == limits


GPU = {"tag:gpu": ("gpu", 1)}
KEY = {"key:r": ("concurrency_key r", 1)}


@pytest.mark.parametrize(
    ("candidates", "running", "allowed", "waits"),
    [
        ([("a", GPU), ("b", {}), ("c", GPU)], {}, ["a", "b"], {"c": "waiting for limit gpu 1/1"}),
        ([("a", GPU), ("b", {})], {"tag:gpu": 1}, ["b"], {"a": "waiting for limit gpu 1/1"}),
        ([("a", KEY), ("b", KEY), ("c", {})], {}, ["a", "c"],
         {"b": "waiting for limit concurrency_key r 1/1"}),
        ([("a", {**GPU, **KEY})], {"key:r": 1}, [], {"a": "waiting for limit concurrency_key r 1/1"}),
        ([], {"tag:gpu": 5}, [], {}),
    ],
)  # fmt: skip
def test_admit(candidates: Any, running: dict[str, int], allowed: list[str], waits: Any) -> None:
    assert admit(candidates, running) == (allowed, waits)


def burst(work: Path) -> list[TaskSpec]:
    """50 tasks: a third on gpu (1 at a time), a third on deploy (2), some on one key."""
    tasks = []
    for i in range(50):
        tags = ["gpu"] if i % 3 == 0 else ["deploy"] if i % 3 == 1 else []
        data: dict[str, Any] = {
            "name": f"t{i}",
            "tags": tags,
            "claude": {
                "instructions": scenario("sleep", sleep_s=0.15),
                "working_dir": str(work / str(i)),
            },
        }
        if i % 5 == 0:
            data["concurrency_key"] = "repo"
        (work / str(i)).mkdir(parents=True)
        tasks.append(TaskSpec.model_validate(data))
    return tasks


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    return max(itertools.accumulate(d for _, d in edges), default=0)


def epoch(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso).timestamp()


def check(service: Claudomator, ids: list[str]) -> None:
    tasks = [service.task(i) for i in ids]
    assert all(t["state"] == "COMPLETED" for t in tasks), [t["reason"] for t in tasks]

    def spans(pick: Any) -> list[tuple[float, float]]:
        found = []
        for t in tasks:
            if pick(t):
                (ex,) = t["executions"]
                found.append((epoch(ex["started_at"]), epoch(ex["finished_at"])))
        return found

    assert most_at_once(spans(lambda t: "gpu" in t["tags"])) == 1
    assert most_at_once(spans(lambda t: "deploy" in t["tags"])) <= 2
    assert most_at_once(spans(lambda t: t["spec"].get("concurrency_key") == "repo")) == 1
    assert most_at_once(spans(lambda t: not t["tags"])) > 1  # the rest go on beside them


LIMITS = {"max_concurrency": 8, "limits.tags": {"gpu": 1, "deploy": 2}}


def test_a_burst_never_exceeds_its_limits(fake_claude: Path, home: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    with make_service(flags={"claude.working_dir": str(tmp_path), **LIMITS}) as service:
        ids = service.submit(ParsedFile("b.yaml", burst(work), True, []), source="test")
        serve_until(service, lambda: all(service.task(i)["state"] in FINAL_STATES for i in ids), 90)
        check(service, ids)


def test_two_racing_nodes_never_exceed_the_limits(
    fake_claude: Path, tmp_path: Path, postgresql_url: str
) -> None:
    work = tmp_path / "work"
    flags = {"claude.working_dir": str(tmp_path), "database_url": postgresql_url, **LIMITS}
    with (
        make_service(tmp_path / "a", flags={**flags, "max_concurrency": 4}) as a,
        make_service(tmp_path / "b", flags={**flags, "max_concurrency": 4}) as b,
    ):
        ids = a.submit(ParsedFile("b.yaml", burst(work), True, []), source="test")

        def done() -> bool:
            return all(t["state"] in FINAL_STATES for t in a.tasks(ids=ids, limit=None))

        other = threading.Thread(target=serve_until, args=(b, done, 90))
        other.start()
        serve_until(a, done, 90)
        other.join(100)
        check(a, ids)
        nodes = {t["executions"][0]["owner"]["node"] for t in (a.task(i) for i in ids)}
        assert len(nodes) == 2  # both nodes took tasks
