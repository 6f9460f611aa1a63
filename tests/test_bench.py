"""Every bench in bench/ runs in its quick mode (`--quick`: the smallest sizes that still take
every path) and prints its figures, so that none rots between the times someone measures with
it. The figures themselves are not judged: CI machines are shared, and a quick run is too short
to mean anything.

A quick run is mostly waiting (for servers to start, for sleeps, for processes to stop), so the
benches run three at a time: on a loaded two-core machine, one after another took over two
minutes, three at a time about half of that. A bench added to bench/ runs here too, and fails
until it has a `--quick` and a line in BENCHES."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import POSTGRESQL

REPO = Path(__file__).resolve().parent.parent
AT_ONCE = 3

# bench → how a line it always prints starts (its last figure, mostly), and its time limit (s);
# the slowest first, as they are started
BENCHES = {
    "cluster": ("claim p99 with 3 racers", 120),
    "chaos": ("invariants (violations):", 90),
    "ingest": ("pick's plan uses ix_tasks_pick", 60),
    "ws": ("no client, again", 60),
    "git": ("sh spawn alone (floor)", 60),
    "api": ("ratio, cache miss", 60),
    "stream": ("RSS growth during the run", 60),
    "latency": ("idle CPU over", 60),
    "throughput": ("ratio", 60),
}

NAMES = [*BENCHES, *sorted({p.stem for p in (REPO / "bench").glob("[!_]*.py")} - set(BENCHES))]

Run = subprocess.CompletedProcess[str]


def argv(name: str) -> list[str]:
    out = [sys.executable, f"bench/{name}.py", "--quick"]
    if name == "cluster":  # its own schemas in the test PostgreSQL
        out += ["--database-url", POSTGRESQL.replace("postgresql://", "postgresql+psycopg://", 1)]
    return out


def run(args: list[str], env: dict[str, str], timeout_s: float) -> Run:
    """`args` in a process group of its own; past `timeout_s`, SIGINT to the group (the bench's
    `finally` blocks stop the servers it started and remove its folders), then SIGKILL."""
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        err += f"\n(stopped after {timeout_s} s)"
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Run]]]:
    """The selected benches, started AT_ONCE at a time, slowest first."""
    chosen = {
        item.callspec.params["name"]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is request.module
    }
    # what the autouse fixture does for each test, done here for all: no CLAUDOMATOR_* of the
    # developer's (a data dir, a database URL) reaches a bench
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLAUDOMATOR_") or k == "CLAUDOMATOR_TEST_POSTGRESQL"
    }
    env.pop("CLAUDECODE", None)
    with ThreadPoolExecutor(AT_ONCE, thread_name_prefix="bench") as pool:
        yield {
            name: pool.submit(run, argv(name), env, BENCHES.get(name, ("", 60))[1])
            for name in NAMES
            if name in chosen
        }
        pool.shutdown(cancel_futures=True)


# the limit of the slowest bench, plus waiting for a free slot behind the ones started before
@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", NAMES)
def test_bench_runs_quick(
    name: str, runs: dict[str, Future[Run]], request: pytest.FixtureRequest
) -> None:
    if name == "cluster":
        request.getfixturevalue("postgresql_url")  # skipped without PostgreSQL, never under CI
    result = runs[name].result()
    code, lines = result.returncode, result.stdout.splitlines()
    said = f"{' '.join(result.args[1:])} exited {code}\n{result.stdout}\n{result.stderr[-3000:]}"
    assert code == 0, said
    assert name in BENCHES, f"bench/{name}.py: give it a line in BENCHES\n{said}"
    figure = BENCHES[name][0]
    assert any(line.lstrip().startswith(figure) for line in lines), said
