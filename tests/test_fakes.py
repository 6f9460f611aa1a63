"""The test doubles behave like the real Claude Code CLI 2.1.197 (shared/claude-cli facts).

The fake `claude` is checked against the documented command-line errors, the stream-json
schema of tests/data/sample-stream.jsonl and the observed endings; MockAnthropic is checked over
HTTP; the `realcli` tests run the real CLI against MockAnthropic.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import make_fake_claude, make_instant_claude, real_claude
from tests.fakes.mock_api import REAL_CLI_ENV, MockAnthropic
from tests.needs import needs

SAMPLE = Path(__file__).parent / "data" / "sample-stream.jsonl"
SID = "1044c6d1-0182-4204-9764-ee1c4b119c8d"
STREAM = ["-p", "--output-format", "stream-json", "--verbose"]

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def claude(tmp_path: Path) -> Path:
    return make_fake_claude(tmp_path / "bin")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that steers the fake, plus `extra`."""
    drop = ("FAKE_CLAUDE_", "CLAUDE_CONFIG_DIR", "CLAUDE_CODE_", "ANTHROPIC_", "IS_SANDBOX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, **extra}


def run(
    claude: Path,
    args: list[str],
    prompt: str | None = "",
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(claude), *args],
        input=prompt,
        stdin=subprocess.DEVNULL if prompt is None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        timeout=20,
    )


def messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def fake(scenario: str, **params: object) -> str:
    return "\n".join([f"fake-scenario: {scenario}"] + [f"fake-{k}: {v}" for k, v in params.items()])


def eof_within(fd: int, seconds: float) -> bool:
    """Whether the pipe reaches end-of-file (every writer gone) within `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0] and not os.read(fd, 1 << 16):
            return True
    return False


def reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["--no-such-flag"], "error: unknown option '--no-such-flag'\n"),
        (["--verbos"], "error: unknown option '--verbos'\n(Did you mean --verbose?)\n"),
        (["--verbose=1"], "error: unknown option '--verbose=1'\n(Did you mean --verbose?)\n"),
        (["-pX"], "error: unknown option '-X'\n"),
        (["-foo"], "error: unknown option '-foo'\n"),
        (
            ["--permission-mode", "bogus"],
            "error: option '--permission-mode <mode>' argument 'bogus' is invalid. Allowed "
            "choices are acceptEdits, auto, bypassPermissions, default, dontAsk, plan.\n",
        ),
        (
            ["--output-format", "bogus"],
            "error: option '--output-format <format>' argument 'bogus' is invalid. Allowed "
            "choices are text, json, stream-json.\n",
        ),
        (["--model"], "error: option '--model <model>' argument missing\n"),
        (
            ["--session-id", "not-a-uuid", "hi"],
            "Error: Invalid session ID. Must be a valid UUID.\n",
        ),
        (
            ["--output-format", "stream-json", "hi"],
            "Error: When using --print, --output-format=stream-json requires --verbose\n",
        ),
        (
            [],
            "Error: Input must be provided either through stdin or as a prompt argument when "
            "using --print\n",
        ),
        (  # a variadic option swallows the prompt (README: pitfall 1)
            ["--allowedTools", "Bash", "Write", "do X"],
            "Error: Input must be provided either through stdin or as a prompt argument when "
            "using --print\n",
        ),
    ],
)
def test_usage_errors_are_the_real_messages_with_exit_1_and_no_stdout(
    claude: Path, work: Path, args: list[str], stderr: str
) -> None:
    p = run(claude, ["-p", *args], None, cwd=work)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", stderr)


def test_max_budget_usd_must_be_positive_a_bun_crash_in_2_1_197(claude: Path, work: Path) -> None:
    p = run(claude, ["-p", "--max-budget-usd", "0", "hi"], None, cwd=work)
    assert (p.returncode, p.stdout) == (1, "")
    assert "\nerror: --max-budget-usd must be a positive number greater than 0\n" in p.stderr
    assert p.stderr.endswith("Bun v1.4.0 (Linux x64 baseline)\n")


@pytest.mark.skipif(os.getuid() != 0, reason="the refusal only happens for root")
def test_bypass_permissions_as_root_is_refused_unless_is_sandbox(claude: Path, work: Path) -> None:
    args = ["-p", "--permission-mode", "bypassPermissions", "hi"]
    p = run(claude, args, None, cwd=work)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == (
        "--dangerously-skip-permissions cannot be used with root/sudo privileges for security "
        "reasons\n"
    )
    p = run(claude, args, None, cwd=work, env=clean_env(IS_SANDBOX="1"))
    assert p.returncode == 0, p.stderr


def test_version_and_equals_form_and_hidden_options(claude: Path, work: Path) -> None:
    assert run(claude, ["--version"], None, cwd=work).stdout == "2.1.197 (Claude Code)\n"
    assert run(claude, ["-pv"], None, cwd=work).stdout == "2.1.197 (Claude Code)\n"
    args = [*STREAM, "--allowedTools=Bash,Write", "--max-turns", "5", "--task-budget", "1000"]
    args += ["--session-id", SID, "--add-dir=/tmp", "--betas", "b1", "b2", "--", "do X"]
    p = run(claude, args, None, cwd=work)
    assert p.returncode == 0, p.stderr
    assert messages(p.stdout)[0]["session_id"] == SID


# -- the stream ------------------------------------------------------------------------------


def test_success_stream_has_the_sample_schema_and_cost(claude: Path, work: Path) -> None:
    args = [*STREAM, "--model", "sonnet", "--permission-mode", "acceptEdits", "--session-id", SID]
    p = run(claude, args, "Write some notes, please.", cwd=work)
    assert p.returncode == 0, p.stderr
    got = messages(p.stdout)
    sample = messages(SAMPLE.read_text())
    assert [(m["type"], m.get("subtype")) for m in got] == [
        (m["type"], m.get("subtype")) for m in sample
    ]
    for mine, theirs in zip(got, sample, strict=True):
        assert list(mine) == list(theirs), mine["type"]  # the same keys in the same order
        if mine["type"] == "assistant":
            assert list(mine["message"]) == list(theirs["message"])
            assert mine["message"]["usage"] == theirs["message"]["usage"]
    init, result = got[0], got[-1]
    assert init["session_id"] == result["session_id"] == SID
    assert init["cwd"] == str(work)
    assert (init["model"], init["permissionMode"]) == ("claude-sonnet-5", "acceptEdits")
    assert init["claude_code_version"] == "2.1.197"
    for key in ("total_cost_usd", "usage", "modelUsage", "num_turns", "result", "is_error"):
        assert result[key] == sample[-1][key], key
    # one line per content block; the blocks of one API call share message.id
    ids = [m["message"]["id"] for m in got if m["type"] == "assistant"]
    assert ids[0] == ids[1] and len(set(ids)) == 3


def test_lines_are_flushed_one_by_one(claude: Path, work: Path) -> None:
    """The init line can be read while the fake is still waiting "on the API"."""
    proc = subprocess.Popen(
        [str(claude), *STREAM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=work,
        env=clean_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(fake("sleep", sleep_s=20).encode())
        proc.stdin.close()
        assert json.loads(proc.stdout.readline())["subtype"] == "init"
        assert proc.poll() is None
    finally:
        reap(proc)


@pytest.mark.parametrize(
    ("permission", "denied"),
    [
        (["--permission-mode", "default"], True),
        (["--permission-mode", "acceptEdits"], False),
        (["--permission-mode", "dontAsk"], True),
        (["--allowedTools=Bash"], False),
        (["--allowedTools=Bash(printf *)"], True),  # a redirect needs more than a prefix rule
    ],
)
def test_the_write_needs_a_permission_as_in_the_real_cli(
    claude: Path, work: Path, permission: list[str], denied: bool
) -> None:
    p = run(claude, [*STREAM, *permission], "hi", cwd=work)
    got = messages(p.stdout)
    result = got[-1]
    assert (p.returncode, result["subtype"], result["is_error"]) == (0, "success", False)
    assert bool(result["permission_denials"]) is denied
    if denied:  # the real shape: {tool_name, tool_use_id, tool_input}, Bash's input as sent
        write = next(
            block
            for m in got
            if m["type"] == "assistant"
            for block in m["message"]["content"]
            if block["type"] == "tool_use" and "NOTES.md" in block["input"]["command"]
        )
        (denial,) = result["permission_denials"]
        assert list(denial) == ["tool_name", "tool_use_id", "tool_input"]
        assert denial == {
            "tool_name": "Bash",
            "tool_use_id": write["id"],
            "tool_input": {
                "command": "printf '# Notes\\n' > NOTES.md && cat NOTES.md",
                "description": "Create NOTES.md with a heading",
            },
        }


def test_cost_parameter_is_the_total_and_consistent(claude: Path, work: Path) -> None:
    p = run(
        claude, [*STREAM, "--permission-mode", "acceptEdits"], fake("tools", cost=1.25), cwd=work
    )
    result = messages(p.stdout)[-1]
    assert result["total_cost_usd"] == 1.25
    assert sum(m["costUSD"] for m in result["modelUsage"].values()) == 1.25
    assert result["num_turns"] == 4  # 3 tool turns + the final answer


def test_budget_ending(claude: Path, work: Path) -> None:
    p = run(claude, [*STREAM, "--max-budget-usd", "0.25"], fake("error_max_budget_usd"), cwd=work)
    result = messages(p.stdout)[-1]
    assert p.returncode == 1
    assert (result["subtype"], result["is_error"]) == ("error_max_budget_usd", True)
    assert result["errors"] == ["Reached maximum budget ($0.25)"]
    assert result["total_cost_usd"] > 0.25
    assert result["usage"]["output_tokens"] == 0  # 2.1.197 reports zero usage here
    assert "result" not in result
    # the text format prints the CLI's one-line summary
    p = run(claude, ["-p", "--max-budget-usd", "0.25"], fake("error_max_budget_usd"), cwd=work)
    assert (p.returncode, p.stdout) == (1, "Error: Exceeded USD budget (0.25)")


def test_max_turns_is_enforced(claude: Path, work: Path) -> None:
    p = run(claude, [*STREAM, "--max-turns", "1"], fake("tools", turns=3), cwd=work)
    result = messages(p.stdout)[-1]
    assert p.returncode == 1
    assert (result["subtype"], result["num_turns"]) == ("error_max_turns", 2)
    assert result["errors"] == ["Reached maximum number of turns (1)"]
    assert result["terminal_reason"] == "max_turns"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, "authentication_failed"),
        (402, "billing_error"),
        (429, "rate_limit"),
        (529, "server_error"),
        (None, "server_error"),
    ],
)
def test_api_error_ending(claude: Path, work: Path, status: int | None, error: str) -> None:
    shown = "null" if status is None else status
    p = run(claude, STREAM, fake("api_error", status=shown, retries=2), cwd=work)
    got = messages(p.stdout)
    retries, assistant, result = got[1:3], got[-2], got[-1]
    assert p.returncode == 1
    assert [r["subtype"] for r in retries] == ["api_retry", "api_retry"]
    assert (assistant["error"], assistant["message"]["model"]) == (error, "<synthetic>")
    assert (result["subtype"], result["is_error"]) == ("success", True)
    assert result["api_error_status"] == status
    assert result["result"] == assistant["message"]["content"][0]["text"]
    assert result["total_cost_usd"] == 0


def test_rate_limit_event_then_429(claude: Path, work: Path) -> None:
    p = run(claude, STREAM, fake("rate_limit", resets_at=1795480000), cwd=work)
    got = messages(p.stdout)
    event = next(m for m in got if m["type"] == "rate_limit_event")
    assert event["rate_limit_info"]["status"] == "rejected"
    assert event["rate_limit_info"]["resetsAt"] == 1795480000
    assert got[-1]["api_error_status"] == 429


def test_huge_line_garbage_and_stream(claude: Path, work: Path) -> None:
    p = run(claude, STREAM, fake("huge_line", mb=1.5), cwd=work)
    longest = max(p.stdout.splitlines(), key=len)
    assert len(longest) >= 1.4 * 1024 * 1024
    assert json.loads(longest)["type"] == "user"

    p = run(claude, STREAM, fake("garbage"), cwd=work)
    lines = p.stdout.splitlines()
    bad = [line for line in lines if not line.startswith("{") or not _parses(line)]
    assert len(bad) >= 3
    types = {json.loads(line).get("type") for line in lines if _parses(line)}
    assert {"fake_future_message", "system", "assistant"} <= types
    assert json.loads(lines[-1])["type"] == "result"

    p = run(claude, STREAM, fake("stream", mb=3, line_kb=8), cwd=work)
    assert len(p.stdout) >= 3 * 1024 * 1024
    assert messages(p.stdout)[-1]["subtype"] == "success"


def _parses(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_no_result_and_usage_error(claude: Path, work: Path) -> None:
    p = run(claude, STREAM, fake("no_result", message="boom"), cwd=work)
    assert (p.returncode, p.stderr) == (1, "boom\n")
    assert [m["type"] for m in messages(p.stdout)] == ["system", "assistant"]
    p = run(claude, STREAM, fake("usage_error", message="error: nope", exit=2), cwd=work)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", "error: nope\n")


def test_output_formats_text_and_json(claude: Path, work: Path) -> None:
    p = run(claude, ["-p"], fake("tools", turns=1, text="All done."), cwd=work)
    assert (p.returncode, p.stdout) == (0, "All done.\n")
    p = run(claude, ["-p", "--output-format", "json"], fake("tools", turns=1), cwd=work)
    assert json.loads(p.stdout)["type"] == "result"
    p = run(claude, ["-p", "--output-format", "json", "--verbose"], fake("tools"), cwd=work)
    everything = json.loads(p.stdout)  # with --verbose: a JSON array of every message
    assert (everything[0]["subtype"], everything[-1]["type"], len(everything)) == (
        "init",
        "result",
        10,
    )


# -- signals and processes -------------------------------------------------------------------


@pytest.fixture
def spawn(claude: Path, work: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(prompt: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(claude), *STREAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=work,
            env=clean_env(),
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(prompt.encode())
        proc.stdin.close()
        procs.append(proc)
        while json.loads(proc.stdout.readline())["type"] != "assistant":
            pass  # the fake is now waiting
        return proc

    yield start
    for proc in procs:
        reap(proc)


def rest(proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.wait(timeout=5)
    return messages(out)


def test_sigint_while_waiting_gives_the_aborted_result_exit_0(spawn: Any) -> None:
    proc = spawn(fake("sleep", sleep_s=20, cost=0.0123))
    proc.send_signal(signal.SIGINT)
    got = rest(proc)
    assert proc.returncode == 0
    assert got[0]["message"]["content"][0]["text"] == "[Request interrupted by user]"
    result = got[-1]
    assert (result["subtype"], result["is_error"]) == ("error_during_execution", True)
    assert result["terminal_reason"] == "aborted_streaming"
    assert result["total_cost_usd"] == 0.0123


def test_sigterm_exits_143_without_a_result(spawn: Any) -> None:
    proc = spawn(fake("sleep", sleep_s=20))
    proc.send_signal(signal.SIGTERM)
    assert rest(proc) == []
    assert proc.returncode == 143


def test_ignore_sigterm_survives_sigint_and_sigterm(spawn: Any) -> None:
    proc = spawn(fake("ignore_sigterm", sleep_s=20))
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None
    proc.kill()
    assert proc.wait(timeout=5) == -signal.SIGKILL


def read_for(fd: int, seconds: float) -> bytes:
    """What a pipe gives within `seconds` (less at end-of-file)."""
    chunks = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            if not (data := os.read(fd, 1 << 16)):
                break
            chunks.append(data)
    return b"".join(chunks)


@pytest.fixture
def popen(claude: Path, work: Path) -> Iterator[Any]:
    """Start the fake with a prompt on stdin (closed), stdout and stderr piped; reaped at the
    end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(prompt: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(claude), *STREAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=work,
            env=clean_env(),
        )
        procs.append(proc)
        assert proc.stdin is not None
        proc.stdin.write(prompt.encode())
        proc.stdin.close()
        return proc

    yield start
    for proc in procs:
        reap(proc)


def test_stall_goes_silent_after_one_line_and_sigint_ends_it(popen: Any) -> None:
    proc = popen(fake("stall", sleep_s=20, cost=0.0042))
    assert proc.stdout is not None
    got = messages(read_for(proc.stdout.fileno(), 1.5).decode())
    assert [(m["type"], m.get("subtype")) for m in got] == [("system", "init"), ("assistant", None)]
    assert got[1]["message"]["content"][0]["type"] == "text"
    assert proc.poll() is None  # still running, saying nothing
    proc.send_signal(signal.SIGINT)
    got = rest(proc)
    assert proc.returncode == 0
    assert got[0]["message"]["content"][0]["text"] == "[Request interrupted by user]"
    result = got[-1]
    assert (result["subtype"], result["is_error"]) == ("error_during_execution", True)
    assert (result["terminal_reason"], result["total_cost_usd"]) == ("aborted_streaming", 0.0042)


def test_stall_never_writes_a_result_by_itself(popen: Any) -> None:
    proc = popen(fake("stall", sleep_s=0.3))
    got = rest(proc)
    assert proc.returncode == 1
    assert [m["type"] for m in got] == ["system", "assistant"]
    proc = popen(fake("stall", sleep_s=20))
    assert proc.stdout is not None
    assert len(read_for(proc.stdout.fileno(), 1).splitlines()) == 2
    proc.send_signal(signal.SIGTERM)
    assert (rest(proc), proc.returncode) == ([], 143)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_no_init_says_something_on_stderr_and_nothing_on_stdout(
    popen: Any, signum: int, code: int
) -> None:
    proc = popen(fake("no_init", message="Still starting up…", sleep_s=20))
    assert proc.stdout is not None and proc.stderr is not None
    assert read_for(proc.stdout.fileno(), 1) == b""
    assert proc.poll() is None
    assert read_for(proc.stderr.fileno(), 0.5).decode() == "Still starting up…\n"
    proc.send_signal(signum)
    assert proc.wait(timeout=5) == code
    assert proc.stdout.read() == b""


def test_no_init_has_a_default_note_and_ends_after_sleep_s(popen: Any) -> None:
    proc = popen(fake("no_init", sleep_s=0.2))
    assert proc.wait(timeout=5) == 1
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read() == b""
    assert proc.stderr.read().decode().startswith("Failed to fetch remote settings")


def test_grandchild_is_detached_and_outlives_sigkill(spawn: Any, work: Path) -> None:
    pidfile = work / "gc.pid"
    proc = spawn(fake("grandchild", pidfile=pidfile, sleep_s=20, kill_children=0))
    deadline = time.monotonic() + 5
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int(pidfile.read_text())
    try:
        # its own session (the pid is written right after the fork, maybe before its setsid)
        while os.getsid(pid) != pid and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.getsid(pid) == pid != os.getsid(proc.pid)
        proc.kill()
        proc.wait()
        # the grandchild does not hold the fake's stdout (unless keep_stdout: 1): EOF at once
        assert proc.stdout is not None
        assert eof_within(proc.stdout.fileno(), 2)
        time.sleep(0.1)
        os.kill(pid, 0)  # still alive: an orphan the runner must kill itself
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_sigint_during_a_tool_kills_the_grandchild_and_exits_1(spawn: Any, work: Path) -> None:
    pidfile = work / "gc.pid"
    proc = spawn(fake("grandchild", pidfile=pidfile, sleep_s=20))
    deadline = time.monotonic() + 5
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int(pidfile.read_text())
    proc.send_signal(signal.SIGINT)
    result = rest(proc)[-1]
    assert (proc.returncode, result["terminal_reason"]) == (1, "aborted_tools")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- recording, environment, sessions -------------------------------------------------------


def test_recording_has_exact_argv_env_cwd_and_stdin(
    claude: Path, work: Path, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    record.mkdir()
    args = [*STREAM, "--session-id", SID, "--allowedTools=Bash"]
    env = clean_env(FAKE_CLAUDE_RECORD=str(record), MY_FLAG="on")
    p = run(claude, args, "hello\nthere", cwd=work, env=env)
    assert p.returncode == 0
    data = json.loads((record / f"{SID}.json").read_text())
    assert data["argv"] == [str(claude), *args]
    assert data["cwd"] == str(work)
    assert data["stdin"] == "hello\nthere"
    assert data["env"]["MY_FLAG"] == "on"
    assert "FAKE_CLAUDE_ARGV0" not in data["env"]
    assert data["exit_code"] == 0


def test_echo_env_and_env_defaults(tmp_path: Path, work: Path) -> None:
    claude = make_fake_claude(tmp_path / "bin", {"FAKE_CLAUDE_SCENARIO": "echo_env", "A": "x y"})
    prompt = fake("ignored", vars="A,B,NOPE")
    p = run(claude, ["-p", "--output-format", "json"], prompt, cwd=work, env=clean_env(B="b"))
    assert json.loads(json.loads(p.stdout)["result"]) == {
        "cwd": str(work),
        "env": {"A": "x y", "B": "b", "NOPE": None},
    }
    p = run(claude, ["-p"], prompt, cwd=work, env=clean_env(A="mine"))
    assert json.loads(p.stdout)["env"]["A"] == "mine"  # the caller's environment wins


def test_a_session_id_cannot_be_reused_under_claude_config_dir(
    claude: Path, work: Path, tmp_path: Path
) -> None:
    env = clean_env(CLAUDE_CONFIG_DIR=str(tmp_path / "config"))
    assert run(claude, ["-p", "--session-id", SID], "hi", cwd=work, env=env).returncode == 0
    p = run(claude, ["-p", "--session-id", SID], "hi", cwd=work, env=env)
    assert (p.returncode, p.stderr) == (1, f"Error: Session ID {SID} is already in use.\n")
    p = run(claude, [*STREAM, f"--resume={SID}"], "again", cwd=work, env=env)
    assert messages(p.stdout)[0]["session_id"] == SID


def _transcript(config: Path, session_id: str) -> Path:
    (path,) = config.glob(f"projects/*/{session_id}.jsonl")
    return path


def test_a_resumed_run_keeps_its_session_id_and_transcript(
    claude: Path, work: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    env = clean_env(CLAUDE_CONFIG_DIR=str(config))
    p = run(claude, [*STREAM, f"--session-id={SID}"], fake("tools", turns=1), cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    first = _transcript(config, SID).read_text()
    assert first == p.stdout
    p = run(claude, [*STREAM, f"--resume={SID}"], "Go on, please.", cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    got = messages(p.stdout)
    assert got[0]["subtype"] == "init" and got[-1]["type"] == "result"
    assert {m["session_id"] for m in got} == {SID}
    assert _transcript(config, SID).read_text() == first + p.stdout  # appended, same file


@pytest.mark.parametrize("config", [True, False], ids=["config-dir", "no-config-dir"])
def test_resume_of_an_unknown_session_fails_as_the_real_cli(
    claude: Path, work: Path, tmp_path: Path, config: bool
) -> None:
    """Without CLAUDE_CONFIG_DIR nothing was ever kept, so no id can be resumed."""
    extra = {"CLAUDE_CONFIG_DIR": str(tmp_path / "config")} if config else {}
    env = clean_env(FAKE_CLAUDE_RESUME_EDIT="fix.txt=fixed", **extra)
    message = f"No conversation found with session ID: {SID}"
    for args in (["-p"], ["-p", "--output-format", "json", "--verbose"]):
        p = run(claude, [*args, f"--resume={SID}"], "Go on.", cwd=work, env=env)
        assert (p.returncode, p.stdout, p.stderr) == (1, "", message + "\n")
    # stream-json (even without --verbose): no init, one error result, as 2.1.197 writes
    for args in (STREAM, ["-p", "--output-format", "stream-json"]):
        p = run(claude, [*args, f"--resume={SID}"], None, cwd=work, env=env)
        assert (p.returncode, p.stderr) == (1, message + "\n")
        (result,) = messages(p.stdout)
        assert (result["type"], result["subtype"], result["is_error"]) == (
            "result",
            "error_during_execution",
            True,
        )
        assert (result["session_id"], result["errors"], result["num_turns"]) == (SID, [message], 0)
    assert not (work / "fix.txt").exists()
    if not config:  # not even a session this same fake ran a moment ago
        assert run(claude, ["-p", f"--session-id={SID}"], "hi", cwd=work, env=env).returncode == 0
        p = run(claude, ["-p", f"--resume={SID}"], "Go on.", cwd=work, env=env)
        assert (p.returncode, p.stdout, p.stderr) == (1, "", message + "\n")


def test_resume_edit_writes_only_in_a_resumed_run(claude: Path, work: Path, tmp_path: Path) -> None:
    env = clean_env(
        CLAUDE_CONFIG_DIR=str(tmp_path / "config"), FAKE_CLAUDE_RESUME_EDIT="fix.txt=fixed"
    )
    p = run(claude, [*STREAM, f"--session-id={SID}"], fake("tools", turns=1), cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    assert messages(p.stdout)[-1]["subtype"] == "success"
    assert not (work / "fix.txt").exists()  # the first run's success leaves the check failing
    p = run(claude, [*STREAM, f"--resume={SID}"], "Fix the check.", cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    assert (work / "fix.txt").read_text() == "fixed\n"
    # the new prompt of a resumed run can carry it too
    env.pop("FAKE_CLAUDE_RESUME_EDIT")
    prompt = "Once more.\nfake-resume-edit: fix.txt=again"
    assert run(claude, [*STREAM, f"--resume={SID}"], prompt, cwd=work, env=env).returncode == 0
    assert (work / "fix.txt").read_text() == "fixed\nagain\n"


def test_instant_claude_is_a_valid_run(tmp_path: Path, work: Path) -> None:
    claude = make_instant_claude(tmp_path / "bin")
    assert b"python" not in claude.read_bytes()
    p = run(claude, [*STREAM, f"--session-id={SID}"], "x" * 1_000_000, cwd=work)
    init, result = messages(p.stdout)
    assert (p.returncode, init["subtype"], result["subtype"]) == (0, "init", "success")
    assert init["session_id"] == result["session_id"] == SID
    assert init["cwd"] == str(work)


# -- MockAnthropic over HTTP -----------------------------------------------------------------


def post(api: MockAnthropic, body: dict[str, Any], path: str = "/v1/messages?beta=true") -> bytes:
    """The response body; an HTTP error raises urllib.error.HTTPError (closed, body kept)."""
    req = urllib.request.Request(
        api.base_url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as e:
        e.body = e.read()  # type: ignore[attr-defined]
        e.close()
        raise


def sse(data: bytes) -> list[dict[str, Any]]:
    text = data.decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


TOOLS_BODY: dict[str, Any] = {
    "model": "claude-sonnet-5",
    "stream": True,
    "tools": [{"name": "Bash"}],
    "system": [{"type": "text", "text": "You are Claude Code"}],
    "messages": [{"role": "user", "content": "run it"}],
}


def test_mock_tools_scenario_streams_a_tool_use_then_text() -> None:
    with MockAnthropic("tools", command="echo hi") as api:
        events = sse(post(api, TOOLS_BODY))
        assert events[0]["type"] == "message_start"
        assert events[-1]["type"] == "message_stop"
        tool = next(e for e in events if e["type"] == "content_block_start" and e["index"] == 1)
        partial = "".join(
            e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("partial_json")
        )
        assert tool["content_block"]["name"] == "Bash"
        assert json.loads(partial)["command"] == "echo hi"
        followup = {
            **TOOLS_BODY,
            "stream": False,
            "messages": [
                *TOOLS_BODY["messages"],
                {"role": "assistant", "content": []},
                {"role": "user", "content": []},
            ],
        }
        final = json.loads(post(api, followup))
        assert (final["stop_reason"], final["content"][0]["type"]) == ("end_turn", "text")
        title = {
            "model": "claude-sonnet-5",
            "stream": True,
            "system": [{"type": "text", "text": "Generate a concise, sentence-case title (3-7"}],
            "messages": [{"role": "user", "content": "<session>\nrun it\n</session>"}],
        }
        sse(post(api, title))
        assert (len(api.requests), len(api.main_requests)) == (3, 2)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, "authentication_error"), (429, "rate_limit_error"), (529, "overloaded_error")],
)
def test_mock_http_errors_have_the_real_body_and_retry_after(status: int, kind: str) -> None:
    with MockAnthropic("http_error", status=status, retry_after="7") as api:
        with pytest.raises(urllib.error.HTTPError) as info:
            post(api, TOOLS_BODY)
        body = json.loads(info.value.body)
        assert (info.value.code, body["type"], body["error"]["type"]) == (status, "error", kind)
        assert info.value.headers.get("retry-after") == (None if status == 401 else "7")
        with pytest.raises(urllib.error.HTTPError) as info:
            post(api, {}, "/api/oauth/settings")
        assert info.value.code == 404


def test_mock_budget_usage_exceeds_a_cent_in_one_call() -> None:
    with MockAnthropic("budget") as api:
        usage = json.loads(post(api, {**TOOLS_BODY, "stream": False}))["usage"]
    cost = (
        usage["input_tokens"] * 3
        + usage["output_tokens"] * 15
        + usage["cache_creation_input_tokens"] * 3.75
        + usage["cache_read_input_tokens"] * 0.3
    ) / 1e6
    assert cost > 0.01


def _user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def _reminder() -> dict[str, Any]:
    return {"type": "text", "text": "<system-reminder>\nContext.\n</system-reminder>"}


def test_mock_script_serves_one_step_per_user_prompt() -> None:
    steps = [
        {"scenario": "max_turns"},
        {"scenario": "tools", "command": "touch DONE", "turns": 1},
        {"scenario": "text", "text": "All good now."},
    ]
    result = {"type": "tool_result", "tool_use_id": "toolu_01x", "content": "hi"}
    with MockAnthropic("script", steps=steps) as api:
        history: list[dict[str, Any]] = []

        def answer(*new: dict[str, Any]) -> dict[str, Any]:
            history.extend(new)
            body = {**TOOLS_BODY, "stream": False, "messages": history}
            reply: dict[str, Any] = json.loads(post(api, body))
            history.append({"role": "assistant", "content": reply["content"]})
            return reply

        def command(reply: dict[str, Any]) -> str | None:
            tools = [b for b in reply["content"] if b["type"] == "tool_use"]
            return tools[0]["input"]["command"] if tools else None

        # the first run (--max-turns 2): tool uses whatever the turn
        first = _user(_reminder(), {"type": "text", "text": "Do it."})
        assert command(answer(first)) == "echo hi"
        assert command(answer(_user(result))) == "echo hi"
        # resumed: the new prompt merged into the trailing tool_result message
        reply = answer(_user(result, {"type": "text", "text": "Now finish it."}))
        assert (command(reply), reply["stop_reason"]) == ("touch DONE", "tool_use")
        reply = answer(_user(result))  # its own one turn done: the text answer
        assert (command(reply), reply["stop_reason"]) == (None, "end_turn")
        # a reminder or an interrupt marker is no prompt; a third one is; the last step repeats
        reply = answer(_user({"type": "text", "text": "[Request interrupted by user]"}))
        assert command(reply) is None and api.steps_served[-1] == 1
        assert answer({"role": "user", "content": "Check."})["content"][0]["text"] == (
            "All good now."
        )
        answer(_user({"type": "text", "text": "And again."}))
        sse(post(api, {**TOOLS_BODY, "messages": [*history, _user(_reminder())]}))
        # an auxiliary call is served no step
        title = {
            "model": "claude-sonnet-5",
            "system": [{"type": "text", "text": "Generate a concise, sentence-case title"}],
            "messages": [{"role": "user", "content": "<session>\nDo it.\n</session>"}],
        }
        post(api, title)
        assert api.steps_served == [0, 0, 1, 1, 1, 2, 2, 2]
        assert len(api.main_requests) == len(api.steps_served)


def test_mock_script_steps_are_checked_and_can_fail_over_http() -> None:
    with pytest.raises(TypeError):
        MockAnthropic("script")
    with pytest.raises(TypeError):
        MockAnthropic("script", steps=[{"scenario": "text", "colour": "red"}])
    with pytest.raises(ValueError):
        MockAnthropic("script", steps=[{"scenario": "script"}])
    with pytest.raises(TypeError):
        MockAnthropic("text", steps=[{"scenario": "text"}])
    steps = [{"scenario": "text"}, {"scenario": "http_error", "status": 429, "retry_after": "3"}]
    with MockAnthropic("script", steps=steps, text="First.") as api:
        first = json.loads(post(api, {**TOOLS_BODY, "stream": False}))
        assert first["content"] == [{"type": "text", "text": "First."}]  # the mock's own text
        again = [*TOOLS_BODY["messages"], {"role": "assistant", "content": first["content"]}]
        again.append({"role": "user", "content": "Again."})
        with pytest.raises(urllib.error.HTTPError) as info:
            post(api, {**TOOLS_BODY, "messages": again})
        assert (info.value.code, info.value.headers.get("retry-after")) == (429, "3")
        assert api.steps_served == [0, 1]


# -- the real CLI against MockAnthropic ---------------------------------------------------------

REAL_CLAUDE = real_claude()
needs_real_cli = needs(
    REAL_CLAUDE, "the real claude CLI is not installed and npm cannot install it (see README)"
)


def run_real(
    api: MockAnthropic, tmp_path: Path, args: list[str], prompt: str
) -> tuple[int, list[dict[str, Any]], str]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    p = subprocess.run(
        [REAL_CLAUDE, *STREAM, "--model", "sonnet", "--session-id", str(uuid.uuid4()), *args],
        input=prompt,
        capture_output=True,
        text=True,
        cwd=work,
        env=api.env(home=home),
        timeout=60,
    )
    return p.returncode, messages(p.stdout), p.stderr


@pytest.mark.realcli
@needs_real_cli
def test_real_cli_completes_the_tools_scenario(tmp_path: Path) -> None:
    assert REAL_CLI_ENV["CLAUDE_CODE_MAX_RETRIES"] == "0"
    with MockAnthropic("tools", command="echo hi") as api:
        args = ["--permission-mode", "acceptEdits", "--allowedTools=Bash", "--max-turns", "5"]
        rc, got, stderr = run_real(api, tmp_path, args, "Run echo hi, then say done.")
    assert rc == 0, stderr
    assert got[0]["subtype"] == "init"
    tool_result = next(m for m in got if m["type"] == "user")["message"]["content"][0]
    assert (tool_result["content"], tool_result["is_error"]) == ("hi", False)
    result = got[-1]
    assert (result["subtype"], result["is_error"], result["num_turns"]) == ("success", False, 2)
    assert result["total_cost_usd"] > 0
    assert len(api.main_requests) == 2


@pytest.mark.realcli
@needs_real_cli
@pytest.mark.parametrize(
    ("scenario", "params", "args", "subtype", "status"),
    [
        ("budget", {}, ["--max-budget-usd", "0.01"], "error_max_budget_usd", None),
        ("max_turns", {}, ["--max-turns", "1"], "error_max_turns", None),
        ("http_error", {"status": 429}, [], "success", 429),
        ("http_error", {"status": 529}, [], "success", 529),
    ],
)
def test_real_cli_endings_match_the_fake(
    tmp_path: Path,
    scenario: str,
    params: dict[str, Any],
    args: list[str],
    subtype: str,
    status: int | None,
) -> None:
    with MockAnthropic(scenario, **params) as api:
        rc, got, stderr = run_real(api, tmp_path, ["--allowedTools=Bash", *args], "Go on.")
    result = got[-1]
    assert (rc, result["subtype"], result["is_error"]) == (1, subtype, True), stderr
    assert result.get("api_error_status") == status


@pytest.mark.realcli
@needs_real_cli
def test_real_cli_sigint_while_streaming_gives_the_aborted_result(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    with MockAnthropic("slow", delay_s=20) as api:
        proc = subprocess.Popen(
            [REAL_CLAUDE, *STREAM, "--model", "sonnet"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=work,
            env=api.env(home=home),
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"Take your time.")
            proc.stdin.close()
            while json.loads(proc.stdout.readline())["type"] != "assistant":
                pass  # the mock now holds the response
            proc.send_signal(signal.SIGINT)
            got = rest(proc)
        finally:
            reap(proc)
    assert proc.returncode == 0
    assert got[0]["message"]["content"][0]["text"] == "[Request interrupted by user]"
    result = got[-1]
    assert (result["subtype"], result["terminal_reason"]) == (
        "error_during_execution",
        "aborted_streaming",
    )


@pytest.mark.realcli
@needs_real_cli
@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-flag"],
        ["--verbos"],
        ["--allowedtool", "x"],
        ["--permission-mode", "bogus"],
        ["--output-format", "bogus"],
        ["--model"],
        ["--session-id", "nope"],
        ["--output-format", "stream-json", "hi"],
        ["--input-format", "stream-json"],
        ["--allowedTools", "Bash", "do X"],
        ["--permission-mode", "bypassPermissions", "--input-format", "stream-json"],
        ["-r"],
        [f"--resume={SID}", "go on"],  # a fresh HOME: no session to resume
        ["--resume=not-a-session", "go on"],
        ["--session-id", SID, f"--resume={SID}", "go on"],
    ],
)
def test_real_cli_and_fake_fail_alike(claude: Path, tmp_path: Path, args: list[str]) -> None:
    """The fake's usage errors, checked against the real binary (catches drift on upgrades)."""
    outcomes: list[tuple[int, str, str]] = []
    for binary in (REAL_CLAUDE, str(claude)):
        home = tmp_path / f"home-{len(outcomes)}"
        home.mkdir()
        env = clean_env(HOME=str(home), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
        p = subprocess.run(
            [binary, "-p", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=home,
            env=env,
            timeout=30,
        )
        outcomes.append((p.returncode, p.stdout, p.stderr))
    assert outcomes[1] == outcomes[0]


@pytest.mark.realcli
@needs_real_cli
def test_real_cli_and_fake_resume_an_unknown_session_alike(claude: Path, tmp_path: Path) -> None:
    """stream-json: no init line, one error result naming the session, and the stderr line."""
    outcomes: list[tuple[int, dict[str, Any], str]] = []
    for binary in (REAL_CLAUDE, str(claude)):
        home = tmp_path / f"home-{len(outcomes)}"
        home.mkdir()
        env = clean_env(HOME=str(home), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
        env["CLAUDE_CONFIG_DIR"] = str(home / ".claude")
        p = subprocess.run(
            [binary, *STREAM, f"--resume={SID}"],
            input="Go on.",
            capture_output=True,
            text=True,
            cwd=home,
            env=env,
            timeout=30,
        )
        (result,) = messages(p.stdout)
        result["uuid"] = "-"
        outcomes.append((p.returncode, result, p.stderr))
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][1]["errors"] == [f"No conversation found with session ID: {SID}"]


@pytest.mark.realcli
@needs_real_cli
def test_real_cli_resumed_session_gets_the_next_script_step(tmp_path: Path) -> None:
    """A run stopped by --max-turns, then resumed: the mock serves the resume the next step,
    the session keeps its id, and the resumed run does the step's own turns."""
    steps = [{"scenario": "max_turns"}, {"scenario": "tools", "command": "touch DONE"}]
    with MockAnthropic("script", steps=steps, text="Finished.") as api:
        rc, got, stderr = run_real(
            api, tmp_path, ["--allowedTools=Bash", "--max-turns", "1"], "Go."
        )
        sid = got[0]["session_id"]
        assert (rc, got[-1]["subtype"], got[-1]["session_id"]) == (1, "error_max_turns", sid), (
            stderr
        )
        assert api.steps_served == [0]
        p = subprocess.run(
            [REAL_CLAUDE, *STREAM, "--model", "sonnet", f"--resume={sid}", "--allowedTools=Bash"],
            input="Now finish it.",
            capture_output=True,
            text=True,
            cwd=tmp_path / "work",
            env=api.env(home=tmp_path / "home"),
            timeout=60,
        )
    got = messages(p.stdout)
    assert p.returncode == 0, p.stderr
    assert {m["session_id"] for m in got} == {sid}
    assert (got[-1]["subtype"], got[-1]["result"]) == ("success", "Finished.")
    assert api.steps_served == [0, 1, 1]
    assert (tmp_path / "work" / "DONE").exists()
