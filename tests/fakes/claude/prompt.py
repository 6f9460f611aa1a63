"""The prompt (stdin and/or the positional argument) and the parameters that steer the fake:
``$FAKE_CLAUDE_<NAME>``, else a prompt line ``fake-<name>: value``."""

from __future__ import annotations

import os
import select

from .console import err

STDIN_WAIT_S = 3.0  # how long the real CLI waits for the first data on stdin


def read_stdin() -> str | None:
    """Read stdin to EOF like the real CLI: None for a TTY; "" (and a warning) when no data came
    within STDIN_WAIT_S."""
    try:
        if os.isatty(0):
            return None
        ready, _, _ = select.select([0], [], [], STDIN_WAIT_S)
    except (OSError, ValueError):
        return None
    if not ready:
        err(
            "Warning: no stdin data received in 3s, proceeding without it. If piping from a slow "
            "command, redirect stdin explicitly: < /dev/null to skip, or wait longer.\n"
        )
        return ""
    chunks = []
    while data := os.read(0, 1 << 16):
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def prompt_params(prompt: str) -> dict[str, str]:
    """`fake-<name>: value` lines of the prompt (``-`` in a name read as ``_``)."""
    params = {}
    for line in prompt.splitlines():
        line = line.strip()
        if line.startswith("fake-") and ":" in line:
            name, _, value = line[5:].partition(":")
            params[name.strip().replace("-", "_").lower()] = value.strip()
    return params


def env_params() -> dict[str, str]:
    """``$FAKE_CLAUDE_<NAME>`` variables (but the record folder); they win over the prompt."""
    return {
        key[12:].lower(): value
        for key, value in os.environ.items()
        if key.startswith("FAKE_CLAUDE_") and key != "FAKE_CLAUDE_RECORD"
    }
