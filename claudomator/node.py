"""This process as a node: its id (one per data dir for `serve`), its lease, renewed every
heartbeat, and the loop that notices other nodes' expired leases and the loss of its own.

A node is lost when its lease runs out (crash, `kill -9`, network cut, a stalled process): the
first other node to notice marks it lost, and its RUNNING executions end FAILED `node lost`
(retry policy applies). A node that comes back and finds itself lost stops those executions and
records no second result (every result is a compare-and-set on a RUNNING execution), then joins
again.

`serve` is a node under the data dir's id; `run` is one under its own identity (its process),
so that a `run` that vanishes is noticed the same way.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from claudomator.config import Config
from claudomator.datadir import DataDir, write_private
from claudomator.errors import ClaudomatorError, DatabaseUnavailable
from claudomator.pool import Pool
from claudomator.proctree import kill_tree, leftovers, process_started
from claudomator.records import Event
from claudomator.store.db import Store
from claudomator.store.nodes import UP, Nodes
from claudomator.store.reader import Reader
from claudomator.stored import StoredNode

log = structlog.get_logger("claudomator.node")

NOTICE_S = 1.0  # how often expired leases are looked for: a lost node is noticed within lease + 1 s


@dataclass(frozen=True)
class Process:
    """This OS process: what names it across restarts and pid reuse."""

    host: str
    pid: int
    started: float  # its start time, as the system tells it

    @classmethod
    def this(cls) -> Process:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_started(pid) or time.time())

    @property
    def identity(self) -> str:
        """How a `run` process names itself as the dispatcher of its tasks (and its node)."""
        return f"run:{self.host}:{self.pid}:{self.started:.2f}"

    def owner(self, node_id: str) -> dict[str, Any]:
        """The owner columns of an execution this process starts."""
        return {
            "owner_host": self.host,
            "owner_pid": self.pid,
            "owner_started": self.started,
            "owner_node": node_id,
        }


def node_id_for(data_dir: DataDir, configured: str, host: str) -> str:
    """`node.id` when configured, else the id kept in the data dir (made once: host + random)."""
    if configured:
        return configured
    for _ in range(2):
        if text := data_dir.node_id():
            return text
        write_private(data_dir.node_id_file, f"{host}-{secrets.token_hex(3)}\n")
    raise ClaudomatorError(f"{data_dir.node_id_file}: cannot make a node id (an empty file?)")


def may_take(
    row: StoredNode | None,
    *,
    host: str,
    pid: int,
    process_started: float,
    alive_started: float | None,
    now: float,
) -> str:
    """Why this process may not become node `row["id"]`, or "" when it may. The id is free when no
    process holds it: never used, stopped, lost, its lease expired, or its process on this host is
    gone (`alive_started`: the start time of the process holding its pid now, None when none)."""
    if row is None or row["state"] != UP:
        return ""
    if (row["host"], row["pid"], row["process_started"]) == (host, pid, process_started):
        return ""
    if row["heartbeat_at"] + row["lease_s"] < now:
        return ""
    if row["host"] == host and (
        alive_started is None or abs(alive_started - row["process_started"]) > 1.0
    ):
        return ""
    return (
        f"node {row['id']} is in use by pid {row['pid']} on {row['host']} (heartbeat "
        f"{max(0.0, now - row['heartbeat_at']):.0f} s ago); give this data dir its own node.id, "
        "or stop that process"
    )


class Membership:
    """This process's row in `nodes`: join, renew, notice, leave."""

    def __init__(
        self,
        nodes: Nodes,
        node_id: str,
        *,
        kind: str,
        host: str,
        pid: int,
        process_started: float,
        heartbeat_s: float,
        lease_s: float,
        **fields: Any,
    ) -> None:
        self.nodes = nodes
        self.id = node_id
        self.kind = kind
        self.host = host
        self.pid = pid
        self.process_started = process_started
        self.heartbeat_s = heartbeat_s
        self.lease_s = lease_s
        self.fields = fields
        self.doubt = asyncio.Event()  # a start was refused: renew (or learn of the loss) now

    def join(self, alive_started: Callable[[int], float | None]) -> Event:
        row = self.nodes.get(self.id)
        why = may_take(
            row,
            host=self.host,
            pid=self.pid,
            process_started=self.process_started,
            alive_started=alive_started(row["pid"]) if row and row["host"] == self.host else None,
            now=self.nodes.clock(),
        )
        if why:
            raise ClaudomatorError(why)
        return self.nodes.register(
            self.id,
            kind=self.kind,
            host=self.host,
            pid=self.pid,
            process_started=self.process_started,
            heartbeat_s=self.heartbeat_s,
            lease_s=self.lease_s,
            **self.fields,
        )

    def renew(self) -> bool:
        return self.nodes.heartbeat(self.id, self.pid, self.process_started)

    def leave(self) -> Event | None:
        return self.nodes.stop(self.id, self.pid)

    async def run(
        self, stop: asyncio.Event, notice_lost: Callable[[], None], lost: Callable[[], None]
    ) -> None:
        """Until `stop`: renew the lease every heartbeat (`lost()` when it was lost meanwhile),
        and `notice_lost()` other nodes whose lease expired every `NOTICE_S`."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.heartbeat_s
        away = False
        while not stop.is_set():
            try:
                if loop.time() >= due or self.doubt.is_set():
                    self.doubt.clear()
                    due = loop.time() + self.heartbeat_s
                    if not self.renew():
                        log.error("node.lease_lost", node=self.id)
                        lost()
                notice_lost()
                if away:
                    log.info("node.database_back", node=self.id)
                away = False
            except DatabaseUnavailable as e:  # away for a moment: told once, tried every round
                if not away:
                    log.warning("node.database_away", node=self.id, error=str(e))
                away = True
            except Exception:  # one bad round must not end the node
                log.exception("node.loop_error", node=self.id)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.doubt.wait())]
            await asyncio.wait(
                waits, timeout=min(NOTICE_S, self.heartbeat_s), return_when="FIRST_COMPLETED"
            )
            for w in waits:
                w.cancel()


class Node:
    """This process as a node of the cluster: joins (refused while another live process holds
    the id), renews its lease, relays other nodes' events, leaves."""

    def __init__(
        self,
        config: Config,
        store: Store,
        pool: Pool,
        process: Process,
        publish: Callable[[Iterable[Event]], None],
    ) -> None:
        self.config, self.store, self.pool, self.process = config, store, pool, process
        self.publish = publish
        self.nodes = Nodes(store)
        self.membership: Membership | None = None  # once joined

    @property
    def id(self) -> str:
        return self.membership.id if self.membership else ""

    def join(self, kind: str) -> None:
        """Become a node (`serve`: the data dir's node id; `run`: its own identity) and hold a
        lease; refused while another live process holds the same id."""
        from claudomator import __version__

        config, process = self.config, self.process
        if kind == "run":
            node_id = process.identity
        else:
            node_id = node_id_for(config.data_dir, config.node_id, process.host)
        membership = Membership(
            self.nodes,
            node_id,
            kind=kind,
            host=process.host,
            pid=process.pid,
            process_started=process.started,
            heartbeat_s=config.heartbeat_s,
            lease_s=config.lease_s,
            data_dir=str(config.data_dir.root),
            slots=self.pool.slots,
            version=__version__,
        )
        self.publish([membership.join(process_started)])
        self.membership = membership
        if kind == "serve":
            self.store.node = node_id
            self.nodes.adopt_files(node_id)
            # what this node ran before it was lost or killed, and is no longer its to run
            for execution_id, procs in leftovers().items():
                if self.nodes.execution_owner(execution_id) == node_id:
                    log.warning("node.leftover_killed", execution_id=execution_id)
                    kill_tree(procs)

    def leave(self) -> None:
        """A clean exit: `stopped` (a database away now only means the lease will expire)."""
        if self.membership is not None:
            try:
                event = self.membership.leave()
            except DatabaseUnavailable as e:
                log.warning("node.leave_failed", error=str(e))
                return
            self.publish([event] if event else [])

    def doubt(self) -> None:
        """A start was refused for want of a lease: renew it (or learn of its loss) now."""
        if self.membership is not None:
            self.membership.doubt.set()

    async def run(
        self,
        stop: asyncio.Event,
        *,
        notice_lost: Callable[[], None],
        stop_executions: Callable[[], None],
    ) -> None:
        """Until `stop`: renew the lease, `notice_lost()` other nodes whose lease expired; when
        this node was found lost, `stop_executions()` (each records nothing, or `node lost` if no
        other node has yet) and join again."""

        def lost() -> None:
            stop_executions()
            if self.membership is not None:
                self.publish([self.membership.join(process_started)])

        if self.membership is not None:
            await self.membership.run(stop, notice_lost, lost)

    async def relay(
        self, stop: asyncio.Event, reader: Reader, publish_remote: Callable[[list[Event]], None]
    ) -> None:
        """Other nodes' events into this node's hub (PostgreSQL only), until `stop`."""
        if self.store.postgresql:
            from claudomator.store.relay import Relay

            relay = Relay(
                self.config.database_url, self.store.channel, self.id, reader, publish_remote
            )
            await relay.run(stop)
