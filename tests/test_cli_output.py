"""What the CLI prints for people: tables that fit the terminal, cut at a word with an ellipsis,
states coloured on a terminal (never with NO_COLOR, never when piped), `status` free of Python's
syntax, the pool and the serves in plain `status`, readable log lines, one `Error:` prefix, help
for every option, and shell completion."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any, cast

import pytest

from claudomator.cli import render
from claudomator.cli.terminal import ellipsize, fit, layout
from claudomator.log import readable
from claudomator.records import Status, TaskDetail
from claudomator.state import State
from claudomator.taskfile import parse_bytes
from tests.poll import wait_for
from tests.services import make_service
from tests.taskfiles import scenario, task_yaml
from tests.test_cli import cli, popen, running_task, write

ANSI = re.compile(r"\x1b\[[0-9;]*m")


# -- the decisions, by table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "width", "shown"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("a long reason here", 10, "a long…"),  # at a word's end, not mid-word
        ("a long reason", 7, "a long…"),
        ("permission denied: Write(/x)", 20, "permission denied…"),  # no dangling colon
        ("abcdefghijklmnop", 8, "abcdefg…"),  # one long word: cut, still with the ellipsis
        ("a verylongwordthatgoeson", 12, "a verylongw…"),  # the word's end is too far back
        ("anything", 1, "…"),
        ("anything", 0, ""),
    ],
)
def test_ellipsize(text: str, width: int, shown: str) -> None:
    assert ellipsize(text, width) == shown
    assert len(ellipsize(text, width)) <= width


@pytest.mark.parametrize(
    ("widths", "flexible", "limit", "fitted"),
    [
        ([10, 40, 30], [1, 2], None, [10, 40, 30]),  # not a terminal: as they are
        ([10, 40, 30], [1, 2], 200, [10, 40, 30]),  # room enough
        ([10, 40, 30], [1, 2], 60, [10, 23, 23]),  # the widest gives first, then both
        ([10, 40, 30], [1], 60, [10, 16, 30]),  # only the flexible one gives
        ([10, 40, 30], [1, 2], 20, [10, 10, 10]),  # never below the floor (it still overflows)
    ],
)
def test_fit(widths: list[int], flexible: list[int], limit: int | None, fitted: list[int]) -> None:
    assert fit(widths, flexible, limit, [0] * len(widths)) == fitted


@pytest.mark.parametrize(
    ("limit", "shown"),
    [
        (None, {0: 26, 1: 30, 2: 9, 3: 8, 4: 40}),
        (120, {0: 26, 1: 30, 2: 9, 3: 8, 4: 39}),
        (80, {0: 26, 1: 14, 2: 9, 3: 8, 4: 15}),  # cut before anything is left out
        (60, {0: 26, 1: 10, 2: 9, 4: 10}),  # then the optional column goes (and it overflows)
    ],
)
def test_layout(limit: int | None, shown: dict[int, int]) -> None:
    got = layout([26, 30, 9, 8, 40], [2, 4, 5, 8, 6], limit, flexible=[1, 4], optional=[3])
    assert got == shown
    if limit is not None and limit >= 80:
        assert sum(got.values()) + 2 * (len(got) - 1) <= limit


@pytest.mark.parametrize(
    ("reason", "until", "said"),
    [
        ("maintenance", None, "maintenance"),
        ("rate limited", "12:00:00", "rate limited until 12:00:00"),
        ("rate limited until 12:00:00: api_error 429", "12:00:00", "rate limited until 12:00:00: api_error 429"),
    ],
)  # fmt: skip
def test_until_is_said_once(reason: str, until: str | None, said: str) -> None:
    assert render.with_until(reason, until) == said


@pytest.mark.parametrize(
    ("value", "shown"),
    [(["x"], "x"), (["a", "b"], "a, b"), ([], "-"), (None, "-"), ("", "-"), (3, "3"),
     ({"A": "1", "TOKEN": "***"}, "A=1 TOKEN=***"), ({}, "-")],
)  # fmt: skip
def test_values_are_shown_without_python_syntax(value: object, shown: str) -> None:
    assert render.shown(value) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0s"), (40, "40s"), (192, "3m12s"), (3600, "1h"), (3725, "1h2m"),
                           (86405, "1d"), (90000, "1d1h")],
)  # fmt: skip
def test_uptime_in_two_units(seconds: float, shown: str) -> None:
    assert render.rough(seconds) == shown


@pytest.mark.parametrize(
    ("event", "logged"),
    [
        ({"event": "node.up", "execution_id": "", "task_id": None, "id": 1},
         {"event": "node.up", "id": 1}),  # empty fields left out, not a 0 or False
        ({"at": 1796416688.5, "attempts": 0, "final": False},
         {"at": "2026-12-04T20:38:08.500Z", "attempts": 0, "final": False}),
        ({"not_before": 1796416688.0, "started_at": 1796416688.0, "cost_usd": 1796416688.0},
         {"not_before": "2026-12-04T20:38:08.000Z", "started_at": "2026-12-04T20:38:08.000Z",
          "cost_usd": 1796416688.0}),  # only moments
        ({"at": True, "until": 12.0}, {"at": True, "until": 12.0}),  # not epoch seconds
    ],
)  # fmt: skip
def test_log_lines_are_readable(event: dict[str, Any], logged: dict[str, Any]) -> None:
    assert dict(readable(None, "info", dict(event))) == logged


# -- on a terminal -----------------------------------------------------------------------------


def on_terminal(args: list[str], columns: int, **env: str) -> str:
    """`claudomator ARGS` with stdout on a pseudo-terminal `columns` wide; what it printed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "claudomator.cli", *args],
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**environ, **env},
    )
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out.decode().replace("\r\n", "\n")


@pytest.fixture
def tasks(home: Path) -> list[str]:
    """Three tasks, one with a long name and a long reason (cancelled)."""
    long_name = "update the changelog and the release notes for the next version"
    with make_service(home) as service:
        ids = []
        for name in ("build", "test", long_name):
            ids += service.submit(parse_bytes(task_yaml(name).encode(), "t.yaml"), source="test")
        reason = "cancelled by hand because the release was postponed until the review is done"
        service.cancel_if(ids[2], [State.QUEUED], reason)
    return ids


def test_list_fits_the_terminal_and_colours_states(tasks: list[str]) -> None:
    out = on_terminal(["list"], 80)
    lines = out.splitlines()
    plain = [ANSI.sub("", line) for line in lines]
    assert all(len(line) <= 80 for line in plain), plain
    assert plain[0].split() == ["ID", "NAME", "STATE", "COST", "REASON"]  # less needed: left out
    assert "\x1b[" in out and "CANCELLED" in out  # coloured
    cancelled = next(line for line in plain if tasks[2] in line)
    assert "…" in cancelled and "update the" in cancelled and "cancelled by" in cancelled
    wide = [ANSI.sub("", line) for line in on_terminal(["list"], 250).splitlines()]
    assert wide[0].split()[3:5] == ["PRIORITY", "ATTEMPTS"]  # room for every column
    assert "postponed until the review is done" in wide[1]  # the whole reason, never cut at 60
    assert "\x1b[" not in on_terminal(["list"], 80, NO_COLOR="1")


def test_piped_output_is_neither_cut_nor_coloured(tasks: list[str]) -> None:
    out = cli("list", env={**os.environ, "COLUMNS": "40"}).stdout
    assert "\x1b[" not in out
    assert "until the review is done" in out and "for the next version" in out


def test_status_of_a_task_has_no_python_syntax(
    fake_claude: Path, tmp_path: Path, home: Path
) -> None:
    folder = tmp_path / "project" / "tasks"
    (folder / "sub").mkdir(parents=True)
    text = task_yaml(
        "t", "do it", tags=["x", "y"], depends_on=[],
        claude={"working_dir": "sub", "env": {"A": "1", "MY_TOKEN": "s3cret"}},
    )  # fmt: skip
    f = write(folder / "t.yaml", text)
    out = cli("run", "--json", str(f), cwd=tmp_path)  # the file named relative to the cwd too
    (task,) = json.loads(out.stdout)["tasks"]
    shown = cli("status", task["id"]).stdout
    assert "['" not in shown and "{'" not in shown, shown
    lines = dict(line.split(None, 1) for line in shown.splitlines() if line[:1] != " ")
    assert lines["tags:"] == "x, y"
    assert lines["depends_on:"] == "-"
    assert lines["env:"] == "A=1 MY_TOKEN=***"
    assert lines["working_dir:"] == str(folder / "sub")  # against the task file's folder
    assert lines["model:"] == "sonnet (config default)"
    detail = json.loads(cli("status", "--json", task["id"]).stdout)
    assert detail["spec"]["claude"]["working_dir"] == str(folder / "sub")  # recorded so


def test_status_of_a_task_from_a_git_source_shows_its_provenance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = cast(TaskDetail, {
        "id": "T1", "name": "fix", "state": "COMPLETED", "reason": "", "priority": "normal",
        "tags": [], "depends_on": [], "attempts": 1, "source": "@team",
        "source_path": "team/fix.yaml", "created_at": None, "updated_at": None, "cost_usd": 0.5,
        "provenance": {"source": "team", "commit": "c0ffee", "author": "dev@example.com",
                       "committed_at": "2026-01-01T00:00:00+01:00", "path": "tasks/team/fix.yaml",
                       "blob": "b10b"},
        "spec": {"claude": {"working_dir": "/srv/app"}}, "executions": [],
    })  # fmt: skip
    render.task_detail(task, {"model": "sonnet", "working_dir": "/home/me"})
    lines = capsys.readouterr().out.splitlines()
    for line in (
        "commit:       c0ffee",
        "author:       dev@example.com",
        "committed_at: 2026-01-01T00:00:00+01:00",
        "blob:         b10b",
        "working_dir:  /srv/app",
        "model:        sonnet (config default)",
    ):
        assert line in lines, lines


def overview(**pool: Any) -> Status:
    node = {
        "id": "alpha", "kind": "serve", "host": "h1", "pid": 7, "state": "up", "expired": False,
        "slots": 4, "busy": 1, "running": [], "heartbeat_age_s": 1.0,
        "started_at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    return cast(Status, {
        "counts": {"QUEUED": 2, "RUNNING": 1, "FAILED": 0}, "running": [], "cost_today_usd": 0.5,
        "daily_budget_usd": None, "nodes": [node],
        "pool": {"paused": False, "reason": "", "until": None, "draining": False, "slots": 4,
                 "busy": 1, **pool},
    })  # fmt: skip


def test_status_shows_the_pool_and_the_serves_with_their_uptime(
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = 1767225600.0  # 2026-01-01T00:00:00Z
    render.status(overview(), 0, now=start + 192)
    assert capsys.readouterr().out.splitlines() == [
        "tasks: 2 QUEUED, 1 RUNNING",
        "pool: 1/4 slots busy; starting tasks",
        "serve: up for 3m12s, node alpha, pid 7 on h1",
        "cost today: $0.5000",
    ]
    limited = {"paused": True, "reason": "rate limited until 01:00:00: api_error 429"}
    render.status(overview(**limited, until="2026-01-01T01:00:00Z"), 0, now=start)
    assert capsys.readouterr().out.splitlines()[1] == (
        "pool: 1/4 slots busy; not starting new tasks: rate limited until 01:00:00: api_error 429"
    )


def test_plain_status_says_when_no_serve_is_up_and_why_nothing_starts(home: Path) -> None:
    assert cli("pause", "--reason", "maintenance").returncode == 0
    out = cli("status").stdout.splitlines()
    assert out[:3] == [
        "tasks: none",
        "pool: 0/4 slots busy; not starting new tasks: maintenance",
        "serve: none running (`claudomator serve` starts one)",
    ]
    assert cli("drain").returncode == 0 and cli("resume").returncode == 0
    assert cli("drain").returncode == 0
    assert "pool: 0/4 slots busy; not starting new tasks: draining" in cli("status").stdout


def test_logs_are_coloured_on_a_terminal(fake_claude: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "t.yaml", task_yaml("t", claude={"working_dir": str(tmp_path)}))
    (task,) = json.loads(cli("run", "--json", str(f)).stdout)["tasks"]
    out = on_terminal(["logs", task["id"]], 100)
    assert "\x1b[32m[result] success" in out  # green
    assert re.search(r"\x1b\[36m→ Bash", out)  # a tool call: cyan
    assert "\x1b[" not in cli("logs", task["id"]).stdout


def test_one_error_prefix_and_help_for_every_option(home: Path) -> None:
    out = cli("status", "NOPE")
    assert out.returncode == 4 and out.stderr.startswith("Error: no task with id 'NOPE'")
    assert cli("list", "--bogus").stderr.splitlines()[-1].startswith("Error: ")
    for command in ("cancel", "retry"):
        help_text = cli(command, "--help").stdout
        assert re.search(r"--json +Print the task as a JSON object", help_text), help_text
    assert "--no-wait" in cli("cancel", "--help").stdout
    assert cli("list", "--state", "failed", "--json").returncode == 0  # any case


def test_cancel_without_waiting_says_cancelling(fake_claude: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "t.yaml", task_yaml("long", scenario("sleep", sleep_s=60)))
    proc = popen("run", "--json", str(f))
    try:
        running = wait_for(running_task)
        out = cli("cancel", "--no-wait", running["id"])
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"{running['id']} long: cancelling\n"
    finally:
        stdout, _ = proc.communicate(timeout=30)
    assert json.loads(stdout)["tasks"][0]["state"] == "CANCELLED"


@pytest.mark.parametrize(
    ("shell", "words", "cword", "expected"),
    [
        ("bash", "claudomator sta", "1", "plain,status"),
        ("zsh", "claudomator list --st", "2", "--state"),
        ("fish", "claudomator list --state fai", "fai", "plain,failed"),
    ],
)
def test_shell_completion(shell: str, words: str, cword: str, expected: str) -> None:
    env = {**os.environ, "_CLAUDOMATOR_COMPLETE": f"{shell}_complete"}
    out = cli(env={**env, "COMP_WORDS": words, "COMP_CWORD": cword})
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout.lower().splitlines(), out.stdout
    source = cli(env={**os.environ, "_CLAUDOMATOR_COMPLETE": f"{shell}_source"}).stdout
    assert "_CLAUDOMATOR_COMPLETE" in source  # the script the README's line loads
