"""Several `claudomator serve` nodes on one PostgreSQL, as real processes: each task runs exactly
once across the nodes, a node killed or stalled past its lease is found lost (its executions end
FAILED `node lost`, and a stalled node that wakes records no second result, then joins again),
and every node's events reach the WebSocket of the node that serves the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from websockets.sync.client import connect

from tests.fakes import make_fake_claude, make_instant_claude
from tests.net import free_port
from tests.poll import wait_for
from tests.taskfiles import batch_yaml, task_data
from tests.taskfiles import scenario as fake
from tests.test_serve import Server, task

pytestmark = pytest.mark.timeout(150)

FINAL = ["COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED", "BUDGET_EXCEEDED"]
FAST_LEASE = {"CLAUDOMATOR_NODE_HEARTBEAT": "1s", "CLAUDOMATOR_NODE_LEASE": "3s"}
QUIET_S = 0.5  # the WebSocket feed's own poll of the events table skips events younger than this

_RECORD = (
    '[ -z "$FAKE_CLAUDE_RECORD" ] || printf \'{"pid": %s, "session_id": "%s", "env": '
    '{"CLAUDOMATOR_EXECUTION_ID": "%s"}, "exit_code": 0}\\n\' "$$" "$sid" '
    '"$CLAUDOMATOR_EXECUTION_ID" > "$FAKE_CLAUDE_RECORD/$sid.json"\n'
)


def make_recording_instant_claude(dir: Path) -> Path:
    """`make_instant_claude`'s sh script, plus a record like the Python fake's (`<session
    id>.json` in $FAKE_CLAUDE_RECORD: pid, CLAUDOMATOR_EXECUTION_ID, exit code): 1,000 runs of
    the Python fake would cost ~40 s of CPU by themselves."""
    path = make_instant_claude(dir)
    path.write_text(path.read_text() + _RECORD)
    return path


def alive(pid: int, execution_id: str) -> bool:
    """Whether process `pid` still runs execution `execution_id` (no zombie, no reused pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.environ().get("CLAUDOMATOR_EXECUTION_ID") == execution_id
    except psutil.Error:
        return False


class Node(Server):
    """One `serve` of the cluster: its own data dir and inbox, the cluster's database; with
    `port`, it serves the HTTP API there too."""

    def __init__(
        self, home: Path, env: dict[str, str], record: Path, port: int | None = None
    ) -> None:
        super().__init__(home, env, record)
        self.port = port

    def start(self, ready: bool = True, **extra_env: str) -> Node:
        assert not self.running
        self.log_path = self.home.parent / f"{self.home.name}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        argv = [sys.executable, "-m", "claudomator.cli", "serve"]
        env = {**self.env, **extra_env}
        if self.port is None:
            argv.append("--no-api")
        else:
            env["CLAUDOMATOR_SERVER_PORT"] = str(self.port)
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        if ready:
            self.ready()
        return self

    def ready(self) -> None:
        wait_for(lambda: b"serve.started" in self.log_path.read_bytes() or not self.running)
        assert self.running, self.log_path.read_text()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def id(self) -> str:
        """The node id `serve` made for this data dir."""
        return (self.home / "node-id").read_text().strip()

    def kill(self) -> None:
        """SIGKILL (a stopped process dies of it too), and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()


class Cluster:
    """Nodes sharing one database (a schema of their own) and one fake claude and record dir."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        self.record = tmp_path / "record"
        self.record.mkdir()
        work = tmp_path / "work"
        work.mkdir()
        self.env = {
            **os.environ,
            "CLAUDOMATOR_DATABASE_URL": url,
            "CLAUDOMATOR_CLAUDE_BIN": str(make_fake_claude(tmp_path / "bin")),
            "CLAUDOMATOR_CLAUDE_WORKING_DIR": str(work),
            "CLAUDOMATOR_RUNNER_INTERRUPT_GRACE": "1s",
            "CLAUDOMATOR_RUNNER_TERMINATE_GRACE": "1s",
            "CLAUDOMATOR_RUNNER_STOP_GRACE": "2s",
            "CLAUDOMATOR_INTAKE_SWEEP_INTERVAL": "1s",
            "FAKE_CLAUDE_RECORD": str(self.record),
        }
        self.db = psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True)
        self.nodes: list[Node] = []

    def node(
        self, name: str, slots: int = 4, port: int | None = None, env: dict[str, str] | None = None
    ) -> Node:
        home = self.tmp_path / name
        node_env = {
            **self.env,
            "CLAUDOMATOR_HOME": str(home),
            "CLAUDOMATOR_MAX_CONCURRENCY": str(slots),
            **(env or {}),
        }
        node = Node(home, node_env, self.record, port)
        self.nodes.append(node)
        return node

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.db.execute(query, params).fetchall()

    def one(self, query: str, *params: Any) -> Any:
        (row,) = self.sql(query, *params)
        return row[0] if len(row) == 1 else row

    def executions(self, task_name: str) -> list[tuple[Any, ...]]:
        """(id, state, reason, owner_node, cost_usd) of the task's executions, oldest first."""
        return self.sql(
            "SELECT e.id, e.state, e.reason, e.owner_node, e.cost_usd FROM executions e "
            "JOIN tasks t ON t.id = e.task_id WHERE t.name = %s ORDER BY e.started_at",
            task_name,
        )

    def running_on(self, node: Node, count: int) -> list[str]:
        """The ids of the `count` executions RUNNING on `node`, once there are that many."""
        query = "SELECT id FROM executions WHERE state = 'RUNNING' AND owner_node = %s"

        def ids() -> list[str] | None:
            found = [r[0] for r in self.sql(query, node.id)]
            return found if len(found) == count else None

        found: list[str] = wait_for(ids)
        return found

    def events(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        rows = self.sql(
            "SELECT id, task_id, execution_id, data_json FROM events WHERE type = %s ORDER BY id",
            type_,
        )
        events = [
            {"id": i, "task_id": t, "execution_id": e, **json.loads(d)} for i, t, e, d in rows
        ]
        return [e for e in events if all(e.get(k) == v for k, v in match.items())]

    def records(self) -> dict[str, dict[str, Any]]:
        """The fake's record of each claude process, by execution id."""
        out: dict[str, dict[str, Any]] = {}
        for path in self.record.glob("*.json"):
            data: dict[str, Any] = json.loads(path.read_text())
            out[data["env"]["CLAUDOMATOR_EXECUTION_ID"]] = data
        return out

    def stall(self, node: Node) -> None:
        """SIGSTOP `node` (the serve process only) between two transactions: stopped inside one
        it would hold the write lock every node needs, and nothing could find it lost."""
        port = self.db.info.port
        backends = (
            "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s) AND state <> 'idle'"
        )
        for _ in range(100):
            os.kill(node.pid, signal.SIGSTOP)
            time.sleep(0.05)  # what it had sent before it stopped arrives
            conns = psutil.Process(node.pid).net_connections("tcp")
            ports = [c.laddr.port for c in conns if c.raddr and c.raddr.port == port]
            if not self.one(backends, ports):
                return
            os.kill(node.pid, signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError("the node never stopped outside a transaction")

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        # claude processes outlive a serve killed with SIGKILL (they run in sessions of their own)
        left = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("FAKE_CLAUDE_RECORD") == str(self.record):
                    proc.kill()
                    left.append(proc)
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=10)
        self.db.close()


@pytest.fixture
def cluster(tmp_path: Path, postgresql_url: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path, postgresql_url)
    try:
        yield c
    finally:
        c.close()


def batch(names: list[str], scenario: str = "success", *, work: Path, **params: Any) -> str:
    """A batch file of tasks `names`, each running the fake's `scenario` with `params`, each in
    a folder of its own below `work` (tasks on one folder run one at a time)."""
    for n in names:
        (work / n).mkdir(parents=True, exist_ok=True)
    return batch_yaml(
        *(task_data(n, fake(scenario, **params), claude={"working_dir": str(work / n)})
          for n in names)
    )  # fmt: skip


def errors(node: Node) -> list[str]:
    """The events `node` logged (since its last start) at level error, and any line of output
    that is no log event."""
    found = []
    for line in node.log_path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            found.append(line)
            continue
        if event.get("level") == "error":
            found.append(event["event"])
    return found


def finished(cluster: Cluster, names: list[str]) -> bool:
    query = "SELECT count(*) FROM tasks WHERE name = ANY(%s) AND state = ANY(%s)"
    return bool(cluster.one(query, names, FINAL) == len(names))


def test_a_thousand_tasks_run_once_each_over_three_nodes(cluster: Cluster) -> None:
    cluster.env["CLAUDOMATOR_CLAUDE_BIN"] = str(
        make_recording_instant_claude(cluster.tmp_path / "instant")
    )
    nodes = [cluster.node(name, slots=4) for name in ("a", "b", "c")]
    for node in nodes:
        node.start(ready=False)
    for node in nodes:
        node.ready()
    ids = {node.id for node in nodes}
    assert len(ids) == 3
    names = [f"t{i:04d}" for i in range(1000)]
    dropped: list[list[str]] = [[], [], []]
    for f in range(30):  # 30 batch files of about 33 tasks, ten in each node's inbox
        rel = f"team/batch-{f:02d}.yaml"
        nodes[f % 3].drop(rel, batch(names[f::30], work=cluster.tmp_path / "work"))
        dropped[f % 3].append(rel)
    wait_for(lambda: finished(cluster, names), timeout=100)

    tasks = cluster.sql("SELECT name, state, attempts FROM tasks")
    assert sorted(tasks) == [(n, "COMPLETED", 1) for n in names]
    executions = cluster.sql("SELECT id, task_id, state, owner_node FROM executions")
    assert len(executions) == 1000
    assert len({task_id for _, task_id, _, _ in executions}) == 1000  # one each
    assert {state for _, _, state, _ in executions} == {"COMPLETED"}
    owner = {execution_id: node_id for execution_id, _, _, node_id in executions}
    per_node = {node_id: list(owner.values()).count(node_id) for node_id in ids}
    assert set(owner.values()) == ids and min(per_node.values()) > 0, per_node
    # claude ran 1,000 times: once per execution
    records = cluster.records()
    assert len(list(cluster.record.glob("*.json"))) == len(records) == 1000
    assert set(records) == set(owner)
    assert {r["exit_code"] for r in records.values()} == {0}
    # each node's folders hold exactly the files dropped in its inbox, whichever node ran them
    for node, rels in zip(nodes, dropped, strict=True):
        expected = sorted([*rels, *(rel + ".result.json" for rel in rels)])
        wait_for(lambda: node.files()["done"] == expected)  # noqa: B023
        files = node.files()
        assert files["inbox"] == files["queued"] == files["running"] == files["rejected"] == []
        ran_by: set[str] = set()
        for rel in rels:
            result = json.loads((node.home / "done" / (rel + ".result.json")).read_text())
            assert {t["state"] for t in result["tasks"]} == {"COMPLETED"}
            ran_by |= {owner[e] for t in result["tasks"] for e in t["execution_ids"]}
        assert ran_by == ids, per_node  # its files' tasks ran on every node
        assert errors(node) == []


def test_a_node_killed_is_found_lost_and_comes_back(cluster: Cluster) -> None:
    b = cluster.node("b", slots=2, env=FAST_LEASE).start()
    b.drop(
        "slow.yaml", batch(["slow1", "slow2"], "sleep", sleep_s=60, work=cluster.tmp_path / "work")
    )
    slow = cluster.running_on(b, 2)
    a = cluster.node("a", slots=2, env=FAST_LEASE).start()
    a.drop("steady.yaml", task("steady", "sleep", sleep_s=6))  # b has no free slot
    cluster.running_on(a, 1)
    wait_for(lambda: set(slow) <= set(cluster.records()))
    pids: dict[str, int] = {e: cluster.records()[e]["pid"] for e in slow}
    assert all(alive(pid, e) for e, pid in pids.items())

    b.kill()
    killed = time.monotonic()
    query = "SELECT state, reason FROM executions WHERE id = ANY(%s)"
    wait_for(lambda: set(cluster.sql(query, slow)) == {("FAILED", "node lost")}, timeout=3 + 5)
    assert time.monotonic() - killed < 3 + 5
    assert [e["node"] for e in cluster.events("node.lost")] == [b.id]
    assert cluster.one("SELECT state FROM nodes WHERE id = %s", b.id) == "lost"
    states = "SELECT name, state, reason FROM tasks WHERE name = ANY(%s) ORDER BY name"
    slow_tasks = [("slow1", "FAILED", "node lost"), ("slow2", "FAILED", "node lost")]
    assert cluster.sql(states, ["slow1", "slow2"]) == slow_tasks
    # the node that found b lost, on the same host, ended b's claude processes
    wait_for(lambda: not any(alive(pid, e) for e, pid in pids.items()), timeout=5)

    # a goes on: what it runs finishes, and it runs new work
    a.drop(
        "later.yaml",
        batch(["later1", "later2", "later3"], "tools", turns=1, work=cluster.tmp_path / "work"),
    )
    later = ["steady", "later1", "later2", "later3"]
    wait_for(lambda: finished(cluster, later), timeout=20)
    for name in later:
        assert [row[1:4] for row in cluster.executions(name)] == [("COMPLETED", "", a.id)]
    assert cluster.one("SELECT state FROM nodes WHERE id = %s", a.id) == "up"

    # b comes back with the same data dir: up again, its old executions left as they ended
    b.start()
    assert cluster.one("SELECT state FROM nodes WHERE id = %s", b.id) == "up"
    assert len(cluster.events("node.up", node=b.id)) == 2
    assert not any(alive(pid, e) for e, pid in pids.items())
    assert set(cluster.sql(query, slow)) == {("FAILED", "node lost")}
    assert cluster.sql(states, ["slow1", "slow2"]) == slow_tasks
    assert b.files()["done"] == ["slow.yaml", "slow.yaml.result.json"]
    assert errors(a) == errors(b) == []


def test_a_stalled_node_records_no_second_result(cluster: Cluster) -> None:
    lease = {"CLAUDOMATOR_NODE_HEARTBEAT": "1s", "CLAUDOMATOR_NODE_LEASE": "4s"}
    a = cluster.node("a", slots=1, env=lease).start()
    a.drop("stalled.yaml", task("stalled", "sleep", sleep_s=1, cost=0.5))
    (execution,) = cluster.running_on(a, 1)
    # claude has its prompt (its node wrote stdin, and closed it) before the node stalls
    wait_for(lambda: cluster.records().get(execution, {}).get("scenario") == "sleep")
    cluster.stall(a)
    b = cluster.node("b", slots=1, env=lease).start()  # b cannot take the task: it runs already

    # the claude process was not stopped: it finishes its run (a success) while its node sleeps
    def exited() -> dict[str, Any] | None:
        record = cluster.records().get(execution)
        return record if record and "exit_code" in record else None

    assert wait_for(exited)["exit_code"] == 0
    wait_for(lambda: cluster.executions("stalled")[0][1:3] == ("FAILED", "node lost"), timeout=10)
    assert psutil.Process(a.pid).status() == psutil.STATUS_STOPPED  # found lost while stalled
    assert [e["node"] for e in cluster.events("node.lost")] == [a.id]
    assert cluster.one("SELECT state FROM nodes WHERE id = %s", a.id) == "lost"

    os.kill(a.pid, signal.SIGCONT)
    # a wakes, learns it was lost, drops the run it had (recording nothing) and joins again
    wait_for(lambda: len(cluster.events("node.up", node=a.id)) == 2, timeout=10)
    assert cluster.one("SELECT state FROM nodes WHERE id = %s", a.id) == "up"
    # the run's money is counted, but its success is not recorded
    wait_for(lambda: cluster.executions("stalled")[0][4] == 0.5, timeout=10)
    wait_for(lambda: a.files()["done"] == ["stalled.yaml", "stalled.yaml.result.json"])
    time.sleep(1)  # anything a would still write about it, it has written by now
    assert cluster.executions("stalled") == [(execution, "FAILED", "node lost", a.id, 0.5)]
    task_id = cluster.one("SELECT id FROM tasks WHERE name = 'stalled'")
    assert cluster.one("SELECT state, reason FROM tasks WHERE id = %s", task_id) == (
        "FAILED",
        "node lost",
    )
    assert len(cluster.events("task.finished", task_id=task_id)) == 1
    result = json.loads((a.home / "done/stalled.yaml.result.json").read_text())
    assert [(t["state"], t["reason"]) for t in result["tasks"]] == [("FAILED", "node lost")]
    # and dropping that run went without an error (the store wrote its cost, and no state)
    assert errors(a) == ["node.lease_lost"]

    # a runs tasks again
    assert b.stop() == 0
    a.drop("again.yaml", task("again", "tools", turns=1))
    wait_for(lambda: finished(cluster, ["again"]))
    assert [row[1:4] for row in cluster.executions("again")] == [("COMPLETED", "", a.id)]


def test_every_nodes_events_reach_the_websocket(cluster: Cluster) -> None:
    port = free_port()
    a = cluster.node("a", slots=1, port=port).start()

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success
        except httpx.TransportError:
            return False

    wait_for(healthy)
    a.drop("busy.yaml", task("busy", "sleep", sleep_s=60))  # keeps a's only slot
    cluster.running_on(a, 1)
    b = cluster.node("b", slots=1).start()
    got: list[tuple[float, dict[str, Any]]] = []
    with connect(f"ws://127.0.0.1:{port}/api/ws", open_timeout=5, proxy=None) as ws:
        b.drop("hello.yaml", task("hello", "tools", turns=1))
        deadline = time.monotonic() + 15
        while not any(e["type"] == "task.finished" and e.get("name") == "hello" for _, e in got):
            remaining = deadline - time.monotonic()
            assert remaining > 0, [e["type"] for _, e in got]
            event = json.loads(ws.recv(timeout=remaining))
            got.append((time.time(), event))
    task_id = cluster.one("SELECT id FROM tasks WHERE name = 'hello'")
    mine = {e["type"]: (seen, e) for seen, e in got if e["task_id"] == task_id}
    assert {"task.created", "task.queued", "task.started", "task.finished"} <= set(mine)
    assert mine["task.started"][1]["node"] == b.id
    assert mine["task.finished"][1]["state"] == "COMPLETED"
    assert [row[1:4] for row in cluster.executions("hello")] == [("COMPLETED", "", b.id)]
    # told as they committed (a's feed polls the table too, but only for events older than
    # QUIET_S): they came through PostgreSQL's NOTIFY
    delays = sorted(seen - e["at"] for seen, e in mine.values())
    assert delays[0] < QUIET_S, delays
    # its log stays on b's disk: a's API says where it is instead of an empty page
    execution_id = mine["task.finished"][1]["execution_id"]
    page = httpx.get(f"http://127.0.0.1:{port}/api/executions/{execution_id}/log").json()
    assert (page["node"], page["elsewhere"], page["lines"]) == (b.id, True, [])
    here = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "logs", execution_id],
        env={**b.env, "CLAUDOMATOR_HOME": str(b.home)}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert here.returncode == 0 and here.stdout
    # as if b were another machine: its data dir is not on a's disk
    (b.home / "executions" / execution_id).rename(b.home / "away")
    there = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "logs", execution_id],
        env={**a.env, "CLAUDOMATOR_HOME": str(a.home)}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert there.returncode == 4 and f"ran on node {b.id}" in there.stderr
    assert errors(a) == errors(b) == []
