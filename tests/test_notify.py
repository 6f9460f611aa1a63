"""Webhook notifications: the [[notify]] config, the decisions (tables), and deliveries to a local
receiver on 127.0.0.1 with signatures, retries and back-off, never holding up the hub."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from claudomator.config import load_config
from claudomator.config_notify import NOTIFY_DEFAULT_STATES, NotifyTarget
from claudomator.errors import ConfigError
from claudomator.events import Hub
from claudomator.notify import (
    Notification,
    Notifier,
    rate_limit_notification,
    signature,
    task_notification,
)
from claudomator.records import Event, Execution
from claudomator.store.db import NewTask
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from claudomator.workspace import WorkspaceRecord
from tests.apiserver import Receiver
from tests.needs import needs
from tests.services import make_service, run_pool
from tests.taskfiles import checked_task
from tests.test_api_diff import BRANCH, changed_branch, diff_of, end_with_workspace

pytestmark = pytest.mark.timeout(30)


# -- config ------------------------------------------------------------------------------------


def test_notify_tables(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[server]\nport = 9000\n\n"
        '[[notify]]\nurl = "https://hooks.example/a/SECRET-PATH"\nsecret = "s3cret"\n\n'
        '[[notify]]\nurl = "http://127.0.0.1:9999/b"\nstates = ["COMPLETED", "RATE_LIMITED"]\n'
    )
    config = load_config(home=tmp_path, env={})
    first, second = config.notify
    assert first == NotifyTarget(
        "https://hooks.example/a/SECRET-PATH", NOTIFY_DEFAULT_STATES, "s3cret"
    )
    assert second.states == ("COMPLETED", "RATE_LIMITED") and second.secret == ""
    assert config.server_port == 9000
    shown = dict((k, v) for k, v, _ in config.effective())
    assert shown["notify[0]"].startswith("https://hooks.example/...")
    assert "SECRET-PATH" not in repr(config) + str(shown) and "s3cret" not in repr(config) + str(
        shown
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('notify = "x"\n', "notify: write each receiver as a [[notify]] table"),
        ("[[notify]]\nstates = []\n", "notify[0].url: None is not an http(s) URL"),
        ('[[notify]]\nurl = "ftp://x/y"\n', "notify[0].url: 'ftp://x/y' is not an http(s) URL"),
        (
            '[[notify]]\nurl = "http://x"\nurll = 1\n',
            "notify[0].urll: unknown key (did you mean 'url'?)",
        ),
        (
            '[[notify]]\nurl = "http://x"\nstates = ["DONE"]\n',
            "notify[0].states: 'DONE' is not one of",
        ),
        ('[[notify]]\nurl = "http://x"\nstates = ["QUEUED"]\n', "'QUEUED' is not one of"),
        ('[[notify]]\nurl = "http://x"\nstates = 3\n', "notify[0].states: 3 is not a list"),
        ('[[notify]]\nurl = "http://x"\nsecret = 1\n', "notify[0].secret: not a string"),
        ('[[notify]]\nurl = "http://x"\nstates = []\n', "notify[0].states: empty"),
    ],
)
def test_notify_errors_name_the_receiver_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(home=tmp_path, env={})
    assert message in info.value.message


# -- decisions ---------------------------------------------------------------------------------

FAILED: Event = {"id": 7, "type": "task.finished", "task_id": "T1", "name": "build", "state": "FAILED",
          "reason": "error_max_turns", "attempts": 1, "cost_usd": 0.5, "at": 1_700_000_000.0}  # fmt: skip
REQUEUED: Event = {"id": 8, "type": "task.queued", "task_id": "T1", "state": "QUEUED"}


@pytest.mark.parametrize(
    ("event", "later", "state"),
    [
        (FAILED, [], "FAILED"),
        (FAILED, [REQUEUED], None),  # an automatic retry follows: not the end
        (FAILED, [{**REQUEUED, "task_id": "T2"}], "FAILED"),
        ({**FAILED, "state": "COMPLETED", "reason": ""}, [], "COMPLETED"),
        ({**FAILED, "type": "task.queued"}, [], None),
        ({"id": 1, "type": "pool.changed", "paused": True}, [], None),
    ],
)
def test_task_notification(event: Event, later: list[Event], state: str | None) -> None:
    note = task_notification(event, later)
    assert (note.state if note else None) == state
    if note is not None:
        assert note.payload["task"]["id"] == "T1" and note.payload["event_id"] == 7
        assert note.payload["text"].startswith("claudomator: task 'build' (T1) ")


HEAD = "0123456789abcdef0123456789abcdef01234567"
WORKTREE = {"mode": "worktree", "path": "/w", "branch": BRANCH, "head": HEAD, "node": "n1"}


@pytest.mark.parametrize(
    ("workspace", "branch", "head", "text"),
    [
        (None, None, None, "claudomator: task 'build' (T1) FAILED: error_max_turns"),
        ({"mode": "shared", "path": "/w", "branch": None, "head": None}, None, None, "max_turns"),
        (WORKTREE, BRANCH, HEAD, f"max_turns (branch {BRANCH} at 0123456789ab)"),
        ({**WORKTREE, "head": None}, BRANCH, None, f"max_turns (branch {BRANCH})"),
        ({"mode": "worktree", "path": "/w"}, None, None, "max_turns"),  # fields left out
    ],
)
def test_a_task_notification_says_the_branch_and_head(
    workspace: dict[str, Any] | None, branch: str | None, head: str | None, text: str
) -> None:
    found = task_notification({**FAILED, "execution_id": "E1"}, [], {"workspace": workspace})
    assert found is not None
    payload = found.payload
    assert (payload["execution_id"], payload["branch"], payload["head"]) == ("E1", branch, head)
    assert payload["text"].endswith(text)


VERIFY = {"passed": False, "log_path": "/x/verify.log",
          "commands": [{"command": "pytest -q", "exit_code": 1, "duration_ms": 9, "timed_out": False}]}  # fmt: skip
DENIAL = {"tool_name": "Write", "tool_use_id": "toolu_1", "tool_input": {"file_path": "/x/a.md"}}


@pytest.mark.parametrize(
    ("execution", "verify", "denials"),
    [
        (None, None, []),  # none read
        ({"workspace": None, "verify": None, "permission_denials": []}, None, []),
        ({"workspace": None, "verify": VERIFY, "permission_denials": [DENIAL]}, VERIFY, [DENIAL]),
    ],
)
def test_a_task_notification_says_what_verify_said_and_what_was_denied(
    execution: dict[str, Any] | None, verify: dict[str, Any] | None, denials: list[Any]
) -> None:
    found = task_notification({**FAILED, "execution_id": "E1"}, [], execution)
    assert found is not None
    assert found.payload["verify"] == verify and found.payload["permission_denials"] == denials


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("until", "known", "notified"),
    [
        (NOW + 60, 0.0, True),  # a pause starts
        (NOW + 120, NOW + 60, False),  # it is extended: already told
        (NOW - 1, 0.0, False),  # in the past
        (0, 0.0, False),  # resumed
        (NOW + 60, NOW - 5, True),  # the last one is over: a new pause
    ],
)
def test_rate_limit_notification(until: float, known: float, notified: bool) -> None:
    event: Event = {
        "id": 3,
        "type": "pool.changed",
        "rate_limited_until": until,
        "rate_limit_reason": "429",
    }
    note = rate_limit_notification(event, known, NOW)
    assert (note is not None) is notified
    if note:
        assert note.state == "RATE_LIMITED" and note.payload["until"]


def test_daily_budget_is_told_once_a_day() -> None:
    spent = [4.0]
    notifier = Notifier([NotifyTarget("http://127.0.0.1:1/x")], budget=lambda: (spent[0], 5.0))
    assert notifier.decide([FAILED], NOW) != [] and [
        n.state for n in notifier.decide([FAILED], NOW)
    ] == ["FAILED"]
    spent[0] = 5.0
    states = [n.state for n in notifier.decide([FAILED], NOW)]
    assert states == ["FAILED", "DAILY_BUDGET_REACHED"]
    assert [n.state for n in notifier.decide([FAILED], NOW + 60)] == ["FAILED"]
    assert "DAILY_BUDGET_REACHED" in [n.state for n in notifier.decide([FAILED], NOW + 86_400)]


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) == "sha256=" + expected


# -- deliveries --------------------------------------------------------------------------------


def note(state: str = "FAILED") -> Notification:
    event: Event = {**FAILED, "state": state}
    found = task_notification(event)
    assert found is not None
    return found


async def deliver(
    target: NotifyTarget, notification: Notification, **kwargs: Any
) -> tuple[bool, Notifier]:
    notifier = Notifier([target], backoff_s=0.01, timeout_s=2, **kwargs)
    async with httpx.AsyncClient() as client:
        return await notifier.deliver(client, target, notification), notifier


def test_delivery_signed_and_retried_until_it_lands() -> None:
    with Receiver(answers=[500, 503]) as receiver:
        target = NotifyTarget(receiver.url, NOTIFY_DEFAULT_STATES, "topsecret")
        with capture_logs() as logs:
            ok, notifier = asyncio.run(deliver(target, note()))
        calls = receiver.wait(3)
    assert ok and notifier.stats == {"sent": 1, "failed": 0, "dropped": 0}
    assert [status for _, _, status in calls] == [500, 503, 200]
    headers, body, _ = calls[-1]
    assert headers["content-type"] == "application/json"
    assert headers["x-claudomator-event"] == "FAILED"
    assert hmac.compare_digest(
        headers["x-claudomator-signature"],
        "sha256=" + hmac.new(b"topsecret", body, hashlib.sha256).hexdigest(),
    )
    assert len({h["x-claudomator-delivery"] for h, _, _ in calls}) == 1  # one id for the retries
    payload = json.loads(body)
    assert payload["state"] == "FAILED" and payload["task"]["name"] == "build"
    assert [e["event"] for e in logs] == ["notify.retry", "notify.retry", "notify.sent"]
    logged = json.dumps(logs)
    assert "secret-path" not in logged and "topsecret" not in logged  # URLs shown without path


def test_a_client_error_is_not_retried() -> None:
    with Receiver(answers=[400]) as receiver:
        ok, notifier = asyncio.run(deliver(NotifyTarget(receiver.url), note()))
        assert len(receiver.wait(1)) == 1
        time.sleep(0.1)
        assert len(receiver.calls) == 1
    assert not ok and notifier.stats["failed"] == 1


def test_an_unreachable_receiver_is_given_up_after_the_attempts() -> None:
    with Receiver() as receiver:
        url = receiver.url
    t0 = time.monotonic()
    ok, notifier = asyncio.run(deliver(NotifyTarget(url), note(), attempts=3))
    assert not ok and notifier.stats["failed"] == 1
    assert time.monotonic() - t0 < 5


def test_from_the_hub_to_the_receiver_without_holding_anyone_up() -> None:
    """Events go in with a non-blocking publish; a slow receiver delays only its own queue, and a
    full queue drops (and counts) rather than waits."""

    async def scenario(receiver: Receiver, slow: Receiver) -> Notifier:
        hub = Hub()
        notifier = Notifier(
            [
                NotifyTarget(receiver.url, ("FAILED", "COMPLETED")),
                NotifyTarget(slow.url, ("TIMED_OUT",)),
            ],
            backoff_s=0.01,
            maxsize=12,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(notifier.run(hub, stop))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        for i in range(20):
            hub.publish({**FAILED, "id": 300 + i, "task_id": f"S{i}", "state": "TIMED_OUT"})
        for i in range(10):
            hub.publish({**FAILED, "id": 100 + i, "task_id": f"T{i}"})
        hub.publish({**FAILED, "id": 200, "task_id": "R", "state": "FAILED"})
        hub.publish({**REQUEUED, "id": 201, "task_id": "R"})  # retried: no notification
        hub.publish({**FAILED, "id": 202, "task_id": "C", "state": "COMPLETED"})
        assert time.monotonic() - t0 < 0.05  # publishing never waits
        await asyncio.to_thread(receiver.wait, 11)
        assert time.monotonic() - t0 < 1  # the slow receiver (0.15 s each) held up no one else
        stop.set()
        await asyncio.wait_for(running, 10)
        return notifier

    with Receiver() as receiver, Receiver(delay_s=0.15) as slow:
        notifier = asyncio.run(scenario(receiver, slow))
        payloads = [json.loads(body) for _, body, _ in receiver.calls]
        slow_calls = len(slow.calls)
    assert sorted(p["task"]["id"] for p in payloads) == sorted([f"T{i}" for i in range(10)] + ["C"])
    assert notifier.stats["dropped"] >= 20 - 12 - 1  # the slow receiver's queue overflowed
    assert notifier.stats["sent"] == 11 + slow_calls


def test_no_receivers_means_nothing_runs() -> None:
    async def scenario() -> None:
        stop, hub = asyncio.Event(), Hub()
        running = asyncio.create_task(Notifier([]).run(hub, stop))
        await asyncio.sleep(0.05)
        # it waits for the stop without listening to anything or starting a worker
        assert not running.done() and not hub._subs
        assert {t.get_name() for t in asyncio.all_tasks()} & {"notify:0"} == set()
        hub.publish({"type": "task.finished", "state": "FAILED"})
        stop.set()
        await asyncio.wait_for(running, 2)

    asyncio.run(scenario())


@needs(shutil.which("git"), "git is not installed")
def test_the_ended_executions_branch_and_head_reach_the_receiver(tmp_path: Path) -> None:
    """From the store's record of an execution that ended in a worktree, through the notifier's
    decision (reading the record), to the receiver's body."""
    with make_service(tmp_path / "data", env={}) as service:
        spec = json.dumps({"name": "build", "claude": {"instructions": "x"}})
        task = NewTask("build", spec, "normal", 1, [], [], "{}", "test", "build.yaml")
        service.store.add_tasks([task])
        executions = service.config.data_dir.executions
        records: list[WorkspaceRecord] = []

        def workspace(execution_id: str) -> WorkspaceRecord:
            records.append(changed_branch(tmp_path, diff_of(executions, execution_id)))
            return records[0]

        done = end_with_workspace(service.store, executions, workspace)

        with Receiver() as receiver:
            target = NotifyTarget(receiver.url, ("COMPLETED",))
            notifier = Notifier([target], execution_of=service.execution)
            [found] = notifier.decide(done.events, time.time())
            ok, _ = asyncio.run(deliver(target, found))
            [(_, body, _)] = receiver.wait(1)
    payload = json.loads(body)
    assert ok and payload["state"] == "COMPLETED" and payload["task"]["id"] == done.task_id
    assert payload["execution_id"] == done.execution_id
    assert (payload["branch"], payload["head"]) == (BRANCH, records[0].head)


def test_an_execution_that_cannot_be_read_leaves_the_notification_without_it() -> None:
    def broken(execution_id: str) -> dict[str, Any] | None:
        raise OSError("database is gone")

    notifier = Notifier([NotifyTarget("http://127.0.0.1:1/x")], execution_of=broken)
    with capture_logs() as logs:
        [found] = notifier.decide([{**FAILED, "execution_id": "E1"}], NOW)
    assert (found.payload["branch"], found.payload["head"]) == (None, None)
    assert (found.payload["verify"], found.payload["permission_denials"]) == (None, [])
    assert [e["event"] for e in logs] == ["notify.execution_unread"]
    asked: list[str] = []

    def counted(execution_id: str) -> dict[str, Any] | None:
        asked.append(execution_id)
        return None

    notifier.execution_of = counted
    assert notifier.decide([FAILED, REQUEUED], NOW) == [] and asked == []  # a retry: not read


def test_the_ended_executions_verify_and_denials_reach_the_receiver(
    fake_claude: Path, tmp_path: Path
) -> None:
    """A real task through the pool (a verify round, a denied write in each), then the
    notification of its end: the last execution's verify and denials, read once."""
    work = tmp_path / "work"
    work.mkdir()
    flags = {"claude.working_dir": str(work)}
    with make_service(tmp_path / "data", flags=flags) as service:
        events: list[Event] = []
        service.publisher.listeners.append(events.append)
        data = checked_task("checked", tmp_path / "sessions")
        (task_id,) = service.submit(
            ParsedFile("checked.yaml", [TaskSpec.model_validate(data)], False, []), source="test"
        )
        run_pool(service, [task_id])
        first, last = sorted(service.task(task_id)["executions"], key=lambda ex: ex["id"])
        asked: list[str] = []

        def execution_of(execution_id: str) -> Execution:
            asked.append(execution_id)
            return service.execution(execution_id)

        with Receiver() as receiver:
            target = NotifyTarget(receiver.url, ("COMPLETED",))
            notifier = Notifier([target], execution_of=execution_of)
            found = [n for e in events for n in notifier.decide([e], time.time())]
            assert [n.payload["task"]["id"] for n in found] == [task_id]
            ok, _ = asyncio.run(deliver(target, found[0]))
            [(_, body, _)] = receiver.wait(1)
    assert asked == [last["id"]]  # one read, of the execution that ended
    payload = json.loads(body)
    assert ok and payload["state"] == "COMPLETED" and payload["execution_id"] == last["id"]
    assert payload["verify"] == last["verify"] and payload["verify"]["passed"] is True
    assert [c["exit_code"] for c in payload["verify"]["commands"]] == [0, 0]
    assert payload["permission_denials"] == last["permission_denials"]
    (denial,) = payload["permission_denials"]
    assert denial["tool_name"] == "Bash" and "NOTES.md" in denial["tool_input"]["command"]
    assert first["verify"] is not None and first["verify"]["passed"] is False
