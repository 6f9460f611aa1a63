"""`claudomator doctor`: the pure verdicts as tables, then the command against real data dirs,
the fake claude, real sockets, a real `serve`, real git checkouts, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from claudomator.billing import Credentials
from claudomator.config import load_config
from claudomator.diagnosis import (
    STATUSES,
    Answer,
    Check,
    Checkout,
    Entry,
    Stored,
    claude_verdict,
    config_verdict,
    credentials_verdict,
    data_dir_verdict,
    database_verdict,
    healthy,
    port_verdict,
    serve_verdict,
    source_verdict,
)
from claudomator.doctor import ask_version, bind_error, checks
from claudomator.records import Node
from tests.net import free_port
from tests.poll import wait_for
from tests.services import make_service

SECRET = "sk-ant-api03-doctor-must-never-show-this"
CREDENTIAL_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CONFIG_DIR",
)


@pytest.fixture(autouse=True)
def _machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """No credentials of the machine's, a HOME without a claude login, git without the
    machine's config, and an API port nothing else uses (returned)."""
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    port = free_port()
    monkeypatch.setenv("CLAUDOMATOR_SERVER_PORT", str(port))
    return port


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claudomator.cli", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def report(**env: str) -> tuple[dict[str, Check], int, str]:
    """`doctor --json`: the checks by name, the exit code, and all it printed."""
    out = doctor("--json", **env)
    data = json.loads(out.stdout)
    assert set(data) == {"checks", "ok"}
    found = [Check(**c) for c in data["checks"]]
    assert all(c.status in STATUSES for c in found)
    assert data["ok"] is healthy(found) is (out.returncode == 0)
    return {c.name: c for c in found}, out.returncode, out.stdout + out.stderr


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com",
         "-c", "init.defaultBranch=main", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


# -- the verdicts ------------------------------------------------------------------------------

CLAUDE = "/opt/bin/claude"


@pytest.mark.parametrize(
    ("binary", "path", "answer", "status", "says"),
    [
        ("claude", None, None, "problem", "'claude' not found on PATH"),
        ("/opt/claude", None, None, "problem", "'/opt/claude' not found"),
        ("claude", CLAUDE, Answer(0, "2.1.197 (Claude Code)\n"), "ok", "version 2.1.197"),
        ("claude", CLAUDE, Answer(None), "warning", "did not answer --version within 5s"),
        (
            "claude",
            CLAUDE,
            Answer(1, "", "boom\nSegfault"),
            "problem",
            "--version failed: Segfault",
        ),
        ("claude", CLAUDE, Answer(126, "", "Permission denied"), "problem", "Permission denied"),
        ("claude", CLAUDE, Answer(0, "git version 2.43\n"), "warning", "is it Claude Code?"),
    ],
)
def test_claude_verdict(
    binary: str, path: str | None, answer: Answer | None, status: str, says: str
) -> None:
    check = claude_verdict(binary, path, answer)
    assert (check.name, check.status) == ("claude", status)
    assert says in check.detail
    assert bool(check.fix) == (status != "ok")


LOGIN = "/home/u/.claude/.credentials.json"


@pytest.mark.parametrize(
    ("lane", "found", "status", "says", "fix"),
    [
        ("any", Credentials("api_key", "ANTHROPIC_API_KEY"), "ok", "an API key (ANTHROPIC_API_KEY)", ""),
        ("any", Credentials("subscription", LOGIN), "ok", f"a subscription login ({LOGIN})", ""),
        ("any", Credentials("none", ""), "warning", "none found", "log in once"),
        ("subscription", Credentials("none", ""), "warning", "none found", "log in once"),
        ("subscription", Credentials("subscription", "CLAUDE_CODE_OAUTH_TOKEN"), "ok",
         "a subscription token (CLAUDE_CODE_OAUTH_TOKEN)", ""),
        ("subscription", Credentials("api_key", "ANTHROPIC_API_KEY"), "problem",
         "claude would use an API key (ANTHROPIC_API_KEY), but claude.billing = \"subscription\"",
         "unset ANTHROPIC_API_KEY"),
        ("subscription", Credentials("api_key", "CLAUDE_CODE_USE_BEDROCK"), "problem",
         "cloud billing (CLAUDE_CODE_USE_BEDROCK)", "unset CLAUDE_CODE_USE_BEDROCK"),
        ("api_key", Credentials("subscription", LOGIN), "problem",
         "a subscription login", "set ANTHROPIC_API_KEY"),
        ("api_key", Credentials("api_key", "ANTHROPIC_API_KEY"), "ok", "claude.billing = \"api_key\"", ""),
    ],
)  # fmt: skip
def test_credentials_verdict(
    lane: Any, found: Credentials, status: str, says: str, fix: str
) -> None:
    check = credentials_verdict(lane, found)
    assert (check.name, check.status) == ("credentials", status)
    assert says in check.detail
    assert fix in check.fix


ME, THEM = 1000, 0
ROOT = Entry("", True, 0o700, ME)


@pytest.mark.parametrize(
    ("entries", "status", "says"),
    [
        (None, "warning", "/d does not exist yet"),
        ([Entry("", False, 0o600, ME)], "problem", "/d is not a folder"),
        ([ROOT, Entry("inbox", True, 0o700, ME), Entry("token", False, 0o600, ME)], "ok", "private"),
        ([Entry("", True, 0o755, ME)], "warning", "/d: others may read there"),
        ([Entry("", True, 0o755, ME), Entry("config.toml", False, 0o644, ME)], "warning",
         "/d, /d/config.toml: others may read"),
        ([Entry("", True, 0o711, ME), Entry("config.toml", False, 0o644, ME)], "warning",
         "/d/config.toml: others may read"),
        ([ROOT, Entry("config.toml", False, 0o644, ME)], "ok", "private"),  # none can go in
        ([ROOT, Entry("token", False, 0o644, ME)], "problem", "the API refuses such a token"),
        ([Entry("", True, 0o711, ME), Entry("inbox", True, 0o777, ME)], "problem",
         "/d/inbox: others may write there"),
        ([ROOT, Entry("inbox", True, 0o777, ME)], "ok", "private"),
        ([Entry("", True, 0o770, ME)], "problem", "/d: others may write there"),
        ([ROOT, Entry("queued", True, 0o700, THEM)], "problem", "/d/queued: another user's"),
        ([ROOT, Entry("claudomator.db", False, 0o400, ME)], "problem", "read-only to you"),
        ([Entry("", True, 0o755, ME), *(Entry(n, True, 0o755, ME) for n in "abcde")], "warning",
         "/d, /d/a, /d/b (and 3 more)"),
    ],
)  # fmt: skip
def test_data_dir_verdict(entries: list[Entry] | None, status: str, says: str) -> None:
    check = data_dir_verdict("/d", entries, ME)
    assert (check.name, check.status) == ("data dir", status)
    assert says in check.detail
    assert bool(check.fix) == (status != "ok")


@pytest.mark.parametrize(
    ("problems", "origins", "statuses", "fixes"),
    [
        ([], {}, ["ok"], [""]),
        ([], {"max_concurrency": "config.toml", "claude.model": "env CLAUDOMATOR_CLAUDE_MODEL"},
         ["ok"], [""]),
        (["/d/config.toml: bogus: unknown key", "CLAUDOMATOR_MAX_CONCURRENCY: max_concurrency: x",
          "--max-concurrency: max_concurrency: 0", "node.lease (5s, from config.toml) must be …"],
         {}, ["problem"] * 4,
         ["correct it in /d/config.toml", "correct CLAUDOMATOR_MAX_CONCURRENCY, or unset it",
          "correct --max-concurrency", "make node.lease longer than node.heartbeat"]),
    ],
)  # fmt: skip
def test_config_verdict(
    problems: list[str], origins: dict[str, str], statuses: list[str], fixes: list[str]
) -> None:
    found = config_verdict("/d/config.toml", True, problems, origins)
    assert [c.status for c in found] == statuses
    assert [c.detail for c in found if c.status == "problem"] == problems
    assert [c.fix.split(" (")[0] for c in found] == fixes


@pytest.mark.parametrize(
    ("stored", "status", "says"),
    [
        (Stored(found=False), "warning", "/d/db does not exist yet"),
        (Stored(found=True), "warning", "has no claudomator schema yet"),
        (Stored(found=True, version=6), "ok", "/d/db, schema 6"),
        (Stored(found=True, version=4), "warning", "schema 4, older than this claudomator's (6)"),
        (Stored(found=True, version=9), "problem", "schema 9, newer than this claudomator's (6)"),
        (Stored(found=True, error="file is not a database"), "problem", "/d/db: file is not"),
    ],
)
def test_database_verdict(stored: Stored, status: str, says: str) -> None:
    check = database_verdict("/d/db", stored, 6)
    assert (check.name, check.status) == ("database", status)
    assert says in check.detail


@pytest.mark.parametrize(
    ("error", "in_use", "serve", "status", "says"),
    [
        ("", False, None, "ok", "127.0.0.1:8484 is free"),
        ("", False, "pid 7 on h", "ok", "is free"),
        ("Address already in use", True, None, "problem", "in use by another program"),
        ("Address already in use", True, "pid 7 on h", "ok", "held by this data dir's serve"),
        ("Cannot assign requested address", False, None, "problem", "cannot listen on"),
        ("Cannot assign requested address", False, "pid 7 on h", "problem", "cannot listen"),
    ],
)
def test_port_verdict(error: str, in_use: bool, serve: str | None, status: str, says: str) -> None:
    check = port_verdict("127.0.0.1", 8484, error, in_use, serve)
    assert (check.name, check.status) == ("api port", status)
    assert says in check.detail


def node(**fields: Any) -> Node:
    """A nodes row as the read path gives it: only what `serve_verdict` reads is filled in."""
    row = {"id": "h-1", "kind": "serve", "host": "h", "pid": 7, "state": "up"}
    return cast(Node, {**row, "started_at": "2030-01-01T00:00:00.000+00:00", **fields})


@pytest.mark.parametrize(
    ("holder", "since", "row", "status", "says"),
    [
        (None, None, None, "ok", "not running"),
        ("pid 7 on h", "2030-01-01T00:00:00", node(), "ok", "running since 2030-01-01T00:00:00 (pid 7 on h)"),
        ("pid 7 on h", None, None, "ok", "running since an unknown time"),
        (None, None, node(), "warning", "node h-1 (pid 7, started 2030-01-01"),
        (None, None, node(state="stopped"), "ok", "not running"),
        (None, None, node(state="lost"), "ok", "not running"),
        (None, None, node(host="elsewhere"), "ok", "not running"),
        (None, None, node(kind="run"), "ok", "not running"),
    ],
)  # fmt: skip
def test_serve_verdict(
    holder: str | None, since: str | None, row: Node | None, status: str, says: str
) -> None:
    check = serve_verdict(holder, since, row, "h")
    assert (check.name, check.status) == ("serve", status)
    assert says in check.detail


TIP = "0123456789abcdef" * 2 + "01234567"


@pytest.mark.parametrize(
    ("checkout", "remote", "last_error", "status", "says"),
    [
        (Checkout(exists=False), "", "", "problem", "/src: no such folder"),
        (Checkout(exists=True, error="/src is inside the checkout /"), "", "", "problem", "inside"),
        (Checkout(exists=True), "", "", "problem", "/src: no branch main"),
        (Checkout(exists=True), "origin", "", "warning", "no branch main yet"),
        (Checkout(exists=True, tip=TIP), "", "", "ok", "/src, main at 0123456789ab"),
        (Checkout(exists=True, tip=TIP), "", "refused: not a fast-forward", "warning",
         "last time: refused"),
    ],
)  # fmt: skip
def test_source_verdict(
    checkout: Checkout, remote: str, last_error: str, status: str, says: str
) -> None:
    check = source_verdict("team", "/src", "main", remote, checkout, last_error)
    assert (check.name, check.status) == ("source team", status)
    assert says in check.detail


@pytest.mark.parametrize(
    ("statuses", "ok"),
    [([], True), (["ok", "warning"], True), (["ok", "problem", "warning"], False)],
)
def test_healthy_means_no_problem(statuses: list[Any], ok: bool) -> None:
    assert healthy([Check("x", s, "") for s in statuses]) is ok


# -- the command -------------------------------------------------------------------------------


def test_a_fresh_machine_with_the_fake_claude(home: Path, fake_claude: Path) -> None:
    found, code, _ = report()
    assert found["claude"].status == "ok"
    assert found["claude"].detail == f"{fake_claude}, version 2.1.197"
    assert found["credentials"].status == "warning"  # this HOME has no login
    assert found["data dir"].status == found["database"].status == "warning"  # not made yet
    assert not home.exists()  # looking makes nothing
    assert found["config"].status == found["api port"].status == found["serve"].status == "ok"
    assert code == 0
    assert list(found) == ["claude", "credentials", "data dir", "config", "database", "api port",
                           "serve"]  # fmt: skip


def test_the_lines_are_aligned_with_what_to_do(home: Path, fake_claude: Path) -> None:
    out = doctor(CLAUDOMATOR_CLAUDE_BIN=str(home.parent / "no-such-claude"))
    assert out.returncode == 1
    *lines, summary = out.stdout.splitlines()
    assert summary == "1 problem, 3 warnings"
    width = len("credentials")  # the longest name here
    for line in lines:
        status, name, detail = line[:7].rstrip(), line[9 : 9 + width].rstrip(), line[11 + width :]
        assert status in STATUSES and name and detail[0] != " ", line
    assert lines[0] == (
        f"problem  claude       '{home.parent}/no-such-claude' not found -> install Claude Code, "
        "or point claude.binary (CLAUDOMATOR_CLAUDE_BIN, --claude-bin) at it"
    )
    assert lines[-1] == "ok       serve        not running (`claudomator serve` starts it)"


def test_a_missing_claude_is_a_problem(home: Path, tmp_path: Path) -> None:
    found, code, _ = report(CLAUDOMATOR_CLAUDE_BIN="claude-that-is-not-there")
    assert found["claude"].status == "problem"
    assert "'claude-that-is-not-there' not found on PATH" in found["claude"].detail
    assert "CLAUDOMATOR_CLAUDE_BIN" in found["claude"].fix
    assert code == 1


def test_a_claude_that_hangs_is_cut_short(tmp_path: Path) -> None:
    slow = tmp_path / "slow-claude"
    slow.write_text("#!/bin/sh\nsleep 30 &\nsleep 30\n")
    slow.chmod(0o755)
    started = time.monotonic()
    assert ask_version(str(slow), os.environ, timeout_s=0.5) == Answer(None)
    assert time.monotonic() - started < 5  # the child it started did not hold the pipes


def test_an_api_key_outside_the_subscription_lane_names_the_variable_never_its_value(
    home: Path, fake_claude: Path
) -> None:
    write_config(home, '[claude]\nbilling = "subscription"\n')
    found, code, printed = report(ANTHROPIC_API_KEY=SECRET)
    assert found["credentials"].status == "problem"
    assert "ANTHROPIC_API_KEY" in found["credentials"].detail
    assert "unset ANTHROPIC_API_KEY" in found["credentials"].fix
    assert code == 1
    text = doctor(ANTHROPIC_API_KEY=SECRET)
    assert "problem  credentials" in text.stdout
    assert SECRET not in printed + text.stdout + text.stderr


def test_a_subscription_login_fits_the_subscription_lane(
    home: Path, fake_claude: Path, tmp_path: Path
) -> None:
    login = tmp_path / "user" / ".claude" / ".credentials.json"
    login.parent.mkdir()
    login.write_text(json.dumps({"claudeAiOauth": {"accessToken": SECRET}}))
    found, _, printed = report(CLAUDOMATOR_CLAUDE_BILLING="subscription")
    assert found["credentials"] == Check(
        "credentials", "ok", f'a subscription login ({login}); claude.billing = "subscription"'
    )
    assert SECRET not in printed


def test_every_config_error_is_a_problem_and_the_rest_is_still_checked(
    home: Path, fake_claude: Path
) -> None:
    write_config(
        home,
        '[claude]\nmodle = "opus"\ntimeout = "forever"\n'
        '[[sources]]\nname = "team"\nkind = "svn"\npath = "/x"\n',
    )
    out = doctor("--json", CLAUDOMATOR_MAX_CONCURRENCY="lots")
    assert out.returncode == 1
    found = json.loads(out.stdout)["checks"]
    details = [c["detail"] for c in found if c["name"] == "config"]
    assert len(details) == 4, details
    assert all(c["status"] == "problem" for c in found if c["name"] == "config")
    assert any("sources[0].kind" in d for d in details)
    assert any("claude.modle: unknown key" in d and "claude.model" in d for d in details)
    assert any("claude.timeout" in d for d in details)
    assert any(d.startswith("CLAUDOMATOR_MAX_CONCURRENCY") for d in details)
    names = [c["name"] for c in found]
    assert {"claude", "database", "serve"} <= set(names)  # the rest is still looked at
    assert next(c for c in found if c["name"] == "claude")["status"] == "ok"
    assert out.stderr == ""


def test_load_config_raises_the_first_error_unless_asked_for_all(home: Path) -> None:
    from claudomator.errors import ConfigError

    write_config(home, 'bogus = 1\n[node]\nlease = "1s"\nheartbeat = "2s"\n')
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        load_config(home, env={})
    problems: list[str] = []
    config = load_config(home, env={}, problems=problems)
    assert len(problems) == 2 and "bogus" in problems[0] and "node.lease" in problems[1]
    assert config.data_dir.root == home


def test_loose_permissions(home: Path, fake_claude: Path) -> None:
    make_service(home).close()
    found, code, _ = report()
    assert found["data dir"].status == "ok"
    assert found["database"].status == "ok" and "schema" in found["database"].detail
    assert code == 0
    home.chmod(0o755)
    found, code, _ = report()
    assert found["data dir"].status == "warning"
    assert found["data dir"].detail.startswith(f"{home}")
    assert "others may read there" in found["data dir"].detail
    assert found["data dir"].fix == f"chmod -R go-rwx {home}"
    assert code == 0
    (home / "inbox").chmod(0o777)
    found, code, _ = report()
    assert found["data dir"].status == "problem"
    assert f"{home}/inbox: others may write there" in found["data dir"].detail
    assert code == 1


def test_a_port_held_by_another_socket_is_a_problem(
    home: Path, fake_claude: Path, _machine: int
) -> None:
    assert bind_error("127.0.0.1", _machine) == ("", False)
    found, _, _ = report()
    assert found["api port"] == Check("api port", "ok", f"127.0.0.1:{_machine} is free")
    with socket.socket() as other:
        other.bind(("127.0.0.1", _machine))
        other.listen()
        error, in_use = bind_error("127.0.0.1", _machine)
        assert in_use and error
        found, code, _ = report()
    assert found["api port"].status == "problem"
    assert "in use by another program" in found["api port"].detail
    assert "server.port" in found["api port"].fix
    assert code == 1


@pytest.fixture
def running_serve(home: Path, fake_claude: Path, tmp_path: Path) -> Iterator[Path]:
    """`serve` with its API, as a process; yields its log."""
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CLAUDOMATOR_CLAUDE_WORKING_DIR": str(tmp_path)},
        )
        try:
            wait_for(lambda: b"serve.started" in log.read_bytes() or proc.poll() is not None)
            assert proc.poll() is None, log.read_text()
            yield log
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_a_running_serve_is_shown_with_its_start_and_holds_the_port(
    running_serve: Path, _machine: int
) -> None:
    found, code, _ = report()
    serve = found["serve"]
    assert serve.status == "ok" and serve.detail.startswith("running since 20")
    assert "(pid " in serve.detail
    assert found["api port"].status == "ok"
    assert "held by this data dir's serve" in found["api port"].detail
    assert found["database"].status == found["data dir"].status == "ok", found
    assert code == 0


def test_serve_logs_what_is_not_ok_at_start(home: Path, fake_claude: Path, tmp_path: Path) -> None:
    write_config(home, f'[[sources]]\nname = "team"\nkind = "git"\npath = "{tmp_path}/gone"\n')
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANTHROPIC_API_KEY": SECRET, "CLAUDOMATOR_CLAUDE_BILLING": "subscription"},
        )  # fmt: skip
        try:
            wait_for(lambda: b"serve.started" in log.read_bytes() or proc.poll() is not None)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    text = log.read_text()
    assert proc.returncode == 0, text
    lines = [json.loads(line) for line in text.splitlines() if '"serve.check"' in line]
    by_check = {line["check"]: line for line in lines}
    assert by_check["source team"]["status"] == "problem"
    assert "no such folder" in by_check["source team"]["detail"]
    assert by_check["credentials"]["status"] == "problem"
    assert "api port" not in by_check  # --no-api
    assert SECRET not in text


def test_a_serve_killed_without_stopping_is_a_warning(
    home: Path, fake_claude: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: b"serve.started" in log.read_bytes() or proc.poll() is not None)
        finally:
            proc.kill()
            proc.wait(30)
    found, code, _ = report()
    assert found["serve"].status == "warning", log.read_text()
    assert f"(pid {proc.pid}, started 20" in found["serve"].detail
    assert "recorded as up" in found["serve"].detail
    assert "recovery" in found["serve"].fix
    assert code == 0


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_git_sources_checkouts(home: Path, fake_claude: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    tip = git(repo, "rev-parse", "HEAD")
    tables = [
        ("good", repo, ""),
        ("gone", tmp_path / "gone", ""),
        ("nobranch", repo, 'branch = "release"\n'),
        ("fetched", repo, 'branch = "release"\nremote = "origin"\n'),
        ("inside", repo / "sub", ""),
    ]
    (repo / "sub").mkdir()
    write_config(home, "".join(
        f'[[sources]]\nname = "{n}"\nkind = "git"\npath = "{p}"\n{extra}' for n, p, extra in tables
    ))  # fmt: skip
    found, code, _ = report()
    assert found["source good"] == Check("source good", "ok", f"{repo}, main at {tip[:12]}")
    assert found["source gone"].status == "problem"
    assert found["source gone"].detail == f"{tmp_path}/gone: no such folder"
    assert found["source nobranch"].status == "problem"
    assert "no branch release" in found["source nobranch"].detail
    assert found["source fetched"].status == "warning"
    assert found["source inside"].status == "problem"
    assert "not its top folder" in found["source inside"].detail
    assert code == 1


def test_a_database_newer_than_this_claudomator(home: Path, fake_claude: Path) -> None:
    make_service(home).close()
    with sqlite3.connect(home / "claudomator.db") as db:
        db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    db.close()
    found, code, _ = report()
    assert found["database"].status == "problem"
    assert "schema 999, newer than this claudomator's" in found["database"].detail
    assert code == 1


def test_a_file_that_is_no_database(home: Path, fake_claude: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "claudomator.db").write_bytes(b"not sqlite at all, " * 100)
    (home / "claudomator.db").chmod(0o600)
    found, code, _ = report()
    assert found["database"].status == "problem"
    assert code == 1


def test_postgresql_schema_and_an_unreachable_server(
    postgresql_url: str, home: Path, fake_claude: Path
) -> None:
    config = load_config(home, env={"CLAUDOMATOR_DATABASE_URL": postgresql_url})
    database = next(c for c in checks(config) if c.name == "database")
    assert database.status == "warning" and "no claudomator schema yet" in database.detail
    make_service(home, env={"CLAUDOMATOR_DATABASE_URL": postgresql_url}).close()
    database = next(c for c in checks(config) if c.name == "database")
    assert database.status == "ok" and ", schema " in database.detail
    port = free_port()
    url = f"postgresql://claudomator:hunter2@127.0.0.1:{port}/nothing"
    started = time.monotonic()
    found, code, printed = report(CLAUDOMATOR_DATABASE_URL=url)
    assert found["database"].status == "problem"
    assert "cannot connect" in found["database"].detail
    assert "hunter2" not in printed
    assert code == 1
    assert time.monotonic() - started < 30
