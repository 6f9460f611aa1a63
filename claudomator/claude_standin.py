"""A STAND-IN for the Claude Code CLI, for `claudomator demo` only: no model is called, nothing
is spent and nothing is changed. It never runs unless a data dir's `claude.binary` names it, as
the demo's scratch data dir does.

It speaks what claudomator reads of the real `claude -p --output-format stream-json --verbose`:
a `system/init` line, assistant text, one tool call (`ls` of its working directory, run for
real) and its result, and a `result` line with the session id, turns, usage and a cost of 0 —
each line shaped as the real CLI 2.1.197 writes it. The prompt comes on stdin. It answers
SIGINT as claude does (exit 130) and paces its lines (`CLAUDOMATOR_STANDIN_PACE_S`, default
0.5 s) so that a task can be watched as it runs.

Run as a program: `python claude_standin.py -p --output-format stream-json --verbose …`.
Stdlib only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

VERSION = "0.0.0-standin"
PACE_ENV = "CLAUDOMATOR_STANDIN_PACE_S"
DONE = (
    "This was claudomator's stand-in for claude: no model was called, nothing was spent and "
    "nothing was changed. Install the Claude Code CLI to run tasks for real."
)
USAGE = {
    "input_tokens": 0,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 0,
    "service_tier": "standard",
}


def options(argv: Sequence[str]) -> dict[str, str]:
    """The options claudomator passes that the stand-in uses (`--name value` or `--name=value`):
    model, permission-mode, session-id, resume."""
    wanted = ("--model", "--permission-mode", "--session-id", "--resume")
    found: dict[str, str] = {}
    args = list(argv)
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in wanted:
            if not eq and i + 1 < len(args):
                value = args[i + 1]
            found[name.removeprefix("--")] = value
    return found


def stream(prompt: str, cwd: str, opts: dict[str, str], listing: str) -> list[dict[str, Any]]:
    """The lines of one run, in order (their `duration_ms` filled in as they are written)."""
    session = opts.get("resume") or opts.get("session-id") or str(uuid.uuid4())
    model = opts.get("model") or "sonnet"
    asked = (prompt.strip().splitlines() or ["(nothing)"])[0][:200]
    tool_id = "toolu_standin_" + uuid.uuid4().hex[:16]

    def said(content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "type": "assistant",
            "message": {
                "id": "msg_standin_" + uuid.uuid4().hex[:16],
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": USAGE,
                "context_management": None,
            },
            "parent_tool_use_id": None,
            "session_id": session,
            "uuid": str(uuid.uuid4()),
        }

    return [
        {
            "type": "system",
            "subtype": "init",
            "cwd": cwd,
            "session_id": session,
            "tools": ["Bash", "Read"],
            "mcp_servers": [],
            "model": model,
            "permissionMode": opts.get("permission-mode") or "default",
            "apiKeySource": "none",
            "claude_code_version": VERSION,
            "output_style": "default",
            "uuid": str(uuid.uuid4()),
        },
        said([{"type": "text", "text": f"(stand-in claude) I was asked: {asked}"}]),
        said(
            [
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": "Bash",
                    "input": {"command": "ls", "description": "List the working directory"},
                }
            ]
        ),
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {
                        "tool_use_id": tool_id,
                        "type": "tool_result",
                        "content": listing,
                        "is_error": False,
                    }
                ],
            },
            "parent_tool_use_id": None,
            "session_id": session,
            "uuid": str(uuid.uuid4()),
            "tool_use_result": {"stdout": listing, "stderr": "", "interrupted": False},
        },
        said([{"type": "text", "text": DONE}]),
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "api_error_status": None,
            "duration_ms": 0,
            "duration_api_ms": 0,
            "num_turns": 2,
            "result": DONE,
            "stop_reason": "end_turn",
            "session_id": session,
            "total_cost_usd": 0.0,
            "usage": USAGE,
            "modelUsage": {
                model: {
                    "inputTokens": 0,
                    "outputTokens": 0,
                    "cacheReadInputTokens": 0,
                    "cacheCreationInputTokens": 0,
                    "webSearchRequests": 0,
                    "costUSD": 0.0,
                }
            },
            "permission_denials": [],
            "terminal_reason": "completed",
            "uuid": str(uuid.uuid4()),
        },
    ]


def main(argv: Sequence[str]) -> int:
    if "--version" in argv:
        print(f"{VERSION} (claudomator's stand-in for Claude Code)")
        return 0
    if "-p" not in argv and "--print" not in argv:
        print("error: the stand-in claude runs only with -p (claude -p …)", file=sys.stderr)
        return 1
    prompt = sys.stdin.read()
    cwd = os.getcwd()
    listing = "\n".join(sorted(n for n in os.listdir(cwd) if not n.startswith(".")))
    pace = float(os.environ.get(PACE_ENV) or 0.5)
    t0 = time.monotonic()
    for line in stream(prompt, cwd, options(argv), listing):
        time.sleep(pace)
        if line["type"] == "result":
            line["duration_ms"] = line["duration_api_ms"] = round((time.monotonic() - t0) * 1000)
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    return 0


def entry() -> None:
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # as claude: Ctrl-C ends it, 130
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    entry()
