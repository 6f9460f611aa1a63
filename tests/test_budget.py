"""Money limits beyond a task's own: per tag per day, per batch file, and the retry breaker —
tables of `budget`, then each end to end against the fake claude (a tag's budget across two
nodes on PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from claudomator.budget import Limit, TagRound, memo, money_left, over_tags
from claudomator.errors import TaskFileError
from claudomator.service import Claudomator
from claudomator.state import FINAL_STATES
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile, parse_bytes
from claudomator.workspace import Admitted
from tests.services import make_service, serve_until
from tests.taskfiles import scenario


def test_over_tags() -> None:
    caps = {"nightly": 5.0, "team-a": 20.0}
    assert over_tags(caps, {"nightly": 4.99, "team-a": 1.0}) == {}
    assert over_tags(caps, {"nightly": 5.0}) == {
        "nightly": "waiting for budget: tag nightly spent $5.00 of $5.00 today"
    }


@pytest.mark.parametrize(
    ("own", "limits", "left", "reached"),
    [
        (None, [], None, ""),
        (2.0, [], 2.0, ""),
        (None, [Limit("batch budget", 5.0, 4.0)], 1.0, ""),
        (0.5, [Limit("batch budget", 5.0, 4.0)], 0.5, ""),  # the least of all
        (2.0, [Limit("batch budget", 5.0, 4.0), Limit("tag x budget today", 3.0, 2.75)], 0.25, ""),
        (2.0, [Limit("batch budget", 5.0, 5.0)], 0.0, "batch budget $5.00 reached ($5.0000)"),
        (2.0, [Limit("tag x budget today", 1.0, 0.99995)], 0.0,
         "tag x budget today $1.00 reached ($1.0000)"),  # less than claude can be given
    ],
)  # fmt: skip
def test_money_left(
    own: float | None, limits: list[Limit], left: float | None, reached: str
) -> None:
    got_left, got_reached = money_left(own, limits)
    assert got_reached == reached
    assert got_left == (pytest.approx(left) if left is not None else None)


class Everything:
    def consider(self, candidates: Any, slots: int) -> Admitted:
        return Admitted(list(candidates)[:slots], {})


def test_tag_round_holds_back_a_tag_over_its_budget() -> None:
    configs = {"a": '{"tags": ["nightly"]}', "b": '{"tags": []}', "c": '{"tags": ["x", "nightly"]}'}
    reads: list[list[str]] = []

    def read(ids: Any) -> dict[str, str]:
        reads.append(list(ids))
        return {i: configs[i] for i in ids}

    cached = memo(read)
    round_ = TagRound(Everything(), cached, {"nightly": "waiting for budget: tag nightly …"})
    verdict = round_.consider(["a", "b", "c"], 2)
    assert verdict.allowed == ["b"]  # the others wait; the slots go to the next task
    assert set(verdict.waits) == {"a", "c"}
    cached(["a", "b"])
    assert reads == [["a", "b", "c"]]  # read once per admission


def test_a_batch_budget_must_be_money() -> None:
    body = b"budget_usd: lots\ntasks:\n  - {name: a, claude: {instructions: x}}\n"
    with pytest.raises(TaskFileError) as e:
        parse_bytes(body, "b.yaml")
    assert "b.yaml:1:" in str(e.value) and "budget_usd: expected a number of dollars > 0" in str(
        e.value
    )
    ok = parse_bytes(body.replace(b"lots", b"2.5"), "b.yaml")
    assert ok.budget_usd == 2.5 and ok.is_batch


# -- end to end --------------------------------------------------------------------------------


def spec(name: str, folder: Path, tags: list[str] | None = None, **fields: Any) -> TaskSpec:
    claude = {"instructions": "do it", "working_dir": str(folder), "env": {"FAKE_CLAUDE_COST": "0.06"},
              **fields.pop("claude", {})}  # fmt: skip
    return TaskSpec.model_validate({"name": name, "claude": claude, "tags": tags or [], **fields})


def final(service: Claudomator, ids: list[str]) -> bool:
    return all(service.task(i)["state"] in FINAL_STATES for i in ids)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_a_tag_over_its_budget_today_waits_while_others_go_on(
    fake_claude: Path, home: Path, work: Path
) -> None:
    flags = {"claude.working_dir": str(work), "max_concurrency": 1,
             "budget.tags": {"nightly": 0.10}}  # fmt: skip
    with make_service(flags=flags) as service:
        first, second, third, other = service.submit(
            ParsedFile("t.yaml", [spec("n1", work, ["nightly"]), spec("n2", work, ["nightly"]),
                                  spec("n3", work, ["nightly"]), spec("free", work)], True, []),
            source="test",
        )  # fmt: skip
        serve_until(service, lambda: final(service, [first, second, other]))
        assert service.task(first)["state"] == "COMPLETED"
        # what was left of the tag's money, $0.04, was the second one's hard limit
        hit = service.task(second)
        assert hit["state"] == "BUDGET_EXCEEDED", hit["reason"]
        assert service.task(other)["state"] == "COMPLETED"  # other tasks go on
        waiting = service.task(third)
        assert waiting["state"] == "QUEUED" and waiting["executions"] == []
        assert waiting["reason"].startswith("waiting for budget: tag nightly spent $0.1")


def test_a_batch_budget_is_a_hard_limit_over_its_tasks(
    fake_claude: Path, home: Path, work: Path, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    record.mkdir()
    flags = {"claude.working_dir": str(work), "max_concurrency": 1}
    text = "budget_usd: 0.10\ntasks:\n" + "".join(
        f"  - {{name: b{i}, claude: {{instructions: do it, working_dir: '{work}', "
        f"env: {{FAKE_CLAUDE_COST: '0.06', FAKE_CLAUDE_RECORD: '{record}'}}}}}}\n"
        for i in range(3)
    )
    with make_service(flags=flags) as service:
        ids = service.submit(parse_bytes(text.encode(), "b.yaml"), source="test")
        serve_until(service, lambda: final(service, ids))
        tasks = [service.task(i) for i in ids]
        assert [t["state"] for t in tasks] == ["COMPLETED", "BUDGET_EXCEEDED", "BUDGET_EXCEEDED"]
        assert tasks[2]["reason"].startswith("batch budget $0.10 reached ($0.1")
        assert len(list(record.glob("*.json"))) == 2  # the third never started claude
        assert sum(t["cost_usd"] for t in tasks) < 0.10 + 0.06  # at most one call's overshoot


def test_the_retry_breaker_stops_automatic_retries(
    fake_claude: Path, home: Path, work: Path
) -> None:
    retry = {"max_attempts": 5, "backoff": 0, "max_cost_usd": 0.10}
    task = spec("costly", work, claude={"instructions": scenario("error_during_execution", cost=0.06)},
                retry=retry)  # fmt: skip
    with make_service(flags={"claude.working_dir": str(work)}) as service:
        (task_id,) = service.submit(ParsedFile("t.yaml", [task], False, []), source="test")
        serve_until(service, lambda: final(service, [task_id]))
        done = service.task(task_id)
        assert done["state"] == "FAILED" and len(done["executions"]) == 2
        assert done["reason"].endswith(
            "no retry: its executions spent $0.12 of retry.max_cost_usd $0.10"
        )


def test_a_tags_budget_is_cluster_wide(
    fake_claude: Path, tmp_path: Path, work: Path, postgresql_url: str
) -> None:
    flags = {"claude.working_dir": str(work), "database_url": postgresql_url,
             "budget.tags": {"shared-tag": 0.05}}  # fmt: skip
    with (
        make_service(tmp_path / "a", flags=flags) as a,
        make_service(tmp_path / "b", flags=flags) as b,
    ):
        (spent,) = a.submit(ParsedFile("t.yaml", [spec("on-a", work, ["shared-tag"])], False, []),
                            source="test")  # fmt: skip
        serve_until(a, lambda: final(a, [spent]))
        (later,) = b.submit(ParsedFile("t.yaml", [spec("on-b", work, ["shared-tag"])], False, []),
                            source="test")  # fmt: skip
        until = time.monotonic() + 1.0
        serve_until(b, lambda: time.monotonic() > until)
        held = b.task(later)
        assert held["state"] == "QUEUED" and held["executions"] == []
        # what node a spent (its last call may overshoot the $0.05 it was given) holds b back
        assert held["reason"].startswith("waiting for budget: tag shared-tag spent $0.0")
        assert held["reason"].endswith("of $0.05 today")
