"""Test doubles for Claude Code: a fake `claude` program and a mock Messages API.

- ``make_fake_claude(dir)`` writes ``dir/claude``, a shell script that runs the package
  ``tests/fakes/claude`` (see its docstring for the scenarios and parameters).
- ``make_instant_claude(dir)`` writes ``dir/claude``, a tiny POSIX sh script with no Python: the
  cheapest valid run, for throughput benchmarks.
- ``mock_api.MockAnthropic`` is a local Messages API for running the REAL CLI in tests.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.needs import ON_CI

# the fake's entry point, run as a file: `python FAKE_CLAUDE ARGS` (see its docstring)
FAKE_CLAUDE = Path(__file__).with_name("claude") / "__main__.py"

__all__ = ["FAKE_CLAUDE", "make_fake_claude", "make_instant_claude", "real_claude"]


def _write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o755)
    tmp.replace(path)  # atomic: a concurrent exec never sees a half-written script
    return path


def make_fake_claude(dir: Path, env_defaults: dict[str, str] | None = None) -> Path:
    """Write an executable ``claude`` in `dir` that runs the fake CLI; return its path.

    It execs this interpreter directly (``-I -S``: no site, no PYTHON* variables) rather than
    going through ``#!/usr/bin/env python3``, which costs about 110 ms more per spawn here.
    `env_defaults` are exported only when the caller's environment does not set them, so a
    test can still override them per run (for example ``FAKE_CLAUDE_SCENARIO``).
    """
    lines = ["#!/bin/sh", "# fake claude for tests, written by tests.fakes.make_fake_claude"]
    for key, value in (env_defaults or {}).items():
        if not key.isidentifier() or not key.isascii():
            raise ValueError(f"not an environment variable name: {key!r}")
        lines.append(f'[ -n "${{{key}+set}}" ] || {key}={shlex.quote(value)}; export {key}')
    python, script = shlex.quote(sys.executable), shlex.quote(str(FAKE_CLAUDE))
    lines.append(f'FAKE_CLAUDE_ARGV0="$0" exec {python} -I -S {script} "$@"')
    return _write_executable(Path(dir) / "claude", "\n".join(lines) + "\n")


_INIT = (
    '{"type":"system","subtype":"init","cwd":"@CWD@","session_id":"@SID@",'
    '"tools":["Bash","Edit","Read","Write"],"mcp_servers":[],"model":"claude-sonnet-5",'
    '"permissionMode":"default","apiKeySource":"none","claude_code_version":"2.1.197",'
    '"output_style":"default","uuid":"11111111-1111-4111-8111-111111111111"}'
)
_RESULT = (
    '{"type":"result","subtype":"success","is_error":false,"api_error_status":null,'
    '"duration_ms":1,"duration_api_ms":0,"num_turns":1,"result":"ok","stop_reason":"end_turn",'
    '"session_id":"@SID@","total_cost_usd":0.000105,"usage":{"input_tokens":10,'
    '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5},'
    '"modelUsage":{"claude-sonnet-5":{"inputTokens":10,"outputTokens":5,'
    '"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,'
    '"costUSD":0.000105,"contextWindow":200000,"maxOutputTokens":64000}},'
    '"permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off",'
    '"uuid":"22222222-2222-4222-8222-222222222222"}'
)


def _sh_json(line: str) -> str:
    """A printf of `line` with @CWD@/@SID@ spliced in as shell variables."""
    quoted = "'" + line.replace("@CWD@", "'\"$PWD\"'").replace("@SID@", "'\"$sid\"'") + "'"
    return f"printf '%s\\n' {quoted}"


_INSTANT = "\n".join(
    [
        "#!/bin/sh",
        "# instant fake claude: reads stdin to EOF, prints an init and a success result, exit 0",
        'if [ "$1" = --version ]; then echo "2.1.197 (Claude Code)"; exit 0; fi',
        "cat >/dev/null",
        "sid=00000000-0000-4000-8000-000000000000",
        "prev=",
        'for arg in "$@"; do',
        "  case $prev in --session-id) sid=$arg ;; esac",
        "  case $arg in --session-id=*) sid=${arg#--session-id=} ;; esac",
        "  prev=$arg",
        "done",
        _sh_json(_INIT),
        _sh_json(_RESULT),
        "",
    ]
)


def make_instant_claude(dir: Path) -> Path:
    """Write an executable ``claude`` in `dir`: POSIX sh, ``cat`` and ``printf`` only.

    It reads stdin to EOF, then prints a valid ``system/init`` line and a ``success`` result
    line (session id from ``--session-id`` when given) and exits 0; ``--version`` prints the
    version alone, as the real CLI.
    """
    return _write_executable(Path(dir) / "claude", _INSTANT)


_ROOT = Path(__file__).resolve().parent.parent.parent


@functools.cache
def real_claude() -> str:
    """The real Claude Code CLI for the `realcli` tests: $CLAUDOMATOR_REAL_CLAUDE, else installed
    once by .ci/install-claude into a cache outside the repository (needs npm). "" when it
    cannot be had here; under CI=true that is an error, so CI never skips these tests silently."""
    path = os.environ.get("CLAUDOMATOR_REAL_CLAUDE", "")
    if not path and shutil.which("npm"):
        out = subprocess.run(
            ["bash", str(_ROOT / ".ci" / "install-claude")],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            path = out.stdout.strip().splitlines()[-1]
    if path and os.access(path, os.X_OK):
        return path
    if ON_CI:
        raise RuntimeError("the real claude CLI is needed under CI=true: .ci/install-claude failed")
    return ""
