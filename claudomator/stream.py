"""What an execution did, read from claude's stream-json stdout: the fold.

`feed` folds one stdout line into a `StreamState` and says when the line is worth telling live.
What that means for the task at the end is `outcome.decide`; the same lines for people are
`transcript.render`. Pure and stdlib-only. The schema is the CLI's stream-json as described in
the research notes: parse by key, never by position, and ignore what is unknown (`streamjson`).
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from claudomator.records import JSONObject
from claudomator.streamjson import (
    KNOWN_TYPES,
    SUMMARY_MAX,
    TOOL_BLOCKS,
    as_epoch,
    as_int,
    as_list,
    as_num,
    as_str,
    one_line,
    summarize,
)

__all__ = ["FAST_SKIP_BYTES", "Progress", "StreamState", "feed"]

# A line at least this long whose first or last top-level member is "type":"user" is counted
# without parsing: it is a tool result, nothing is read from it, and json.loads of tool output
# (dense source code: ~300-600 MB/s) would be the slowest part of the stream.
FAST_SKIP_BYTES = 4096

_USER_HEAD = re.compile(rb'\s*\{\s*"type"\s*:\s*"user"\s*,')
_USER_TAIL = re.compile(rb',\s*"type"\s*:\s*"user"\s*\}\s*\Z')
# $ per million input and output tokens, first match on the model name wins. Only for the live
# estimate (a budget guard); the CLI's total_cost_usd is the figure recorded. Cache reads cost
# 0.1x input, cache writes 1.25x (5 min) or 2x (1 h). Unknown models get current Opus prices.
_PRICES = [(k, 15.0, 75.0) for k in ("opus-4-1", "opus-4-2025", "3-opus")]
_PRICES += [("opus", 5.0, 25.0), ("sonnet", 3.0, 15.0), ("haiku", 1.0, 5.0), ("", 5.0, 25.0)]


@dataclass(frozen=True)
class Progress:
    """Something worth telling live. `fields` never use the event keys id/type/at/name/state."""

    kind: str  # started | tool_call | text | cost | api_retry | rate_limit
    fields: JSONObject


@dataclass
class StreamState:
    """Everything learnt so far from one execution's stdout; one per execution."""

    initialized: bool = False  # its system/init line came
    api_key_source: str | None = None  # what it would bill, from that line
    session_id: str | None = None
    cli_version: str | None = None
    model: str | None = None
    result: JSONObject | None = None  # the last result line, parsed
    cost_usd: float = 0.0  # the last total_cost_usd the process reported
    estimated_cost_usd: float = 0.0  # live, from each distinct message.id's start usage
    input_tokens: int = 0  # the last result's usage (main loop only)
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    model_usage: JSONObject = field(default_factory=dict)  # the last result's modelUsage
    num_turns: int | None = None
    duration_ms: int | None = None
    tool_calls: int = 0
    api_error: str | None = None  # the last assistant line's `error`
    rate_limit_status: str | None = None  # allowed | allowed_warning | rejected
    rate_limit_resets_at: float | None = None  # epoch seconds
    lines: int = 0  # non-blank lines fed
    skipped_lines: int = 0  # non-JSON, not an object, or an unknown type
    # the last messages counted in the estimate: the CLI writes one message's lines one after
    # another, so a short window is enough, and memory stays flat however long the run
    message_ids: deque[str] = field(default_factory=lambda: deque(maxlen=16), repr=False)

    @property
    def spent_usd(self) -> float:
        """The best figure for money spent so far: the reported cost once a result came."""
        return self.cost_usd if self.result is not None else self.estimated_cost_usd


def feed(state: StreamState, line: bytes) -> Progress | None:
    """Update `state` from one stdout line (with or without its newline). Never raises."""
    if not line or line.isspace():
        return None
    state.lines += 1
    if len(line) >= FAST_SKIP_BYTES and _is_user_line(line):
        return None
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        state.skipped_lines += 1
        return None
    kind = msg.get("type") if isinstance(msg, dict) else None
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        state.skipped_lines += 1
        return None
    if kind == "assistant":
        return _on_assistant(state, msg)
    if kind == "result":
        return _on_result(state, msg)
    if kind == "system":
        return _on_system(state, msg)
    return _on_rate_limit(state, msg) if kind == "rate_limit_event" else None


def _is_user_line(line: bytes) -> bool:
    """True when the line's first or last top-level member is "type":"user" (the CLI writes
    compact JSON without duplicate keys; a line where `type` sits in the middle is parsed)."""
    return bool(_USER_HEAD.match(line)) or bool(_USER_TAIL.search(line, max(0, len(line) - 256)))


def _on_system(state: StreamState, msg: JSONObject) -> Progress | None:
    subtype = msg.get("subtype")
    if subtype == "init":
        state.initialized = True
        state.api_key_source = as_str(msg.get("apiKeySource"))
        state.session_id = as_str(msg.get("session_id")) or state.session_id
        state.model = as_str(msg.get("model")) or state.model
        state.cli_version = as_str(msg.get("claude_code_version")) or state.cli_version
        started = {"session_id": state.session_id, "model": state.model}
        return Progress("started", {**started, "cli_version": state.cli_version})
    if subtype == "api_retry":
        keys = ("attempt", "max_retries", "retry_delay_ms", "error_status", "error")
        return Progress("api_retry", {k: msg.get(k) for k in keys})
    return None


def _on_assistant(state: StreamState, msg: JSONObject) -> Progress | None:
    state.api_error = as_str(msg.get("error"))
    message = msg.get("message")
    if not isinstance(message, dict):
        return None
    before = state.estimated_cost_usd
    mid = message.get("id")
    if isinstance(mid, str) and mid not in state.message_ids:
        state.message_ids.append(mid)
        state.estimated_cost_usd += _estimate(message.get("model"), message.get("usage"))
    cost = {"estimated_cost_usd": round(state.estimated_cost_usd, 6)}
    progress: Progress | None = None
    for block in as_list(message.get("content")):
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str):
            continue
        if kind in TOOL_BLOCKS:
            state.tool_calls += 1
            if progress is None or progress.kind != "tool_call":
                tool = as_str(block.get("name")) or "?"
                summary = summarize(block.get("input"))
                progress = Progress("tool_call", {"tool": tool, "summary": summary, **cost})
        elif kind == "text" and progress is None:
            text = one_line(as_str(block.get("text")) or "", SUMMARY_MAX)
            if text:
                progress = Progress("text", {"text": text, **cost})
    if progress is None and state.estimated_cost_usd != before:
        progress = Progress("cost", {"cost_usd": state.cost_usd, **cost, "final": False})
    return progress


def _on_result(state: StreamState, msg: JSONObject) -> Progress:
    state.result = msg
    state.session_id = as_str(msg.get("session_id")) or state.session_id
    cost = as_num(msg.get("total_cost_usd"))
    if cost is not None:
        state.cost_usd = cost
    usage = msg.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    state.input_tokens = as_int(usage.get("input_tokens")) or 0
    state.output_tokens = as_int(usage.get("output_tokens")) or 0
    state.cache_read_tokens = as_int(usage.get("cache_read_input_tokens")) or 0
    state.cache_creation_tokens = as_int(usage.get("cache_creation_input_tokens")) or 0
    model_usage = msg.get("modelUsage")
    state.model_usage = model_usage if isinstance(model_usage, dict) else {}
    state.num_turns = as_int(msg.get("num_turns"))
    state.duration_ms = as_int(msg.get("duration_ms"))
    final = {"cost_usd": state.cost_usd, "final": True, "subtype": as_str(msg.get("subtype"))}
    return Progress("cost", {**final, "estimated_cost_usd": round(state.estimated_cost_usd, 6)})


def _on_rate_limit(state: StreamState, msg: JSONObject) -> Progress | None:
    info = msg.get("rate_limit_info")
    if not isinstance(info, dict):
        return None
    state.rate_limit_status = as_str(info.get("status"))
    state.rate_limit_resets_at = as_epoch(info.get("resetsAt"))
    fields = {"status": state.rate_limit_status, "resets_at": state.rate_limit_resets_at}
    return Progress("rate_limit", {**fields, "limit": as_str(info.get("rateLimitType"))})


def _estimate(model: Any, usage: Any) -> float:
    """Dollars for one message from its start usage (output is ~1 token there: an underestimate)."""
    if not isinstance(usage, dict):
        return 0.0
    name = model if isinstance(model, str) else ""
    price_in, price_out = next((i, o) for k, i, o in _PRICES if k in name)
    tokens = {k: as_int(v) or 0 for k, v in usage.items()}
    split = usage.get("cache_creation")
    hour = as_int(split.get("ephemeral_1h_input_tokens")) or 0 if isinstance(split, dict) else 0
    written = tokens.get("cache_creation_input_tokens", 0)
    hour = min(hour, written)
    weighted_in = tokens.get("input_tokens", 0) + 0.1 * tokens.get("cache_read_input_tokens", 0)
    weighted_in += 1.25 * (written - hour) + 2.0 * hour
    return (weighted_in * price_in + tokens.get("output_tokens", 0) * price_out) / 1e6
