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
    result = messages(p.stdout)[-1]
    assert (p.returncode, result["subtype"], result["is_error"]) == (0, "success", False)
    assert bool(result["permission_denials"]) is denied
    if denied:
        assert result["permission_denials"][0]["tool_name"] == "Bash"


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
