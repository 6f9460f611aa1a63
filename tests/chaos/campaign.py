"""The campaign: rounds of drops and kills on real `serve` processes, then a settle. What it
sees while it runs (a serve that exits by itself, a claude process left behind, a spawn with no
record) it notes as a problem of the invariant concerned; `tests.chaos.checks` checks the rest
once it is over."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.chaos.database import Database
from tests.chaos.drops import FOLDERS, Drop, make_drop
from tests.chaos.facts import FINAL
from tests.chaos.node import Node
from tests.chaos.processes import Records, alive, execution_of, gone, home_processes
from tests.fakes import make_fake_claude

LEASE = {"CLAUDOMATOR_NODE_HEARTBEAT": "500ms", "CLAUDOMATOR_NODE_LEASE": "2s"}
LEASE_S = 2.0
KILL_WINDOW_S = 1.5  # a kill lands within this long after serve said it serves
SETTLE_QUIET_S = 1.5  # all final and the folders empty: nothing may change for this long
STUCK_QUIET_S = 6.0  # not all final, but nothing changed for this long: give up waiting
RECORD_WAIT_S = 10.0  # a claude process left by a dead serve writes its record within this


@dataclass
class Kill:
    label: str  # the round (r007), or "settle"
    node: int
    how: str  # "kill", "power loss", "stall", "start-up kill", "exited"
    at: str  # the last event the serve logged before it


@dataclass
class Campaign:
    """`rounds` rounds of drops and kills on `nodes` data dirs under `root`, then a settle.
    Several nodes need `database_url` (a PostgreSQL schema of their own)."""

    root: Path
    seed: int
    rounds: int
    nodes: int = 1
    database_url: str = ""
    settle_s: float = 60.0
    rng: random.Random = field(init=False)
    drops: list[Drop] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)  # found while running
    cut: dict[str, str] = field(default_factory=dict)  # execution id -> by which kill
    stalled: dict[str, str] = field(default_factory=dict)  # execution id -> by which stall
    unrecorded: list[str] = field(default_factory=list)  # executions killed before the record
    settled: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # rounds, settle, stop

    def __post_init__(self) -> None:
        if self.nodes > 1 and not self.database_url:
            raise ValueError("several nodes share a PostgreSQL database: give database_url")
        self.rng = random.Random(self.seed)
        self.record = self.root / "record"
        self.record.mkdir(parents=True)
        self.records = Records(self.record)
        logs = self.root / "logs"
        logs.mkdir()
        self.logs_dir = logs
        work = self.root / "work"
        for k in range(FOLDERS):
            (work / str(k)).mkdir(parents=True)
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLAUDOMATOR_", "FAKE_CLAUDE_")) and k != "CLAUDECODE"
        }
        env = {
            **base,
            "CLAUDOMATOR_CLAUDE_BIN": str(make_fake_claude(self.root / "bin")),
            "CLAUDOMATOR_CLAUDE_WORKING_DIR": str(work),
            "CLAUDOMATOR_RUNNER_INTERRUPT_GRACE": "1s",
            "CLAUDOMATOR_RUNNER_TERMINATE_GRACE": "1s",
            "CLAUDOMATOR_RUNNER_STOP_GRACE": "2s",
            "CLAUDOMATOR_INTAKE_SWEEP_INTERVAL": "1s",
            "CLAUDOMATOR_LOG_FORMAT": "json",
            "FAKE_CLAUDE_RECORD": str(self.record),
            "CLAUDE_CONFIG_DIR": str(self.root / "claude-config"),  # sessions a round resumes
        }
        if self.nodes > 1:
            env |= {"CLAUDOMATOR_DATABASE_URL": self.database_url, **LEASE}
        self.node_list = []
        for i in range(self.nodes):
            home = self.root / f"home{i}"
            self.node_list.append(Node(i, home, {**env, "CLAUDOMATOR_HOME": str(home)}, logs))
        self.db = (
            Database(url=self.database_url)
            if self.nodes > 1
            else Database(sqlite=self.node_list[0].home / "claudomator.db")
        )

    # -- running ---------------------------------------------------------------------------------

    def problem(self, invariant: str, text: str) -> None:
        self.problems.setdefault(invariant, []).append(text)

    def run(self) -> None:
        t0 = time.monotonic()
        for round_ in range(self.rounds):
            self._round(round_)
        self.seconds["rounds"] = round(time.monotonic() - t0, 1)
        self._settle()
        self.seconds["all"] = round(time.monotonic() - t0, 1)

    def close(self) -> None:
        """End every process of the campaign, however it went."""
        for node in self.node_list:
            if node.proc is not None:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(node.proc.pid).resume()
                if node.running:
                    node.kill()
                node._closed()
        left = []
        for node in self.node_list:
            for proc in home_processes(node.home):
                with contextlib.suppress(psutil.Error):
                    proc.resume()
                    proc.kill()
                    left.append(proc)
        gone(left, timeout=10)
        self.db.close()

    def _new_drop(self, node: int, round_: int) -> Drop:
        drop = make_drop(self.rng, len(self.drops), node, round_, self.root / "work")
        self.drops.append(drop)
        return drop

    def _start(self, nodes: list[Node], label: str) -> list[Node]:
        """Start `nodes` at once and wait until each serves; the ones that do."""
        before = {n.index: home_processes(n.home) for n in nodes}
        for node in nodes:
            node.start(label)
        ready = []
        for node in nodes:
            if node.wait_for_event("serve.started"):
                ready.append(node)
                self._leftovers_gone(node, before[node.index], label)
            else:
                self._exited(node, label)
        return ready

    def _exited(self, node: Node, label: str) -> None:
        """A serve that is not running though nobody killed it."""
        self._death(node, label, "exited")

    def _leftovers_gone(self, node: Node, before: list[psutil.Process], label: str) -> None:
        """Claude processes of the node's earlier serves are ended before it says it serves."""
        deadline = time.monotonic() + 3
        while (left := [p for p in before if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in left:
            self.problem(
                "g_no_leftover_claude",
                f"{node.name} {label}: claude pid {proc.pid} (execution {execution_of(proc)}) "
                "of an earlier serve still alive after the restart",
            )

    def _round(self, round_: int) -> None:
        rng, label = self.rng, f"r{round_:03d}"
        down = [n for n in self.node_list if not n.running]
        for _ in range(rng.randint(0, 2) if down else 0):  # dropped while serve is down
            drop = self._new_drop(rng.choice(down).index, round_)
            drop.while_down = True
            self.node_list[drop.node].drop(drop)
        starting = down if self.nodes == 1 else [n for n in down if rng.random() < 0.6]
        if down and not starting and not any(n.running for n in self.node_list):
            starting = [rng.choice(down)]
        later = [
            self._new_drop(rng.randrange(self.nodes), round_) for _ in range(rng.randint(0, 4))
        ]
        if self.nodes == 1 and starting and rng.random() < 0.15:
            self._startup_kill(starting[0], later, label)
            return
        live = self._start(starting, label) + [
            n for n in self.node_list if n.running and n not in starting
        ]
        # denser early, where the claims of the files just dropped are (mean 0.42 of the window)
        kill_at = KILL_WINDOW_S * rng.random() ** 1.4
        timeline = sorted((rng.uniform(0, kill_at), i) for i in range(len(later)))
        target = rng.choice(live) if live else None
        stall = self.nodes > 1 and target is not None and rng.random() < 0.35
        power = rng.random() < 1 / 3
        t0 = time.monotonic()
        for offset, i in timeline:
            time.sleep(max(0.0, t0 + offset - time.monotonic()))
            self.node_list[later[i].node].drop(later[i])
        time.sleep(max(0.0, t0 + kill_at - time.monotonic()))
        if target is None:
            return
        if stall:
            self._stall(target, label)
        else:
            self._kill(target, label, power)

    def _startup_kill(self, node: Node, later: list[Drop], label: str) -> None:
        """Kill a serve during its start-up: once it joined, while it recovers."""
        node.start(label)
        for drop in later:
            self.node_list[drop.node].drop(drop)
        node.wait_for_event("node.up")
        time.sleep(self.rng.uniform(0, 0.1))
        self._death(node, label, "start-up kill")

    def _kill(self, node: Node, label: str, power: bool) -> None:
        self._death(node, label, "power loss" if power else "kill")

    def _death(self, node: Node, label: str, how: str) -> None:
        """SIGKILL (a serve that exited by itself breaks an invariant), then `_after_death`."""
        at = node.last_event()
        early = node.kill()
        if early is not None or how == "exited":
            self.problem(
                "k_serve_exits",
                f"{node.name} {label}: serve exited by itself with {early} after {at!r}, "
                f"see {node.log_path}",
            )
        self.kills.append(Kill(label, node.index, how, at))
        self._after_death(node, label, how)

    def _running_of(self, node: Node) -> list[str]:
        """The executions the store has RUNNING for the node's current serve process."""
        assert node.proc is not None
        rows = self.db.rows(
            "SELECT id, owner_started FROM executions WHERE state = 'RUNNING' AND owner_pid = ?",
            node.proc.pid,
        )
        return [r[0] for r in rows if abs(float(r[1]) - node.created) < 1.0]

    def _after_death(self, node: Node, label: str, how: str) -> None:
        """A serve is dead: note what it had RUNNING, end its claude processes on a power loss,
        and let the others write their records (the next serve kills them: it must not kill
        one before the record of its start exists, or a spawn would go uncounted)."""
        for execution_id in self._running_of(node):
            self.cut[execution_id] = f"{node.name} {label} {how}"
        if how == "power loss":
            self._power_loss(node)
        self._await_records(node, label, exclude=())

    def _power_loss(self, node: Node) -> None:
        """Every process of the data dir stops at once (SIGSTOP until none is left running);
        those whose record is not written never told of their start; then all are killed."""
        frozen: dict[int, psutil.Process] = {}
        for _ in range(100):
            fresh = [p for p in home_processes(node.home) if p.pid not in frozen]
            if not fresh:
                break
            for proc in fresh:
                with contextlib.suppress(psutil.Error):
                    proc.suspend()
                frozen[proc.pid] = proc
        known = set(self.records.scan().values())
        for proc in frozen.values():
            execution_id = execution_of(proc)
            if execution_id and (proc.pid, execution_id) not in known:
                self.unrecorded.append(execution_id)
            with contextlib.suppress(psutil.Error):
                proc.kill()
        gone(frozen.values(), timeout=10)

    def _await_records(self, node: Node, label: str, exclude: Iterable[int]) -> None:
        deadline = time.monotonic() + RECORD_WAIT_S
        while True:
            known = set(self.records.scan().values())
            waiting = [
                p
                for p in home_processes(node.home, exclude)
                if (p.pid, execution_of(p)) not in known
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                for proc in waiting:
                    self.problem(
                        "j_spawned_once",
                        f"{node.name} {label}: pid {proc.pid} ({execution_of(proc) or 'no '}"
                        f"execution) wrote no record in {RECORD_WAIT_S:.0f} s",
                    )
                return
            time.sleep(0.02)

    def _stall(self, node: Node, label: str) -> None:
        """SIGSTOP the serve (outside a transaction: stopped inside one it would hold the write
        lock every node needs) for longer than its lease, then SIGCONT."""
        assert node.proc is not None
        pid, port = node.proc.pid, self.db.pg_port
        busy = (
            "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(?) AND state <> 'idle'"
        )
        for _ in range(100):
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.05)  # what it sent before it stopped arrives
            try:
                conns = psutil.Process(pid).net_connections("tcp")
            except psutil.Error:
                break  # it died: the round's check notices
            ports = [c.laddr.port for c in conns if c.raddr and c.raddr.port == port]
            if not self.db.rows(busy, ports)[0][0]:
                break
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
        at = node.last_event()
        self.kills.append(Kill(label, node.index, "stall", at))
        for execution_id in self._running_of(node):
            self.stalled[execution_id] = f"{node.name} {label} stall"
        self._await_records(node, label, exclude=[pid])
        time.sleep(LEASE_S + 1.5)  # found lost meanwhile by a live node
        os.kill(pid, signal.SIGCONT)
        if not node.running:
            self._exited(node, label)

    # -- settling --------------------------------------------------------------------------------

    def _progress(self) -> tuple[bool, Any]:
        """(all final and the folders empty, a snapshot that changes when anything moves)."""
        tasks = self.db.rows("SELECT id, state, attempts FROM tasks ORDER BY id")
        executions = self.db.rows("SELECT count(*), max(id) FROM executions")
        events = self.db.rows("SELECT max(id) FROM events")
        listings = [n.listing() for n in self.node_list]
        expected = sum(len(d.tasks) for d in self.drops)
        done = (
            all(t[1] in FINAL for t in tasks)
            and len(tasks) >= expected
            and not any(
                ls[f] for ls in listings for f in ("inbox", "queued", "running", ".staging")
            )
        )
        return done, (tasks, executions, events, listings)

    def _settle(self) -> None:
        """Every node runs until everything is final and nothing changes; then SIGTERM."""
        t0 = time.monotonic()
        self._start([n for n in self.node_list if not n.running], "settle")
        deadline = time.monotonic() + self.settle_s
        last: Any = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            done, snapshot = self._progress()
            now = time.monotonic()
            if snapshot != last:
                last, since = snapshot, now
            if now - since >= (SETTLE_QUIET_S if done else STUCK_QUIET_S):
                self.settled = done
                break
            time.sleep(0.2)
        self.seconds["settle"] = round(time.monotonic() - t0, 1)
        for node in self.node_list:
            if not node.running:
                self._exited(node, "settle")
                continue
            code = node.terminate(timeout=30)
            if code != 0:
                self.problem(
                    "k_serve_exits",
                    f"{node.name} settle: SIGTERM ended serve with {code}, see {node.log_path}",
                )
        self.check_no_process_left()

    def check_no_process_left(self, wait_s: float = 5) -> None:
        """Once every serve stopped, no process of any data dir is left (within `wait_s`)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(home_processes(n.home) for n in self.node_list):
            time.sleep(0.1)
        for node in self.node_list:
            for proc in home_processes(node.home):
                self.problem(
                    "g_no_leftover_claude",
                    f"{node.name}: pid {proc.pid} (execution {execution_of(proc)}) alive after "
                    "every serve stopped",
                )

    # -- reporting -------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """What the campaign did: rounds, files, tasks, executions, kills and where they landed."""
        executions = self.db.rows("SELECT count(*) FROM executions")
        return {
            "seed": self.seed,
            "rounds": self.rounds,
            "nodes": self.nodes,
            "files": len(self.drops),
            "files dropped while down": sum(d.while_down for d in self.drops),
            "invalid files": sum(not d.valid for d in self.drops),
            "tasks": sum(len(d.tasks) for d in self.drops),
            "executions": executions[0][0] if executions else 0,
            "claude invocations": len(self.records.scan()),
            "executions cut by a kill": len(self.cut),
            "executions running at a stall": len(self.stalled),
            "kills": dict(Counter(k.how for k in self.kills)),
            "kills landed after": dict(Counter(k.at for k in self.kills).most_common()),
            "settled": self.settled,
            "seconds": self.seconds,
        }


@contextlib.contextmanager
def campaign(root: Path, seed: int, rounds: int, **options: Any) -> Iterator[Campaign]:
    c = Campaign(root, seed, rounds, **options)
    try:
        yield c
    finally:
        c.close()
