"""A randomized crash campaign ("chaos") against real `claudomator serve` processes.

Each round starts `python -m claudomator.cli serve --no-api` (the fake claude of
`tests.fakes.make_fake_claude`, recording every invocation in one folder), drops 0-4 task files
(plain, retried, failing, batches with a dependency, invalid; some while serve is down) and
SIGKILLs serve at a random moment; a third of the kills are a power loss, which also kills every
claude process of the data dir. With several nodes (PostgreSQL), the nodes share one schema and
a round SIGKILLs one node, or stops it (SIGSTOP) for longer than its lease, while the others run.
After the last round every node runs until nothing changes, then stops with SIGTERM, and
`Campaign.check()` reads the folders, the database and the processes for the invariants of
`INVARIANTS`. Every wait has a deadline; the seed replays a campaign's choices (not the timing).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from claudomator.state import FINAL_STATES, State, valid_transition
from tests.fakes import make_fake_claude
from tests.poll import wait_for

INVARIANTS = {
    "a_one_folder": "every file dropped is in exactly one folder, the one its tasks imply",
    "b_result_files": "a true .result.json beside every file in done/, and nowhere else",
    "c_tasks_final": "every task is final",
    "d_recorded_once": "each dropped file and each of its tasks is recorded once",
    "e_attempts": "no task has more executions than its retry policy allows",
    "f_executions_end": "executions cut by a kill end FAILED interrupted; all end final",
    "g_no_leftover_claude": "no claude process of an earlier serve stays alive",
    "h_integrity": "the SQLite file passes PRAGMA integrity_check",
    "i_event_paths": "each task's events walk the transition table",
    "j_spawned_once": "claude ran once per execution that got as far as spawning",
    "k_serve_exits": "serve exits only when told, and 0 on SIGTERM",
}
FINAL = frozenset(s.value for s in FINAL_STATES)
CUT_REASONS = ("interrupted", "node lost")  # how a RUNNING execution ends when its owner dies
EXECUTION_ENV = "CLAUDOMATOR_EXECUTION_ID"
LEASE = {"CLAUDOMATOR_NODE_HEARTBEAT": "500ms", "CLAUDOMATOR_NODE_LEASE": "2s"}
LEASE_S = 2.0
KILL_WINDOW_S = 1.5  # a kill lands within this long after serve said it serves
SETTLE_QUIET_S = 1.5  # all final and the folders empty: nothing may change for this long
STUCK_QUIET_S = 6.0  # not all final, but nothing changed for this long: give up waiting
RECORD_WAIT_S = 10.0  # a claude process left by a dead serve writes its record within this
FOLDERS = ("inbox", "queued", "running", "done", "rejected", ".staging")
_NUMBERED = re.compile(r"^(?P<head>.*)\.(?P<n>\d+)(?P<ext>\.ya?ml)$")


# -- what is dropped ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedTask:
    name: str
    max_attempts: int  # 1 without a retry policy


@dataclass
class Drop:
    """One task file put into a node's inbox (atomically, under a name used once)."""

    rel: str  # relative to the inbox
    node: int
    data: bytes
    valid: bool
    kind: str
    tasks: tuple[PlannedTask, ...]
    round: int
    while_down: bool = False


def _task(name: str, scenario: str, retry: bool, depends_on: str = "", **params: Any) -> str:
    lines = [f"name: {name}"]
    if depends_on:
        lines.append(f"depends_on: [{depends_on}]")
    if retry:
        lines.append('retry: {max_attempts: 2, backoff: "1s"}')
    lines += ["claude:", "  instructions: |", f"    fake-scenario: {scenario}"]
    lines += [f"    fake-{k}: {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def _indent(text: str) -> str:
    first, *rest = text.splitlines()
    return "\n".join([f"  - {first}", *(f"    {line}" for line in rest)]) + "\n"


def make_drop(rng: random.Random, number: int, node: int, round_: int) -> Drop:
    """A random task file: its text and what claudomator must make of it."""
    stem = f"f{number:03d}"
    rel = (
        ("team/" if rng.random() < 0.3 else "") + stem + (".yml" if rng.random() < 0.2 else ".yaml")
    )

    def sleep() -> dict[str, Any]:
        return {"sleep_s": round(rng.uniform(0.1, 1.5), 2)}

    def failing() -> dict[str, Any]:
        return {"startup_s": round(rng.uniform(0.1, 0.6), 2)}

    roll = rng.random()
    tasks: tuple[PlannedTask, ...]
    if roll < 0.30:
        kind, text = "plain", _task(stem, "sleep", False, **sleep())
        tasks = (PlannedTask(stem, 1),)
    elif roll < 0.45:
        kind, text = "retry", _task(stem, "sleep", True, **sleep())
        tasks = (PlannedTask(stem, 2),)
    elif roll < 0.55:
        kind, text = "retry-failing", _task(stem, "error_during_execution", True, **failing())
        tasks = (PlannedTask(stem, 2),)
    elif roll < 0.80:
        first, second = f"{stem}-build", f"{stem}-test"
        fails = rng.random() < 0.25
        head = (
            _task(first, "error_during_execution", False, **failing())
            if fails
            else _task(first, "sleep", False, **sleep())
        )
        tail = _task(second, "sleep", False, depends_on=first, **sleep())
        kind = "batch-failing" if fails else "batch"
        text = "tasks:\n" + _indent(head) + _indent(tail)
        tasks = (PlannedTask(first, 1), PlannedTask(second, 1))
    else:
        kind, text = rng.choice(
            [
                ("invalid-key", f"name: {stem}\nclaude: {{instructions: x, bogus_key: 1}}\n"),
                ("invalid-yaml", f"name: {stem}\nclaude: [unclosed\n"),
                ("invalid-depends", _task(stem, "sleep", False, depends_on=f"{stem}-nobody")),
                ("invalid-value", f"name: {stem}\npriority: urgent\nclaude: {{instructions: x}}\n"),
            ]
        )
        tasks = ()
    return Drop(rel, node, text.encode(), not kind.startswith("invalid"), kind, tasks, round_)


# -- the processes --------------------------------------------------------------------------------


def home_processes(home: Path, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Live processes whose environment names data dir `home` (a serve and the claude processes
    it spawned, which outlive it: they run in sessions of their own), less `exclude`."""
    skip = {os.getpid(), *exclude}
    found = []
    for proc in psutil.process_iter():
        if proc.pid in skip:
            continue
        with contextlib.suppress(psutil.Error):
            if (
                proc.environ().get("CLAUDOMATOR_HOME") == str(home)
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
    return found


def execution_of(proc: psutil.Process) -> str:
    try:
        return proc.environ().get(EXECUTION_ENV, "")
    except psutil.Error:
        return ""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def gone(procs: Iterable[psutil.Process], timeout: float) -> bool:
    """Wait until none of `procs` is alive (a zombie is not: its parent, maybe init, reaps it)."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Records:
    """The fake claude's record of each invocation (`<session id>.json`): (pid, execution id)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seen: dict[str, tuple[int, str]] = {}

    def scan(self) -> dict[str, tuple[int, str]]:
        for path in self.folder.glob("*.json"):
            if path.name not in self._seen:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    data = json.loads(path.read_text())
                    self._seen[path.name] = (int(data["pid"]), data["env"].get(EXECUTION_ENV, ""))
        return self._seen


class Node:
    """One data dir and the `serve` processes started on it, one after the other."""

    def __init__(self, index: int, home: Path, env: dict[str, str], logs: Path) -> None:
        self.index, self.home, self.env, self.logs_dir = index, home, env, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.created = 0.0  # the serve process's start time (as the store records its owner)
        self.log: IO[bytes] | None = None
        self.log_path = logs / "none.log"
        self.logs: list[Path] = []
        (home / "inbox").mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def node_id(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "node-id").read_text().strip()
        return ""

    def start(self, label: str) -> None:
        assert not self.running
        self.log_path = self.logs_dir / f"{self.name}-{label}.log"
        self.logs.append(self.log_path)
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed when the process ends)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        with contextlib.suppress(psutil.Error):
            self.created = psutil.Process(self.proc.pid).create_time()

    def said(self, event: str) -> bool:
        return f'"event": "{event}"'.encode() in self.log_path.read_bytes()

    def wait_for_event(self, event: str, timeout: float = 30) -> bool:
        """True once serve logged `event`; False if it exited first."""
        wait_for(lambda: self.said(event) or not self.running, timeout)
        return self.said(event)

    def last_event(self) -> str:
        """The last event serve logged: where a kill landed."""
        for line in reversed(self.log_path.read_bytes().splitlines()):
            with contextlib.suppress(ValueError, AttributeError):
                return str(json.loads(line)["event"])
        return "(nothing logged)"

    def kill(self) -> int | None:
        """SIGKILL and reap; the exit code when serve had exited by itself already."""
        assert self.proc is not None
        early = self.proc.poll()
        if early is None:
            self.proc.kill()
        self.proc.wait(30)
        self._closed()
        return early

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, and the exit code (None when it did not exit in time: then SIGKILL)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.proc.kill()
            self.proc.wait(30)
        self._closed()
        return code

    def _closed(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def drop(self, drop: Drop) -> None:
        """Write elsewhere in the inbox under a hidden name, then rename: atomic."""
        path = self.home / "inbox" / drop.rel
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_bytes(drop.data)
        os.rename(tmp, path)

    def listing(self) -> dict[str, list[str]]:
        """Every file (or link) in each spool folder, relative to it."""
        out: dict[str, list[str]] = {}
        for folder in FOLDERS:
            top = self.home / folder
            out[folder] = sorted(
                str(p.relative_to(top)) for p in top.rglob("*") if p.is_symlink() or not p.is_dir()
            ) if top.exists() else []  # fmt: skip
        return out


# -- the database ---------------------------------------------------------------------------------


class Database:
    """Read access to the store: the SQLite file of one data dir, or a PostgreSQL schema."""

    def __init__(self, sqlite: Path | None = None, url: str = "") -> None:
        self.sqlite, self.url = sqlite, url.replace("+psycopg", "", 1)
        self._pg: Any = None

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of `query`; none while the table does not exist yet."""
        if self.sqlite is not None:
            if not self.sqlite.exists():
                return []
            uri = self.sqlite.as_uri() + "?mode=rw"  # never creates the file
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
                try:
                    return conn.execute(query, params).fetchall()
                except sqlite3.OperationalError as e:
                    if "no such table" in str(e):
                        return []
                    raise
        import psycopg

        if self._pg is None or self._pg.closed:
            self._pg = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        try:
            if params:
                return list(self._pg.execute(query.replace("?", "%s"), params).fetchall())
            return list(self._pg.execute(query).fetchall())
        except psycopg.errors.UndefinedTable:
            return []

    @property
    def pg_port(self) -> int:
        self.rows("SELECT 1")
        return int(self._pg.info.port)

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()


# -- the campaign ---------------------------------------------------------------------------------


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
        work.mkdir()
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
        drop = make_drop(self.rng, len(self.drops), node, round_)
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

    # -- checking --------------------------------------------------------------------------------

    def check(self) -> dict[str, list[str]]:
        """Every invariant of INVARIANTS, with what violates it (empty when it holds)."""
        out: dict[str, list[str]] = {name: list(self.problems.get(name, [])) for name in INVARIANTS}
        facts = Facts.read(self)
        for name, checker in CHECKS.items():
            out[name] += checker(self, facts)
        return out

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

    def summary(self, violations: dict[str, list[str]], limit: int = 5) -> str:
        """The seed, each invariant's count of violations (with the first few), the logs."""
        lines = [
            f"chaos seed {self.seed} ({self.rounds} rounds, {self.nodes} node(s)); replay with "
            f"CLAUDOMATOR_CHAOS_SEED={self.seed}"
        ]
        for name, found in violations.items():
            lines.append(f"  {name}: {len(found)} violation(s)  [{INVARIANTS[name]}]")
            lines += [f"      {text}" for text in found[:limit]]
            if len(found) > limit:
                lines.append(f"      … and {len(found) - limit} more")
        logs = [p.name for n in self.node_list for p in n.logs]
        lines.append(f"  serve logs ({len(logs)}) in {self.logs_dir}:")
        lines += [f"    {' '.join(logs[i : i + 8])}" for i in range(0, len(logs), 8)]
        return "\n".join(lines)


@contextlib.contextmanager
def campaign(root: Path, seed: int, rounds: int, **options: Any) -> Iterator[Campaign]:
    c = Campaign(root, seed, rounds, **options)
    try:
        yield c
    finally:
        c.close()


# -- the facts the checks read --------------------------------------------------------------------


@dataclass
class Facts:
    tasks: dict[str, dict[str, Any]]  # id -> row
    executions: dict[str, dict[str, Any]]  # id -> row
    files: list[dict[str, Any]]
    events: dict[str, list[tuple[str, str, str]]]  # task id -> [(type, state, execution id)]
    listings: dict[int, dict[str, list[str]]]  # node index -> folder -> names
    node_ids: dict[int, str]

    @classmethod
    def read(cls, c: Campaign) -> Facts:
        def table(query: str, names: str) -> list[dict[str, Any]]:
            keys = [k.strip() for k in names.split(",")]
            return [dict(zip(keys, row, strict=True)) for row in c.db.rows(query.format(names))]

        tasks = table(
            "SELECT {} FROM tasks", "id, name, state, reason, attempts, requeues, file_id"
        )
        executions = table(
            "SELECT {} FROM executions", "id, task_id, state, reason, owner_pid, attempt"
        )
        files = table("SELECT {} FROM files", "id, node, source, rel_path, folder, name, error")
        events: dict[str, list[tuple[str, str, str]]] = {}
        for _, type_, task_id, execution_id, data in c.db.rows(
            "SELECT id, type, task_id, execution_id, data_json FROM events "
            "WHERE type LIKE 'task.%' ORDER BY id"
        ):
            state = json.loads(data).get("state", "")
            events.setdefault(task_id, []).append((type_, state, execution_id))
        return cls(
            {t["id"]: t for t in tasks},
            {e["id"]: e for e in executions},
            files,
            events,
            {n.index: n.listing() for n in c.node_list},
            {n.index: n.node_id for n in c.node_list},
        )

    def rows_of(self, c: Campaign, drop: Drop) -> list[dict[str, Any]]:
        """The `files` rows of a drop: its node's, found at its path in the inbox."""
        node = self.node_ids[drop.node]
        return [
            f
            for f in self.files
            if f["node"] == node and f["source"] == "inbox" and f["rel_path"] == drop.rel
        ]

    def tasks_of(self, file_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = set(file_ids)
        return sorted(
            (t for t in self.tasks.values() if t["file_id"] in ids), key=lambda t: t["id"]
        )

    def executions_of(self, task_id: str) -> list[dict[str, Any]]:
        return sorted(
            (e for e in self.executions.values() if e["task_id"] == task_id), key=lambda e: e["id"]
        )


def implied_folder(tasks: list[dict[str, Any]]) -> str:
    """Where a valid file stands (README, "The directory runner"): `queued/` until its first
    task starts, `running/` until all its tasks are final, then `done/`."""
    if all(t["state"] in FINAL for t in tasks):
        return "done"
    if any(t["state"] == State.RUNNING.value or t["attempts"] > 0 for t in tasks):
        return "running"
    return "queued"


def _copies(c: Campaign, facts: Facts) -> dict[int, list[tuple[str, str]]]:
    """Drop number -> every (folder, name) holding a copy of it; unknown files under -1."""
    by_rel = {(d.node, d.rel): i for i, d in enumerate(c.drops)}
    out: dict[int, list[tuple[str, str]]] = {}
    for node, listing in facts.listings.items():
        for folder, names in listing.items():
            for name in names:
                if name.endswith((".result.json", ".error")) and folder != ".staging":
                    continue
                base = name
                if folder == ".staging":
                    base = name.split("-", 1)[-1]  # <file id>-<name>: the path is not kept
                    hits = [
                        i for (n, rel), i in by_rel.items() if n == node and Path(rel).name == base
                    ]
                    index = hits[0] if len(hits) == 1 else -1
                    out.setdefault(index, []).append((f"{node}:{folder}", name))
                    continue
                if (node, base) not in by_rel and (m := _NUMBERED.match(name)):
                    base = m["head"] + m["ext"]  # a copy under a number: a name was taken
                index = by_rel.get((node, base), -1)
                out.setdefault(index, []).append((f"{node}:{folder}", name))
    return out


def check_folders(c: Campaign, facts: Facts) -> list[str]:
    found = []
    copies = _copies(c, facts)
    for folder, name in copies.get(-1, []):
        found.append(f"{folder}/{name}: a file nobody dropped")
    for i, drop in enumerate(c.drops):
        where = copies.get(i, [])
        label = f"{drop.rel} (node{drop.node}, {drop.kind}, round {drop.round})"
        if len(where) != 1:
            found.append(f"{label}: {len(where)} copies: {where}")
            continue
        spot, name = where[0]
        folder = spot.split(":", 1)[-1]
        rows = facts.rows_of(c, drop)
        if drop.valid:
            expected = implied_folder(facts.tasks_of(r["id"] for r in rows))
        else:
            expected = "rejected"
        if folder != expected:
            found.append(f"{label}: in {folder}/ as {name}, its tasks put it in {expected}/")
            continue
        path = c.node_list[drop.node].home / folder / name
        if path.read_bytes() != drop.data:
            found.append(f"{label}: {folder}/{name} differs from what was dropped")
        error = path.parent / (path.name + ".error")
        if not drop.valid and not (error.exists() and error.read_text().strip()):
            found.append(f"{label}: no .error beside rejected/{name}")
        if len(rows) == 1 and (rows[0]["folder"], rows[0]["name"]) != (folder, name):
            found.append(
                f"{label}: the store has it in {rows[0]['folder']}/ as {rows[0]['name']}, "
                f"it is in {folder}/ as {name}"
            )
    for node, listing in facts.listings.items():
        for folder, names in listing.items():
            for name in names:
                if name.endswith(".error") and (
                    folder != "rejected" or name.removesuffix(".error") not in names
                ):
                    found.append(f"node{node}:{folder}/{name}: an .error beside no rejected file")
    return found


def check_results(c: Campaign, facts: Facts) -> list[str]:
    found = []
    for node, listing in facts.listings.items():
        node_id = facts.node_ids[node]
        home = c.node_list[node].home
        for folder, names in listing.items():
            present = set(names)
            for name in names:
                if name.endswith(".result.json"):
                    base = name.removesuffix(".result.json")
                    if folder != "done" or base not in present:
                        found.append(f"node{node}:{folder}/{name}: a result beside no done file")
                    continue
                if folder != "done" or name.endswith(".error"):
                    continue
                result = home / "done" / (name + ".result.json")
                if not result.exists():
                    found.append(f"node{node}:done/{name}: no .result.json beside it")
                    continue
                rows = [
                    f
                    for f in facts.files
                    if f["node"] == node_id and f["folder"] == "done" and f["name"] == name
                ]
                if len(rows) != 1:
                    found.append(
                        f"node{node}:done/{name}: {len(rows)} rows in files say it is here"
                    )
                    continue
                try:
                    data = json.loads(result.read_text())
                except ValueError as e:
                    found.append(f"node{node}:done/{name}.result.json is no JSON: {e}")
                    continue
                said = sorted(
                    (t["id"], t["state"], tuple(t["execution_ids"])) for t in data["tasks"]
                )
                store = sorted(
                    (t["id"], t["state"], tuple(e["id"] for e in facts.executions_of(t["id"])))
                    for t in facts.tasks_of([rows[0]["id"]])
                )
                if said != store or data["file"] != rows[0]["rel_path"]:
                    found.append(
                        f"node{node}:done/{name}.result.json says {said}, the store {store}"
                    )
    return found


def check_final(c: Campaign, facts: Facts) -> list[str]:
    return [
        f"task {t['name']} ({t['id']}) is {t['state']} {t['reason']!r}"
        for t in facts.tasks.values()
        if t["state"] not in FINAL
    ]


def check_recorded_once(c: Campaign, facts: Facts) -> list[str]:
    found = []
    drops = {(facts.node_ids[d.node], d.rel): d for d in c.drops}
    for drop in c.drops:
        rows = facts.rows_of(c, drop)
        label = f"{drop.rel} (node{drop.node}, {drop.kind}, round {drop.round})"
        if len(rows) != 1:
            found.append(f"{label}: {len(rows)} rows in files: {[r['folder'] for r in rows]}")
        names = Counter(t["name"] for t in facts.tasks_of(r["id"] for r in rows))
        expected = Counter(t.name for t in drop.tasks)
        if names != expected:
            found.append(f"{label}: tasks recorded {dict(names)}, expected {dict(expected)}")
    for row in facts.files:
        if row["source"] != "inbox" or (row["node"], row["rel_path"]) not in drops:
            found.append(f"a files row for {row['rel_path']!r} nobody dropped: {row}")
    file_ids = {f["id"] for f in facts.files}
    for t in facts.tasks.values():
        if t["file_id"] not in file_ids:
            found.append(f"task {t['name']} ({t['id']}) belongs to no file row")
    expected_total = sum(len(d.tasks) for d in c.drops)
    if len(facts.tasks) != expected_total:
        found.append(f"{len(facts.tasks)} tasks recorded, {expected_total} dropped")
    return found


def check_attempts(c: Campaign, facts: Facts) -> list[str]:
    found = []
    planned = {}
    for drop in c.drops:
        for row in facts.rows_of(c, drop):
            for plan in drop.tasks:
                planned[(row["id"], plan.name)] = plan.max_attempts
    for t in facts.tasks.values():
        executions = facts.executions_of(t["id"])
        counted = [e for e in executions if "rate limit" not in e["reason"]]
        allowed = planned.get((t["file_id"], t["name"]), 1)
        if len(counted) > allowed:
            states = [(e["state"], e["reason"]) for e in executions]
            found.append(
                f"task {t['name']} ({t['id']}): {len(counted)} executions of {allowed}: {states}"
            )
        if t["attempts"] != len(executions) - t["requeues"]:
            found.append(
                f"task {t['name']} ({t['id']}): attempts {t['attempts']}, but {len(executions)} "
                f"executions and {t['requeues']} requeues"
            )
        if [e["attempt"] for e in executions] != list(range(1, len(executions) + 1)):
            found.append(
                f"task {t['name']} ({t['id']}): attempts numbered {[e['attempt'] for e in executions]}"
            )
    return found


def check_executions(c: Campaign, facts: Facts) -> list[str]:
    found = []
    for e in facts.executions.values():
        label = f"execution {e['id']} of {facts.tasks.get(e['task_id'], {}).get('name')}"
        if e["state"] not in FINAL:
            found.append(f"{label} is {e['state']}")
        if e["id"] in c.cut and (e["state"], e["reason"]) not in [
            ("FAILED", r) for r in CUT_REASONS
        ]:
            found.append(f"{label}, cut by {c.cut[e['id']]}, ended {e['state']} {e['reason']!r}")
        if e["reason"] in CUT_REASONS and e["id"] not in c.cut and e["id"] not in c.stalled:
            found.append(
                f"{label} ended {e['reason']!r}, but its serve was neither killed nor stalled"
            )
    return found


def check_integrity(c: Campaign, facts: Facts) -> list[str]:
    if c.nodes > 1:
        return []
    rows = c.db.rows("PRAGMA integrity_check")
    return [] if rows == [("ok",)] else [f"PRAGMA integrity_check: {rows}"]


def event_path_problem(events: list[tuple[str, str, str]], state: str) -> str:
    """What is wrong with a task's events (type, state, execution id), "" when nothing: created
    first (PENDING, or QUEUED with its task.queued), each next state a valid transition announced
    by its own event type, the last one the task's state."""
    if not events or events[0][0] != "task.created" or events[0][1] not in ("PENDING", "QUEUED"):
        return f"does not start with task.created PENDING or QUEUED: {events[:2]}"
    rest = events[1:]
    if events[0][1] == "QUEUED":
        if not rest or rest[0][:2] != ("task.queued", "QUEUED"):
            return f"created QUEUED without its task.queued: {events[:2]}"
        rest = rest[1:]
    current = events[0][1]
    for type_, to, _ in rest:
        expected = {"QUEUED": "task.queued", "RUNNING": "task.started"}.get(to, "task.finished")
        if type_ != expected or not valid_transition(current, to):
            return f"{current} -> {to} by {type_} in {[e[:2] for e in events]}"
        current = to
    if current != state:
        return f"events end {current}, the task is {state}"
    return ""


def check_events(c: Campaign, facts: Facts) -> list[str]:
    found = []
    for t in facts.tasks.values():
        events = facts.events.get(t["id"], [])
        if problem := event_path_problem(events, t["state"]):
            found.append(f"task {t['name']} ({t['id']}): {problem}")
        started = sorted(e for type_, _, e in events if type_ == "task.started")
        if started != [e["id"] for e in facts.executions_of(t["id"])]:
            found.append(
                f"task {t['name']} ({t['id']}): task.started events {started} do not "
                "name its executions one each"
            )
    return found


def check_spawns(c: Campaign, facts: Facts) -> list[str]:
    """Spawned = a claude process ran with the execution's id: it wrote its record, or it was
    killed in a power loss before it could (the campaign saw it). Each execution was spawned at
    most once, only executions the store knows were, and one that never was must have been
    RUNNING when its serve was killed or stalled (claimed, then cut before the spawn)."""
    found = []
    spawned = Counter([e for _, e in c.records.scan().values()] + c.unrecorded)
    for execution_id, n in spawned.items():
        if n > 1:
            found.append(f"execution {execution_id}: claude started {n} times")
        if execution_id not in facts.executions:
            found.append(
                f"claude ran for execution {execution_id!r}, which the store does not know"
            )
    for e in facts.executions.values():
        if e["id"] not in spawned and e["id"] not in c.cut and e["id"] not in c.stalled:
            found.append(
                f"execution {e['id']} ({e['state']} {e['reason']!r}) never started claude, and "
                "its serve was neither killed nor stalled while it ran"
            )
    return found


CHECKS: dict[str, Callable[[Campaign, Facts], list[str]]] = {
    "a_one_folder": check_folders,
    "b_result_files": check_results,
    "c_tasks_final": check_final,
    "d_recorded_once": check_recorded_once,
    "e_attempts": check_attempts,
    "f_executions_end": check_executions,
    "h_integrity": check_integrity,
    "i_event_paths": check_events,
    "j_spawned_once": check_spawns,
}

__all__ = ["INVARIANTS", "Campaign", "Drop", "campaign", "event_path_problem", "make_drop"]
