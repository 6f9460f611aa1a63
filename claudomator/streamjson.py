"""claude's stream-json as the fold (`stream`), the outcome and the transcript all read it: the
message types and tool blocks known, typed reads of untrusted values (each None or empty when the
value is not of its type), and a tool call's input on one line. Pure and stdlib-only.

The schema is the CLI's stream-json as described in the research notes: parse by key, never by
position, and ignore what is unknown.
"""

from __future__ import annotations

import json
import math
from itertools import islice
from typing import Any

SUMMARY_MAX = 120  # characters of a one-line tool input summary or live text
KNOWN_TYPES = frozenset(
    {"system", "assistant", "user", "result", "stream_event", "rate_limit_event", "tool_progress"}
    | {"tool_use_summary", "auth_status", "prompt_suggestion", "conversation_reset"}
)
TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# The input key that says most about a call, for the one-line summary: Bash, Read/Edit/Write,
# NotebookEdit, Glob/Grep, WebFetch, WebSearch, Task, Skill.
_SUMMARY_KEYS: tuple[str, ...] = ("command", "file_path", "notebook_path", "pattern", "url")
_SUMMARY_KEYS += ("query", "description", "prompt", "skill", "path")


def summarize(tool_input: Any) -> str:
    """A tool call's input on one short line: the telling field, else the first few fields."""
    if isinstance(tool_input, str):
        return one_line(tool_input, SUMMARY_MAX)
    if not isinstance(tool_input, dict):
        return ""
    for key in _SUMMARY_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return one_line(value, SUMMARY_MAX)
    parts = (f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in tool_input.items())
    return one_line(", ".join(one_line(p, 48) for p in islice(parts, 4)), SUMMARY_MAX)


def one_line(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces, clipped to `limit` characters with an ellipsis."""
    flat = " ".join(text[: limit * 4].split())
    return flat if len(flat) <= limit and len(text) <= limit * 4 else flat[: limit - 1] + "…"


def as_epoch(value: Any) -> float | None:
    """Epoch seconds; a value that only makes sense as milliseconds is converted."""
    number = as_num(value)
    if number is None or number <= 0:
        return None
    return number / 1000 if number > 1e11 else number


def as_str(value: Any) -> str | None:
    """A non-empty string."""
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int | None:
    """An int that is not a bool."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_num(value: Any) -> float | None:
    """A finite int or float that is not a bool, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def as_list(value: Any) -> list[Any]:
    """A list, else an empty one."""
    return value if isinstance(value, list) else []
