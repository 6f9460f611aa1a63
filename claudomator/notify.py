"""Webhook notifications: a JSON POST to each `[[notify]]` receiver when a task ends in a state it
asked for, or when the pool needs attention (paused for a rate limit, daily budget reached).

Never in the pool's way: events come from a hub subscription (publishing never waits), each
receiver has its own bounded queue and worker, and a delivery is retried with back-off, then
given up and logged. A failure that will be retried automatically is not notified: its last one
is. URLs are logged without their path (chat webhooks keep their secret there); secrets never.

A task's notification says which execution ended and, when it ran in a worktree, the branch and
the head commit it left, what its verify commands said and the permissions claude was denied
(`execution_of` reads them from the execution's record, once per notification: the event that
the record was committed with is published only after the commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import structlog

from claudomator import __version__
from claudomator.config_notify import (
    AUTH_FAILED,
    BILLING_LANE,
    DAILY_BUDGET_REACHED,
    RATE_LIMITED,
    NotifyTarget,
)
from claudomator.events import Hub, Subscription
from claudomator.records import Event

log = structlog.get_logger("claudomator.notify")

SIGNATURE_HEADER = "X-Claudomator-Signature"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
Budget = Callable[[], tuple[float, float]]  # (spent today, daily budget; 0 = none)
# an execution id -> its record (`records.Execution`; None: none recorded)
ExecutionOf = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Notification:
    state: str  # a final task state, RATE_LIMITED, DAILY_BUDGET_REACHED, AUTH_FAILED, BILLING_LANE
    payload: dict[str, Any]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def ends_task(event: Event, later: Sequence[Event] = ()) -> bool:
    """Whether `event` is a task's end worth telling: a `task.finished` that no `later` event
    (published with it) sends straight back to the queue, since an automatic retry is not the
    end."""
    if event.get("type") != "task.finished":
        return False
    task_id = event.get("task_id")
    return not any(e.get("type") == "task.queued" and e.get("task_id") == task_id for e in later)


def task_notification(
    event: Event, later: Sequence[Event] = (), execution: Mapping[str, Any] | None = None
) -> Notification | None:
    """A `task.finished` event as a notification (unless `ends_task` says it is no end), with
    the branch and head of the ended execution's `workspace` (null when it has none), its
    `verify` (null when none ran) and its `permission_denials` (claude's, as it reported them)."""
    if not ends_task(event, later):
        return None
    task_id = event.get("task_id")
    state, name, reason = event.get("state", ""), event.get("name", ""), event.get("reason") or ""
    ended = execution or {}
    workspace = ended.get("workspace") or {}
    branch = workspace.get("branch") or None
    head = workspace.get("head") or None
    text = f"claudomator: task {name!r} ({task_id}) {state}" + (f": {reason}" if reason else "")
    if branch:
        text += f" (branch {branch}" + (f" at {head[:12]})" if head else ")")
    return Notification(
        state,
        {
            "type": "task.finished",
            "state": state,
            "event_id": event.get("id"),
            "at": _iso(event.get("at")),
            "task": {
                "id": task_id,
                "name": name,
                "state": state,
                "reason": reason,
                "attempts": event.get("attempts"),
                "cost_usd": event.get("cost_usd"),
            },
            "execution_id": event.get("execution_id") or None,
            "branch": branch,
            "head": head,
            "verify": ended.get("verify"),
            "permission_denials": list(ended.get("permission_denials") or []),
            "text": text,
        },
    )


def rate_limit_notification(event: Event, limited_until: float, now: float) -> Notification | None:
    """A `pool.changed` event that starts a rate-limit pause (not one that extends it)."""
    until = float(event.get("rate_limited_until") or 0)
    if event.get("type") != "pool.changed" or until <= now or limited_until > now:
        return None
    reason = event.get("rate_limit_reason") or "rate limited"
    return Notification(
        RATE_LIMITED,
        {
            "type": "pool.rate_limited",
            "state": RATE_LIMITED,
            "event_id": event.get("id"),
            "at": _iso(event.get("at")),
            "until": _iso(until),
            "reason": reason,
            "text": f"claudomator: pool paused, {reason}",
        },
    )


def guard_notification(event: Event, guarded: str) -> Notification | None:
    """A `pool.changed` event that pauses the pool for a guard (`guarded`: the guard before)."""
    guard = str(event.get("guard") or "")
    if event.get("type") != "pool.changed" or not guard or guard == guarded:
        return None
    state = AUTH_FAILED if guard == "auth" else BILLING_LANE
    reason = str(event.get("reason") or guard)
    return Notification(
        state,
        {
            "type": f"pool.{state.lower()}",
            "state": state,
            "event_id": event.get("id"),
            "at": _iso(event.get("at")),
            "reason": reason,
            "text": f"claudomator: pool paused until resumed, {reason}",
        },
    )


def budget_notification(spent: float, budget: float, now: float) -> Notification:
    return Notification(
        DAILY_BUDGET_REACHED,
        {
            "type": "budget.daily_reached",
            "state": DAILY_BUDGET_REACHED,
            "at": _iso(now),
            "spent_usd": round(spent, 6),
            "daily_budget_usd": budget,
            "text": f"claudomator: today's spend ${spent:.2f} reached the daily budget "
            f"${budget:.2f}; nothing new starts until tomorrow",
        },
    )


def signature(secret: str, body: bytes) -> str:
    """The X-Claudomator-Signature value: sha256= and the HMAC-SHA256 of the body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    """Turns hub events into deliveries to the configured receivers."""

    def __init__(
        self,
        targets: Sequence[NotifyTarget],
        *,
        budget: Budget | None = None,
        execution_of: ExecutionOf | None = None,
        attempts: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 10.0,
        maxsize: int = 1000,
    ) -> None:
        self.targets = list(targets)
        self.budget = budget
        self.execution_of = execution_of
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.queues: list[asyncio.Queue[Notification | None]] = [
            asyncio.Queue(maxsize) for _ in self.targets
        ]
        self.stats = {"sent": 0, "failed": 0, "dropped": 0}
        self._limited_until = 0.0
        self._guarded = ""  # the guard the pool was last paused for ("" none)
        self._budget_day: date | None = None

    def decide(self, batch: Sequence[Event], now: float) -> list[Notification]:
        """What a batch of events (published together, in order) calls for."""
        out = []
        for i, event in enumerate(batch):
            later = batch[i + 1 :]
            if ends_task(event, later):
                execution = self._execution(event.get("execution_id") or "")
                if (note := task_notification(event, later, execution)) is not None:
                    out.append(note)
            if event.get("type") == "pool.changed":
                if (note := rate_limit_notification(event, self._limited_until, now)) is not None:
                    out.append(note)
                self._limited_until = float(event.get("rate_limited_until") or 0)
                if (note := guard_notification(event, self._guarded)) is not None:
                    out.append(note)
                self._guarded = str(event.get("guard") or "")
        if self.budget is not None and any(e.get("type") == "task.finished" for e in batch):
            today = datetime.fromtimestamp(now).date()
            if self._budget_day != today:
                spent, budget = self.budget()
                if budget > 0 and spent >= budget:
                    self._budget_day = today
                    out.append(budget_notification(spent, budget, now))
        return out

    def _execution(self, execution_id: str) -> Mapping[str, Any] | None:
        """The ended execution's record (one read), if it can be read: a notification without
        its branch, verify and denials beats none at all."""
        if self.execution_of is None or not execution_id:
            return None
        try:
            return self.execution_of(execution_id)
        except Exception as e:
            log.warning("notify.execution_unread", execution_id=execution_id, error=repr(e))
            return None

    def offer(self, note: Notification) -> None:
        """Queue `note` for every receiver that asked for its state; never waits."""
        for target, queue in zip(self.targets, self.queues, strict=True):
            if note.state not in target.states:
                continue
            try:
                queue.put_nowait(note)
            except asyncio.QueueFull:
                self.stats["dropped"] += 1
                log.warning("notify.dropped", url=target.shown_url, state=note.state)

    async def run(
        self, hub: Hub, stop: asyncio.Event, idle: Callable[[], bool] = lambda: True
    ) -> None:
        """Deliver until `stop` is set and `idle()` (nothing left running that could still
        finish), then flush what is queued for up to `timeout_s`."""
        if not self.targets:
            await stop.wait()
            return
        sub = hub.subscribe(10_000, remote=False)
        async with httpx.AsyncClient(
            timeout=self.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": f"claudomator/{__version__}"},
        ) as client:
            workers = [
                asyncio.create_task(self._worker(client, t, q), name=f"notify:{i}")
                for i, (t, q) in enumerate(zip(self.targets, self.queues, strict=True))
            ]
            try:
                sub = await self._consume(hub, sub, stop, idle)
                for queue in self.queues:
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(None)
                await asyncio.wait(workers, timeout=self.timeout_s)
            finally:
                sub.close()
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    async def _consume(
        self, hub: Hub, sub: Subscription, stop: asyncio.Event, idle: Callable[[], bool]
    ) -> Subscription:
        while not (stop.is_set() and idle()):
            try:
                first = await asyncio.wait_for(sub.get(), 0.5)
            except TimeoutError:
                continue
            batch = [first]
            while not sub.queue.empty():
                batch.append(sub.queue.get_nowait())
            if any(e.get("type") == "hub.overflow" for e in batch):
                log.warning("notify.overflow")  # fell behind: some events were not seen
                sub = hub.subscribe(10_000, remote=False)
                batch = [e for e in batch if e.get("type") != "hub.overflow"]
            for note in self.decide(batch, time.time()):
                self.offer(note)
        return sub

    async def _worker(
        self,
        client: httpx.AsyncClient,
        target: NotifyTarget,
        queue: asyncio.Queue[Notification | None],
    ) -> None:
        while (note := await queue.get()) is not None:
            await self.deliver(client, target, note)

    async def deliver(
        self, client: httpx.AsyncClient, target: NotifyTarget, note: Notification
    ) -> bool:
        """POST `note` to `target`; retried on network errors, 408/425/429 and 5xx."""
        body = json.dumps(note.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Claudomator-Event": note.state,
            "X-Claudomator-Delivery": uuid.uuid4().hex,  # the same on every retry: dedupe by it
        }
        if target.secret:
            headers[SIGNATURE_HEADER] = signature(target.secret, body)
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = await client.post(target.url, content=body, headers=headers)
            except httpx.HTTPError as e:
                problem = type(e).__name__
            else:
                if response.is_success:
                    self.stats["sent"] += 1
                    log.info("notify.sent", url=target.shown_url, state=note.state)
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUS:
                    break
            if attempt < self.attempts:
                delay = min(60.0, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random())
                log.info(
                    "notify.retry", url=target.shown_url, problem=problem, in_s=round(delay, 2)
                )
                await asyncio.sleep(delay)
        self.stats["failed"] += 1
        log.warning("notify.failed", url=target.shown_url, state=note.state, problem=problem)
        return False
