"""The billing lane and the auth gate: which billing a run uses (tables), the endings that pause
the pool (tables), and both end to end against the fake claude, on SQLite and with two
services sharing PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from claudomator.billing import Credentials, allows, billed, credentials, refusal
from claudomator.notify import Notifier
from claudomator.records import Event, TaskDetail
from claudomator.schedule import pool_gate
from claudomator.service import Claudomator
from claudomator.state import FINAL_STATES
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from tests.services import make_service, serve_until
from tests.taskfiles import scenario


@pytest.mark.parametrize(
    ("source", "bills"),
    [
        ("ANTHROPIC_API_KEY", "api_key"),
        ("apiKeyHelper", "api_key"),
        ("none", "subscription"),
        ("user", "unknown"),  # values the CLI may grow: shown, never trusted
        ("oauth", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_billed(source: str | None, bills: str) -> None:
    assert billed(source) == bills


@pytest.mark.parametrize(
    ("lane", "source", "refused"),
    [
        ("any", "ANTHROPIC_API_KEY", None),
        ("any", "weird", None),
        ("subscription", "none", None),
        ("subscription", "ANTHROPIC_API_KEY",
         "billing lane: expected subscription, claude would bill ANTHROPIC_API_KEY"),
        ("subscription", "oauth", "billing lane: expected subscription, claude would bill 'oauth'"),
        ("subscription", None, "billing lane: expected subscription, claude would bill an unknown "
         "source (init line without apiKeySource)"),
        ("api_key", "ANTHROPIC_API_KEY", None),
        ("api_key", "none",
         "billing lane: expected api_key, claude would bill a subscription login (apiKeySource none)"),
    ],
)  # fmt: skip
def test_refusal(lane: Any, source: str | None, refused: str | None) -> None:
    assert refusal(lane, source) == refused


def test_credentials_before_a_run(tmp_path: Path) -> None:
    login = tmp_path / "cfg"
    login.mkdir()
    (login / ".credentials.json").write_text("{}")
    assert credentials({"ANTHROPIC_API_KEY": "sk-x", "CLAUDE_CONFIG_DIR": str(login)}) == (
        Credentials("api_key", "ANTHROPIC_API_KEY")  # a key wins over a login, headless
    )
    assert credentials({"CLAUDE_CODE_USE_BEDROCK": "1"}).billed == "api_key"
    assert credentials({"CLAUDE_CODE_OAUTH_TOKEN": "t"}) == Credentials(
        "subscription", "CLAUDE_CODE_OAUTH_TOKEN"
    )
    assert credentials({"CLAUDE_CONFIG_DIR": str(login)}) == Credentials(
        "subscription", str(login / ".credentials.json")
    )
    assert credentials({"HOME": str(tmp_path / "nobody")}) == Credentials("none", "")
    assert allows("any", Credentials("none", "")) and not allows("api_key", Credentials("none", ""))


def test_a_guard_pause_holds_run_too() -> None:
    guarded = {"paused": True, "reason": "authentication failed: …", "guard": "auth"}
    by_hand = {"paused": True, "reason": "paused by hand"}
    kw: dict[str, Any] = {"now": 0.0, "spent_today": 0.0, "daily_budget": 0.0}
    assert not pool_gate(guarded, by_hand=False, **kw).open  # type: ignore[arg-type]
    assert pool_gate(by_hand, by_hand=False, **kw).open  # type: ignore[arg-type]


def test_notifications_for_guards() -> None:
    notifier = Notifier([])

    def pool(id_: int, **state: Any) -> Event:
        return {"id": id_, "type": "pool.changed", "at": 1.0, **state}  # type: ignore[typeddict-item]

    auth = notifier.decide(
        [pool(1, paused=True, guard="auth", reason="authentication failed: x")], 2
    )
    assert [n.state for n in auth] == ["AUTH_FAILED"]
    assert auth[0].payload["type"] == "pool.auth_failed" and "x" in auth[0].payload["text"]
    assert notifier.decide([pool(2, paused=True, guard="auth", reason="again")], 3) == []  # told
    assert notifier.decide([pool(3, paused=False, guard="")], 4) == []
    lane = notifier.decide([pool(4, paused=True, guard="billing", reason="billing lane: y")], 5)
    assert [n.state for n in lane] == ["BILLING_LANE"]


# -- end to end --------------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def spec(name: str, instructions: str, folder: Path) -> TaskSpec:
    claude = {"instructions": instructions, "working_dir": str(folder)}
    return TaskSpec.model_validate({"name": name, "claude": claude})


def submit(service: Claudomator, *specs: TaskSpec) -> list[str]:
    return service.submit(ParsedFile("t.yaml", list(specs), len(specs) > 1, []), source="test")


def final(service: Claudomator, ids: Sequence[str]) -> list[TaskDetail]:
    return [service.task(i) for i in ids]


@pytest.mark.parametrize(
    ("instructions", "said"),
    [
        (scenario("api_error", status=401), "api_error 401: Invalid API key"),
        (scenario("not_logged_in"), "Not logged in · Please run /login"),
    ],
)
def test_an_auth_failure_pauses_the_pool_and_requeues_the_task(
    fake_claude: Path, home: Path, tmp_path: Path, instructions: str, said: str
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    flags = {"claude.working_dir": str(tmp_path), "max_concurrency": 2}
    with make_service(flags=flags) as service:
        # a long task already running when the failure comes, and one waiting behind
        slow, failing, waiting = submit(
            service,
            spec("slow", scenario("sleep", sleep_s=1.5), other),
            spec("fails", instructions, tmp_path),
            spec("waits", scenario("success"), tmp_path),
        )

        def settled() -> bool:
            slow_state = service.task(slow)["state"]
            return slow_state in FINAL_STATES and bool(service.status()["pool"]["paused"])

        serve_until(service, settled)
        assert service.task(slow)["state"] == "COMPLETED"  # running tasks finish normally
        task = service.task(failing)
        assert task["state"] == "QUEUED" and said in task["reason"], task["reason"]
        assert task["attempts"] == 0 and task["requeues"] == 1  # no attempt used
        gate = service.gate()
        assert not gate.open and gate.reason.startswith("authentication failed: ")
        assert "claudomator resume" in gate.reason and gate.until is None  # no reset time
        held = service.task(waiting)  # its slot came free after the pause: nothing starts
        assert held["state"] == "QUEUED" and held["executions"] == []
        service.resume()
        assert service.gate().open


@pytest.mark.parametrize(
    ("lane", "source", "said"),
    [
        ("subscription", None, "expected subscription, claude would bill ANTHROPIC_API_KEY"),
        ("api_key", "none", "expected api_key, claude would bill a subscription login"),
        ("subscription", "oauth-next", "expected subscription, claude would bill 'oauth-next'"),
    ],
)
def test_a_run_outside_the_billing_lane_is_stopped_at_its_init_line(
    fake_claude: Path,
    home: Path,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    lane: str,
    source: str | None,
    said: str,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-stray-key")  # a stray key: metered billing
    flags = {"claude.working_dir": str(work), "claude.billing": lane}
    params: dict[str, Any] = {"sleep_s": 30, **({"api_key_source": source} if source else {})}
    with make_service(flags=flags) as service:
        (task_id,) = submit(service, spec("lane", scenario("sleep", **params), work))
        began = time.monotonic()
        serve_until(service, lambda: service.task(task_id)["state"] in FINAL_STATES)
        assert time.monotonic() - began < 5  # not the 30 s the fake would have slept
        task = service.task(task_id)
        assert task["state"] == "FAILED" and task["attempts"] == 1
        assert task["reason"].startswith(f"billing lane: {said}"), task["reason"]
        assert task["executions"][0]["cost_usd"] == 0  # stopped before its first API call
        gate = service.gate()
        assert not gate.open and gate.reason.startswith("billing lane: ")
        assert "sk-stray-key" not in gate.reason


@pytest.mark.parametrize("source", ["none", "ANTHROPIC_API_KEY"])
def test_the_lane_lets_its_own_billing_through(
    fake_claude: Path, home: Path, work: Path, source: str
) -> None:
    lane = "subscription" if source == "none" else "api_key"
    flags = {"claude.working_dir": str(work), "claude.billing": lane}
    with make_service(flags=flags) as service:
        (task_id,) = submit(service, spec("ok", scenario("success", api_key_source=source), work))
        serve_until(service, lambda: service.task(task_id)["state"] in FINAL_STATES)
        assert service.task(task_id)["state"] == "COMPLETED"
        assert service.gate().open


def test_the_auth_pause_is_cluster_wide(
    fake_claude: Path, tmp_path: Path, work: Path, postgresql_url: str
) -> None:
    flags = {"claude.working_dir": str(work), "database_url": postgresql_url}
    with (
        make_service(tmp_path / "a", flags=flags) as a,
        make_service(tmp_path / "b", flags=flags) as b,
    ):
        submit(a, spec("fails", scenario("api_error", status=401), work))
        serve_until(a, lambda: bool(a.status()["pool"]["paused"]))
        gate = b.gate()  # the other node, on its own data dir
        assert not gate.open and gate.reason.startswith("authentication failed: ")
        (later,) = submit(b, spec("later", scenario("success"), work))
        until = time.monotonic() + 1.0
        serve_until(b, lambda: time.monotonic() > until)  # b's pool, a second long
        assert b.task(later)["state"] == "QUEUED" and b.task(later)["executions"] == []
        b.resume()
        assert a.gate().open  # resumed on one node: on all
