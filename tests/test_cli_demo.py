"""Trying claudomator without a Claude account: `init` says when claude cannot be found, and
`claudomator demo` runs its example tasks live with the stand-in claude, in a data dir of its
own, and says where to look."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from claudomator import claude_standin
from claudomator.demo import MARKER
from claudomator.stream import StreamState, feed
from tests.net import free_port
from tests.test_cli import cli


def test_init_warns_when_claude_cannot_be_found(home: Path, tmp_path: Path) -> None:
    out = cli("init", env={**os.environ, "CLAUDOMATOR_CLAUDE_BIN": str(tmp_path / "nothing")})
    assert out.returncode == 0, out.stderr
    assert "data dir ready" in out.stdout
    assert out.stderr.startswith("Warning: claude not found (claude.binary = ")
    assert "env CLAUDOMATOR_CLAUDE_BIN" in out.stderr and "claudomator demo" in out.stderr
    found = cli("init", env={**os.environ, "CLAUDOMATOR_CLAUDE_BIN": sys.executable})
    assert found.returncode == 0 and found.stderr == ""


def test_the_demo_runs_its_tasks_with_the_stand_in_and_says_where_to_look(
    tmp_path: Path, home: Path
) -> None:
    demo_home = tmp_path / "demo"
    env = {
        **os.environ,
        "CLAUDOMATOR_STANDIN_PACE_S": "0.05",
        "CLAUDOMATOR_CLAUDE_BIN": "/nonexistent/claude",  # a real claude is never what it runs
    }
    args = ["demo", "--home", str(demo_home), "--port", str(free_port()), "--exit-when-done"]
    out = cli(*args, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "stand-in" in out.stdout and "http://127.0.0.1:" in out.stdout
    for hint in ("status", "list", "logs ID"):
        assert f"CLAUDOMATOR_HOME={demo_home} " in out.stdout and hint in out.stdout
    assert out.stdout.count("COMPLETED") == 3
    done = sorted(p.name for p in (demo_home / "done").iterdir())
    assert done == ["docs.yaml", "docs.yaml.result.json", "hello.yaml", "hello.yaml.result.json"]
    mine = {**os.environ, "CLAUDOMATOR_HOME": str(demo_home)}
    tasks = json.loads(cli("list", "--json", env=mine).stdout)
    assert {t["name"] for t in tasks} == {"say hello", "outline the guide", "write the guide"}
    hello = next(t for t in tasks if t["name"] == "say hello")
    logs = cli("logs", hello["id"], env=mine).stdout
    assert "(stand-in claude) I was asked: Say hello" in logs
    assert "→ Bash: ls" in logs and "README.md" in logs and "[result] success" in logs
    detail = json.loads(cli("status", "--json", hello["id"], env=mine).stdout)
    assert detail["executions"][0]["cost_usd"] == 0
    assert detail["executions"][0]["cli_version"] == claude_standin.VERSION
    assert (demo_home / MARKER).exists()
    again = cli(*args[:-1], "--exit-when-done", env=env, timeout=120)  # an earlier demo's: fine
    assert again.returncode == 0, again.stderr[-3000:]


def test_the_demo_never_takes_over_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.toml").write_text("max_concurrency = 2\n")
    out = cli("demo", "--home", str(mine), "--exit-when-done")
    assert out.returncode == 1 and out.stderr.startswith("Error: ")
    assert "not a demo's data dir" in out.stderr
    assert (mine / "config.toml").read_text() == "max_concurrency = 2\n"


def test_the_stand_in_speaks_stream_json_as_claude_does(tmp_path: Path) -> None:
    """Its lines are what claudomator's own parser reads from the real CLI: an init line with
    the session id it was given, a tool call, and a success with its cost."""
    (tmp_path / "a.txt").write_text("x")
    session = "1044c6d1-0182-4204-9764-ee1c4b119c8d"
    proc = subprocess.run(
        [sys.executable, claude_standin.__file__, "-p", "--output-format", "stream-json",
         "--verbose", "--model", "sonnet", "--permission-mode", "default",
         f"--session-id={session}"],
        input="Do a thing.\n", capture_output=True, text=True, cwd=tmp_path, timeout=30,
        env={**os.environ, "CLAUDOMATOR_STANDIN_PACE_S": "0"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(m["type"], m.get("subtype")) for m in lines] == [
        ("system", "init"), ("assistant", None), ("assistant", None), ("user", None),
        ("assistant", None), ("result", "success"),
    ]  # fmt: skip
    assert lines[0]["session_id"] == session and lines[0]["cwd"] == str(tmp_path)
    assert lines[3]["message"]["content"][0]["content"] == "a.txt"  # its `ls`, for real
    result = lines[-1]
    assert result["session_id"] == session and result["total_cost_usd"] == 0
    assert not result["is_error"] and result["num_turns"] == 2
    state = StreamState()
    for line in proc.stdout.splitlines():
        feed(state, line.encode())
    assert (state.session_id, state.initialized, state.tool_calls) == (session, True, 1)
    assert state.result is not None and state.skipped_lines == 0 and state.spent_usd == 0
