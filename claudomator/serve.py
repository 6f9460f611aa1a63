"""`claudomator serve`: the directory runner, and the composition root of everything that runs
beside its pool on one event loop: the inbox watcher and its intake, the git sources, the node's
lease and relay, webhook notifications and the HTTP API.

At start it logs what `doctor`'s checks find not ok. What can refuse does so before anything
starts: the API (no token off loopback, an address in use) when it is built, another `serve` on
the same data dir at the dispatcher lock, another live process under this node's id when it
joins. Then recovery, then the pool until SIGTERM/SIGINT (a second signal cancels running
executions at once).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from claudomator.intake import Intake
from claudomator.inventory import Inventory
from claudomator.lock import DispatcherLock
from claudomator.service import Claudomator
from claudomator.store.reader import start_of_today

if TYPE_CHECKING:
    from claudomator.api import Api
    from claudomator.notify import Notifier
    from claudomator.sources.git import GitSources

log = structlog.get_logger("claudomator.serve")

Beside = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # runs until its `stop` is set


def serve(
    service: Claudomator, *, api: bool = True, until: Callable[[], bool] | None = None
) -> int | None:
    """Run `service` as `claudomator serve` until a signal stops it (`api`: with the HTTP API;
    `until`: or until it says so with nothing running). Returns the signal that stopped it.

    The dispatcher lock comes first: a second `serve` on the data dir is told who serves it
    before it binds a port or builds anything."""
    lock = hold_lock(service)
    server = None
    try:
        _look(service, api=api)
        notifier = _notifier(service)
        server = _api(service, notifier) if api else None  # may refuse: before anything starts
        beside: list[Beside] = []
        if notifier is not None:
            beside.append(
                lambda stop: notifier.run(service.hub, stop, lambda: not service.pool.running)
            )
        if server is not None:
            beside.append(server.run)

        async def also(stop: asyncio.Event) -> None:
            await asyncio.gather(*(run(stop) for run in beside))

        loop = ServeLoop(service)
        asyncio.run(loop.run(also if beside else None, lock=lock, until=until))
        return loop.stopped_by
    finally:
        if server is not None:
            server.close()
        lock.release()


def hold_lock(service: Claudomator) -> DispatcherLock:
    """The data dir's dispatcher lock, held by this process (ClaudomatorError: another holds
    it, and who)."""
    lock = DispatcherLock(service.config.data_dir.root / "dispatcher.lock")
    lock.acquire(f"pid {service.node.process.pid} on {service.node.process.host}")
    return lock


def _look(service: Claudomator, *, api: bool) -> None:
    """`doctor`'s checks, logged when not ok; none refuses the start (what cannot work fails
    on its own: the port when the API binds it)."""
    from claudomator.doctor import checks

    for check in checks(service.config, api=api, serving=True):
        if check.status != "ok":
            (log.error if check.status == "problem" else log.warning)(
                "serve.check",
                check=check.name,
                status=check.status,
                detail=check.detail,
                fix=check.fix,
            )


def _notifier(service: Claudomator) -> Notifier | None:
    config = service.config
    if not config.notify:
        return None
    from claudomator.notify import Notifier

    return Notifier(
        config.notify,
        budget=lambda: (service.reader.cost_since(start_of_today()), config.daily_budget_usd),
        execution_of=service.execution,
    )


def git_sources(service: Claudomator, intake: Intake, **options: float) -> GitSources:
    """The config's git sources, wired to `intake` and `service` as `serve` runs them
    (`options`: as for `GitSources.wired`)."""
    from claudomator.sources.git import GitSources
    from claudomator.sources.links import Hooks, Links

    hooks = Hooks(intake.offer_bytes, intake.refuse_bytes, service.cancel_if)
    links = Links(service.store, intake.spool, intake.base_dirs, hooks)
    return GitSources.wired(service.config, links, **options)


def _api(service: Claudomator, notifier: Notifier | None) -> Api:
    from claudomator.api import Api

    return Api(service, notifier=notifier)


class ServeLoop:
    """The pool and what runs beside it, on the running event loop."""

    def __init__(self, service: Claudomator) -> None:
        self.service = service
        self.faults = service.faults
        self.intake: Intake | None = None  # once recovery settled the folders
        self.stopped_by: int | None = None  # the first signal that stopped it

    async def run(
        self,
        also: Beside | None = None,
        *,
        lock: DispatcherLock | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Holds the dispatcher lock (`lock`, if the caller holds it already), runs recovery,
        watches the inbox and runs the pool until SIGTERM/SIGINT (or until `until()` says so
        with nothing running). `also(stop)` runs beside it (the API, notifications) and must
        return once `stop` is set."""
        from claudomator.sources.inbox import InboxWatcher

        service, config = self.service, self.service.config
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        stopping: list[asyncio.Task[None]] = []

        def on_signal(signum: int) -> None:
            if self.stopped_by is None:
                self.stopped_by = signum
            stop.set()
            grace = 0.0 if stopping else config.stop_grace_s
            log.info("serve.stopping", grace_s=grace)
            stopping.append(asyncio.create_task(service.pool.stop(grace)))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            lock = lock or hold_lock(service)
            service.node.join("serve")
            intake = Intake.of(service)
            sources = None
            if config.sources:
                sources = git_sources(service, intake)  # before recovery: it sets base_dirs
            service.recovery.run(intake)
            await Inventory(service.workspaces).recover()  # the worktrees left by a crash
            self.intake = service.intake = intake
            watcher = InboxWatcher(
                intake.spool.inbox,
                {f: intake.spool.folder(f) for f in ("queued", "done", "rejected")},
                on_files=self.faults.guard("intake", intake.offer),
                on_deleted=self.faults.guard("intake", intake.deleted),
                sweep=lambda: self._sweep(intake),
                sweep_interval_s=config.sweep_interval_s,
                debounce_s=config.debounce_s,
                step_s=config.step_s,
                poll=config.intake_poll,
            )
            watching = asyncio.create_task(watcher.run(stop), name="inbox:watch")
            beside = asyncio.create_task(also(stop), name="serve:also") if also else None
            done = asyncio.Event()  # the lease is held until the last execution ended
            cluster = [
                asyncio.create_task(
                    service.node.run(
                        done,
                        notice_lost=service.recovery.end_lost_nodes,
                        stop_executions=service.lifecycle.stop_lost,
                    ),
                    name="node",
                ),
                asyncio.create_task(
                    service.node.relay(done, service.reader, service.publisher.publish_remote),
                    name="node:relay",
                ),
            ]
            gitting = (
                asyncio.create_task(sources.run(stop), name="sources:git") if sources else None
            )
            log.info(
                "serve.started",
                data_dir=str(config.data_dir.root),
                node=service.node_id,
                slots=service.pool.slots,
            )
            try:
                await service.pool.run(
                    self._start,
                    service.lifecycle.execute,
                    until or (lambda: False),
                    0.25,
                    self._tick,
                )
            finally:
                stop.set()
                await watching
                if gitting is not None:
                    await gitting
                if beside is not None:
                    await beside
                done.set()
                await asyncio.gather(*cluster)
                service.node.leave()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self.intake = service.intake = None
            if lock is not None:
                lock.release()
        log.info("serve.stopped")

    def _sweep(self, intake: Intake) -> None:
        """Every `intake.sweep_interval` (and after a watcher error): the inbox, claims a fault
        cut short, files whose tasks changed unheard of, files gone from done/ and rejected/
        unheard of (with their side files), dependents a lost node left waiting;
        each step on its own, so that one failing does not hold up the others."""
        for what, step in (
            ("intake", intake.sweep),
            ("staging", intake.finish_claims),
            ("mirror", intake.mirror.resync),
            ("mirror", intake.mirror.forget_gone),
            ("dependents", self.service.dependents.settle_waiting),
        ):
            with self.faults.carry_on(what):
                step()

    def _start(self, n: int) -> list[str]:
        """Start up to `n` tasks, if the pool's gate is open."""
        service = self.service
        with self.faults.carry_on("pick"):  # `pick.waits`: a log event name, kept
            gate = service.gate()
            if gate.reason.startswith("disk full"):
                self.faults.trouble("disk.full", gate.reason)
            else:
                self.faults.over("disk.full", "disk.recovered")
            return service.lifecycle.start(n) if gate.open else []
        return []

    def _tick(self) -> None:
        """Every round of the pool: cancel requests, files still being written."""
        with self.faults.carry_on("tick"):
            if self.service.pool.running:
                self.service.lifecycle.check_cancels()
            if self.intake is not None:
                self.intake.recheck_pending()


__all__ = ["ServeLoop", "git_sources", "hold_lock", "serve"]
