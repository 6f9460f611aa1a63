"""Intake of a burst and the scheduler's pick at scale. Goals (issue 4): 10,000 task files renamed
into the inbox at once are all QUEUED (rows committed, files in `queued/`) within 5 s, with the
serve process's RSS ≤ 150 MB; the pick stays fast with 100,000 tasks in the store (no full scan
per dispatch).

Part 1, ingest: `claudomator pause` (nothing runs), then a real `claudomator serve --no-api`
(default config and log level). The files are written in a sibling folder first; the clock starts
before the first of the renames into the inbox (one os.rename each, back to back) and stops when a
stdlib-sqlite3 reader counts N QUEUED rows and `queued/` holds N files (both polled every 20 ms).
Peak RSS is the serve process's VmHWM, read before it is stopped. Baseline, same run: the same
renames alone, and the same number of renames out of `queued/` (the filesystem's share of a
claim).

Part 2, pick: stores built through the product's schema (Store() creates it; rows come from the
SQLModel classes, inserted with one executemany): 1k QUEUED tasks, 100k QUEUED tasks, and 100k
tasks of which 99k are finished with one execution each today plus 1k QUEUED (a server's normal
history). For each: `Store.pick(4, now)` (the pick inside serve's claim with 4 free slots) and
`Claudomator.gate()` (serve asks it before every pick), µs per call; the same pick SQL through
stdlib sqlite3; and EXPLAIN QUERY PLAN of every statement, captured as executed.

    python bench/ingest.py [--files 10000] [--rounds 3] [--big 100000] [--small 1000] [--quick]

`--quick` (CI): 200 files, one round; stores of 20 and 200 tasks, 20 calls per batch; 0.3 s idle.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event

from claudomator import log
from claudomator.config import load_config
from claudomator.ids import new_id
from claudomator.service import Claudomator
from claudomator.store.db import Store
from claudomator.store.schema import ExecutionRow, TaskRow
from tests.taskfiles import task_yaml

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def typical_task(i: int) -> str:
    """A typical task file (14 lines), as people write them."""
    return task_yaml(
        f"fix issue {i}",
        f"Fix issue {i}: the login form rejects valid e-mail addresses.\n"
        "Add a test that fails before the fix.\n"
        "Keep the change small.\n",
        priority="normal",
        timeout="15m",
        tags=["bench", "intake"],
        claude={
            "model": "sonnet",
            "permission_mode": "acceptEdits",
            "allowed_tools": ["Bash(git *)", "Read", "Edit"],
            "max_turns": 30,
            "env": {"BENCH": "1"},
        },
    )


def status_kb(pid: int, key: bytes) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def start_serve(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`claudomator serve --no-api`, returned once it says it serves."""
    with open(log_path, "wb") as log_file:
        serve = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while b"serve.started" not in log_path.read_bytes():
        if serve.poll() is not None or time.monotonic() > deadline:
            serve.kill()
            raise RuntimeError(f"serve did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return serve


def stop_serve(serve: subprocess.Popen[bytes], log_path: Path) -> None:
    if serve.poll() is None:
        serve.send_signal(signal.SIGTERM)
    code = serve.wait(60)
    assert code == 0, log_path.read_text()[-2000:]


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "claudomator.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def ingest_round(root: Path, n: int, timeout_s: float) -> dict[str, Any]:
    home, staging = root / "home", root / "staging"
    staging.mkdir(parents=True)
    env = {
        **os.environ,
        "CLAUDOMATOR_HOME": str(home),
        "CLAUDOMATOR_CLAUDE_BIN": "/bin/false",
        "CLAUDOMATOR_LOG_FORMAT": "json",
    }
    cli(env, "pause", "--reason", "bench: ingest only")
    names = [f"task-{i:05d}.yaml" for i in range(n)]
    for i, name in enumerate(names):
        (staging / name).write_text(typical_task(i))
    inbox, queued = home / "inbox", home / "queued"
    log_path = root / "serve.log"
    serve = start_serve(env, log_path)
    try:
        time.sleep(0.5)
        rss_idle = status_kb(serve.pid, b"VmRSS:")
        database = load_config(env=env).data_dir.database
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        user0, sys0 = cpu_s(serve.pid)
        t0 = time.monotonic()
        for name in names:
            os.rename(staging / name, inbox / name)
        renamed = time.monotonic() - t0
        rows = files = 0
        while True:
            (rows,) = db.execute("SELECT count(*) FROM tasks WHERE state = 'QUEUED'").fetchone()
            files = sum(1 for _ in os.scandir(queued)) if rows >= n else 0
            if rows >= n and files >= n:
                break
            if time.monotonic() - t0 > timeout_s:
                break
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        user1, sys1 = cpu_s(serve.pid)
        peak_kb = status_kb(serve.pid, b"VmHWM:")
        left = sum(1 for _ in os.scandir(inbox))
        db.close()
    finally:
        stop_serve(serve, log_path)
    # the filesystem alone: the same number of renames into a folder and out again
    t0 = time.monotonic()
    for name in names:
        os.rename(queued / name, staging / name)
    renames_out = time.monotonic() - t0
    return {
        "seconds": seconds,
        "done": rows >= n and files >= n,
        "rows": rows,
        "files": files,
        "left_in_inbox": left,
        "renamed_s": renamed,
        "renames_out_s": renames_out,
        "cpu_s": user1 - user0 + sys1 - sys0,
        "sys_s": sys1 - sys0,
        "rss_idle_mb": rss_idle / 1024,
        "peak_mb": peak_kb / 1024,
    }


# -- part 2: the pick ----------------------------------------------------------------------------

SPEC = json.dumps(
    {"name": "fix", "claude": {"instructions": "Fix the login form.\n", "model": "sonnet"}}
)


def fill(path: Path, queued: int, finished: int) -> None:
    """`finished` COMPLETED tasks with an execution each (started in the last hour), then
    `queued` QUEUED tasks, every priority, oldest first. Every column's value comes from the
    SQLModel classes' own defaults; the rows go in with one stdlib executemany per table."""
    now = time.time()
    task0 = TaskRow(
        id="", name="", state="QUEUED", config_json=SPEC, source="inbox", created_at=0.0,
        updated_at=0.0,
    ).model_dump()  # fmt: skip
    exec0 = ExecutionRow(
        id="", task_id="", attempt=1, state="COMPLETED", started_at=0.0, exit_code=0,
        cost_usd=0.01,
    ).model_dump()  # fmt: skip
    tasks, executions = [], []
    for i in range(finished + queued):
        rank = i % 3
        task_id = new_id()
        done = i < finished
        at = now - 3600 + i * 1e-3
        tasks.append(
            {**task0, "id": task_id, "name": f"t{i}", "state": "COMPLETED" if done else "QUEUED",
             "priority": ("high", "normal", "low")[rank], "priority_rank": rank,
             "attempts": int(done), "source_path": f"t{i}.yaml", "sort_key": at + rank * 600.0,
             "created_at": at, "updated_at": at}
        )  # fmt: skip
        if done:
            executions.append(
                {**exec0, "id": new_id(), "task_id": task_id, "started_at": at,
                 "finished_at": at + 30}
            )  # fmt: skip
    db = sqlite3.connect(path)
    with db:
        for table, rows in (("tasks", tasks), ("executions", executions)):
            if rows:
                cols = list(rows[0])
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)}) "
                    f"VALUES ({', '.join(':' + c for c in cols)})",
                    rows,
                )
    db.close()


def per_call_us(fn: Any, calls: int, batches: int = 5, budget_s: float = 0.3) -> float:
    """Median over `batches` of the mean time of up to `calls` calls (fewer when one batch would
    take longer than `budget_s`), in µs."""
    t0 = time.perf_counter()
    fn()
    calls = max(3, min(calls, int(budget_s / max(time.perf_counter() - t0, 1e-7))))
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return sorted(out)[len(out) // 2]


def pick_case(root: Path, label: str, queued: int, finished: int, calls: int) -> dict[str, Any]:
    home = root / f"pick-{queued}-{finished}"
    config = load_config(env={"CLAUDOMATOR_HOME": str(home)})
    config.data_dir.ensure()
    Store(config.data_dir.database).close()  # the product's schema
    t0 = time.perf_counter()
    fill(config.data_dir.database, queued, finished)
    built = time.perf_counter() - t0
    service = Claudomator(config)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    event.listen(service.store.engine, "before_cursor_execute", capture)
    first = service.store.pick(4, time.time())
    pick_sql = statements[-1]
    reader_conn = service.reader._connect()  # the Reader's own sqlite3 connection, to trace it
    assert reader_conn is not None
    reader_conn.set_trace_callback(lambda sql: statements.append((sql, None)))
    gate = service.gate()
    event.remove(service.store.engine, "before_cursor_execute", capture)
    reader_conn.set_trace_callback(None)
    assert gate.open and len(first) == 4, (gate, first)
    pick_us = per_call_us(lambda: service.store.pick(4, time.time()), calls)
    gate_us = per_call_us(service.gate, calls)
    raw = sqlite3.connect(config.data_dir.database)
    raw_us = per_call_us(lambda: raw.execute(*pick_sql).fetchall(), calls)
    plans = []
    for sql, params in statements:
        if sql.lstrip().upper().startswith(("SELECT", "WITH")):
            if params is None:  # traced by sqlite3 with the values inlined
                rows = raw.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            else:
                rows = raw.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            plans.append((" ".join(sql.split()), [r[-1] for r in rows]))
    raw.close()
    service.close()
    return {
        "label": label,
        "built_s": built,
        "pick_us": pick_us,
        "gate_us": gate_us,
        "raw_us": raw_us,
        "plans": plans,
    }


def idle_cpu(root: Path, finished: int, seconds: float) -> float:
    """Share of a core a waiting `serve` uses over `seconds`, with `finished` tasks of history
    (each with an execution today) and nothing to run."""
    home = root / f"idle-{finished}"
    env = {
        **os.environ,
        "CLAUDOMATOR_HOME": str(home),
        "CLAUDOMATOR_CLAUDE_BIN": "/bin/false",
        "CLAUDOMATOR_LOG_FORMAT": "json",
    }
    config = load_config(env=env)
    config.data_dir.ensure()
    Store(config.data_dir.database).close()
    fill(config.data_dir.database, 0, finished)
    log_path = root / f"idle-{finished}.log"
    serve = start_serve(env, log_path)
    try:
        time.sleep(1.0)
        user0, sys0 = cpu_s(serve.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        user1, sys1 = cpu_s(serve.pid)
        elapsed = time.monotonic() - t0
    finally:
        stop_serve(serve, log_path)
    return (user1 - user0 + sys1 - sys0) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000, help="pick calls per timing batch")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle serve, 0 = skip")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-pick", action="store_true")
    parser.add_argument("--quick", action="store_true", help="the smallest sizes (CI)")
    args = parser.parse_args()
    if args.quick:  # new defaults; flags given still win
        parser.set_defaults(files=200, rounds=1, small=20, big=200, calls=20, idle_s=0.3)
        args = parser.parse_args()
    log.configure("warning", "json")
    os.environ.pop("CLAUDECODE", None)
    n = args.files
    if not args.skip_ingest:
        results = []
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
                res = ingest_round(Path(tmp), n, args.timeout_s)
            results.append(res)
            state = "all QUEUED" if res["done"] else (
                f"NOT DONE: {res['rows']} rows QUEUED, {res['files']} files in queued/, "
                f"{res['left_in_inbox']} left in the inbox"
            )  # fmt: skip
            print(f"round {r + 1}: {n} files in {res['seconds']:.2f} s ({state}), serve CPU "
                  f"{res['cpu_s']:.2f} s (system {res['sys_s']:.2f} s), RSS idle "
                  f"{res['rss_idle_mb']:.0f} MB, peak "
                  f"{res['peak_mb']:.0f} MB", flush=True)  # fmt: skip
        secs = sorted(r["seconds"] for r in results)
        med = secs[len(secs) // 2]
        peak = max(r["peak_mb"] for r in results)
        cpu = sorted(r["cpu_s"] for r in results)[len(results) // 2]
        renamed = sorted(r["renamed_s"] for r in results)[len(results) // 2]
        out = sorted(r["renames_out_s"] for r in results)[len(results) // 2]
        ok = all(r["done"] for r in results)
        print(f"ingest: {n} task files, rounds: {args.rounds}")
        print(f"  filesystem alone: {n} renames in {renamed:.3f} s, {n} renames out "
              f"{out:.3f} s")  # fmt: skip
        print(f"  claudomator serve: all QUEUED in {med:.2f} s median "
              f"[{secs[0]:.2f}-{secs[-1]:.2f}] = {n / med:,.0f} files/s; serve CPU {cpu:.2f} s "
              f"= {cpu / n * 1e3:.2f} ms per file")  # fmt: skip
        print(f"  goal <= 5 s: {'met' if ok and med <= 5 else 'MISSED'}; peak RSS {peak:.0f} MB "
              f"(goal <= 150 MB: {'met' if peak <= 150 else 'MISSED'})")  # fmt: skip
    if not args.skip_pick:
        big, small = args.big, args.small
        with tempfile.TemporaryDirectory(prefix="bench-pick-") as tmp:
            root = Path(tmp)
            cases = [
                pick_case(root, f"{small:,} QUEUED", small, 0, args.calls),
                pick_case(root, f"{big:,} QUEUED", big, 0, args.calls),
                pick_case(root, f"{big - small:,} done + {small:,} QUEUED", small, big - small,
                          args.calls),
            ]  # fmt: skip
            idle = (
                [idle_cpu(root, 0, args.idle_s), idle_cpu(root, big, args.idle_s)]
                if args.idle_s > 0
                else []
            )
        print("pick: Store.pick(4, now) (inside serve's claim) and Claudomator.gate() (both per "
              "dispatch round), µs per call; the pick's SQL through stdlib sqlite3")  # fmt: skip
        for c in cases:
            print(f"  {c['label']:28s} pick {c['pick_us']:6.1f}  gate {c['gate_us']:7.1f}  "
                  f"raw pick SQL {c['raw_us']:5.1f}  (store built in {c['built_s']:.1f} s)")  # fmt: skip
        c_small, c_big, c_hist = cases
        ratio = c_big["pick_us"] / c_small["pick_us"]
        print(f"  pick, {c_big['label']} / {c_small['label']}: {ratio:.2f} "
              f"(goal: near 1: {'met' if ratio < 1.5 else 'MISSED'})")  # fmt: skip
        print(f"  gate + pick, {c_hist['label']} / {c_small['label']}: "
              f"{(c_hist['gate_us'] + c_hist['pick_us']) / (c_small['gate_us'] + c_small['pick_us']):.2f}"
              f" ({c_hist['gate_us'] + c_hist['pick_us']:,.0f} vs "
              f"{c_small['gate_us'] + c_small['pick_us']:,.0f} µs)")  # fmt: skip
        if idle:
            print(f"  idle serve over {args.idle_s:g} s: empty store {idle[0]:.2%} of a core, "
                  f"{big:,} finished tasks {idle[1]:.2%}")  # fmt: skip
        pick_plan = c_big["plans"][0][1]
        print(f"  pick's plan uses ix_tasks_pick: "
              f"{'yes' if any('ix_tasks_pick' in p for p in pick_plan) else 'NO'}; full scans per "
              f"dispatch round: {sum(p.startswith('SCAN') for _, ps in c_hist['plans'] for p in ps)}")  # fmt: skip
        print(f"query plans of one dispatch round ({c_hist['label']}):")
        for sql, plan in c_hist["plans"]:
            print(f"  {sql}")
            for step in plan:
                print(f"      -> {step}")


if __name__ == "__main__":
    main()
