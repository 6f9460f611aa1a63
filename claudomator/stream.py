"""What an execution did, read from claude's stream-json stdout, and what that means for the task.

`feed` folds one stdout line into a `StreamState` and says when the line is worth telling live;
`decide` maps everything known at the end (`Ending`) to a final `State` and a short reason;
`render` turns a line into text for people (`claudomator logs`). All pure and stdlib-only: the
CLI imports this module on its light read path. The schema is the CLI's stream-json as described
in the research notes: parse by key, never by position, and ignore what is unknown.
"""

from __future__ import annotations

import json
import math
import re
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from claudomator.state import State

REASON_MAX = 300  # characters of a reason
SUMMARY_MAX = 120  # characters of a one-line tool input summary or live text
FOLD_MAX = 200  # characters of the first line of a folded tool result in `render`
# A line at least this long whose first or last top-level member is "type":"user" is counted
# without parsing: it is a tool result, nothing is read from it, and json.loads of tool output
# (dense source code: ~300-600 MB/s) would be the slowest part of the stream.
FAST_SKIP_BYTES = 4096

_USER_HEAD = re.compile(rb'\s*\{\s*"type"\s*:\s*"user"\s*,')
_USER_TAIL = re.compile(rb',\s*"type"\s*:\s*"user"\s*\}\s*\Z')
_KNOWN_TYPES = frozenset(
    {"system", "assistant", "user", "result", "stream_event", "rate_limit_event", "tool_progress"}
    | {"tool_use_summary", "auth_status", "prompt_suggestion", "conversation_reset"}
)
_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# The input key that says most about a call, for the one-line summary: Bash, Read/Edit/Write,
# NotebookEdit, Glob/Grep, WebFetch, WebSearch, Task, Skill.
_SUMMARY_KEYS: tuple[str, ...] = ("command", "file_path", "notebook_path", "pattern", "url")
_SUMMARY_KEYS += ("query", "description", "prompt", "skill", "path")
# $ per million input and output tokens, first match on the model name wins. Only for the live
# estimate (a budget guard); the CLI's total_cost_usd is the figure recorded. Cache reads cost
# 0.1x input, cache writes 1.25x (5 min) or 2x (1 h). Unknown models get current Opus prices.
_PRICES = [(k, 15.0, 75.0) for k in ("opus-4-1", "opus-4-2025", "3-opus")]
_PRICES += [("opus", 5.0, 25.0), ("sonnet", 3.0, 15.0), ("haiku", 1.0, 5.0), ("", 5.0, 25.0)]
_API_ERROR_UNREACHABLE = frozenset({"server_error", "unknown"})
_RATE_LIMIT_ERRORS = frozenset({"rate_limit", "overloaded"})
_NOT_RETRYABLE = frozenset({"error_max_turns", "error_max_structured_output_retries"})


@dataclass(frozen=True)
class Progress:
    """Something worth telling live. `fields` never use the event keys id/type/at/name/state."""

    kind: str  # started | tool_call | text | cost | api_retry | rate_limit
    fields: dict[str, Any]


@dataclass
class StreamState:
    """Everything learnt so far from one execution's stdout; one per execution."""

    session_id: str | None = None
    cli_version: str | None = None
    model: str | None = None
    result: dict[str, Any] | None = None  # the last result line, parsed
    cost_usd: float = 0.0  # the last total_cost_usd the process reported
    estimated_cost_usd: float = 0.0  # live, from each distinct message.id's start usage
    input_tokens: int = 0  # the last result's usage (main loop only)
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    model_usage: dict[str, Any] = field(default_factory=dict)  # the last result's modelUsage
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
    if not isinstance(kind, str) or kind not in _KNOWN_TYPES:
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


def _on_system(state: StreamState, msg: dict[str, Any]) -> Progress | None:
    subtype = msg.get("subtype")
    if subtype == "init":
        state.session_id = _str(msg.get("session_id")) or state.session_id
        state.model = _str(msg.get("model")) or state.model
        state.cli_version = _str(msg.get("claude_code_version")) or state.cli_version
        started = {"session_id": state.session_id, "model": state.model}
        return Progress("started", {**started, "cli_version": state.cli_version})
    if subtype == "api_retry":
        keys = ("attempt", "max_retries", "retry_delay_ms", "error_status", "error")
        return Progress("api_retry", {k: msg.get(k) for k in keys})
    return None


def _on_assistant(state: StreamState, msg: dict[str, Any]) -> Progress | None:
    state.api_error = _str(msg.get("error"))
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
    for block in _list(message.get("content")):
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str):
            continue
        if kind in _TOOL_BLOCKS:
            state.tool_calls += 1
            if progress is None or progress.kind != "tool_call":
                tool = _str(block.get("name")) or "?"
                summary = summarize(block.get("input"))
                progress = Progress("tool_call", {"tool": tool, "summary": summary, **cost})
        elif kind == "text" and progress is None:
            text = _one_line(_str(block.get("text")) or "", SUMMARY_MAX)
            if text:
                progress = Progress("text", {"text": text, **cost})
    if progress is None and state.estimated_cost_usd != before:
        progress = Progress("cost", {"cost_usd": state.cost_usd, **cost, "final": False})
    return progress


def _on_result(state: StreamState, msg: dict[str, Any]) -> Progress:
    state.result = msg
    state.session_id = _str(msg.get("session_id")) or state.session_id
    cost = _num(msg.get("total_cost_usd"))
    if cost is not None:
        state.cost_usd = cost
    usage = msg.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    state.input_tokens = _int(usage.get("input_tokens")) or 0
    state.output_tokens = _int(usage.get("output_tokens")) or 0
    state.cache_read_tokens = _int(usage.get("cache_read_input_tokens")) or 0
    state.cache_creation_tokens = _int(usage.get("cache_creation_input_tokens")) or 0
    model_usage = msg.get("modelUsage")
    state.model_usage = model_usage if isinstance(model_usage, dict) else {}
    state.num_turns = _int(msg.get("num_turns"))
    state.duration_ms = _int(msg.get("duration_ms"))
    final = {"cost_usd": state.cost_usd, "final": True, "subtype": _str(msg.get("subtype"))}
    return Progress("cost", {**final, "estimated_cost_usd": round(state.estimated_cost_usd, 6)})


def _on_rate_limit(state: StreamState, msg: dict[str, Any]) -> Progress | None:
    info = msg.get("rate_limit_info")
    if not isinstance(info, dict):
        return None
    state.rate_limit_status = _str(info.get("status"))
    state.rate_limit_resets_at = _epoch(info.get("resetsAt"))
    fields = {"status": state.rate_limit_status, "resets_at": state.rate_limit_resets_at}
    return Progress("rate_limit", {**fields, "limit": _str(info.get("rateLimitType"))})


def _estimate(model: Any, usage: Any) -> float:
    """Dollars for one message from its start usage (output is ~1 token there: an underestimate)."""
    if not isinstance(usage, dict):
        return 0.0
    name = model if isinstance(model, str) else ""
    price_in, price_out = next((i, o) for k, i, o in _PRICES if k in name)
    tokens = {k: _int(v) or 0 for k, v in usage.items()}
    split = usage.get("cache_creation")
    hour = _int(split.get("ephemeral_1h_input_tokens")) or 0 if isinstance(split, dict) else 0
    written = tokens.get("cache_creation_input_tokens", 0)
    hour = min(hour, written)
    weighted_in = tokens.get("input_tokens", 0) + 0.1 * tokens.get("cache_read_input_tokens", 0)
    weighted_in += 1.25 * (written - hour) + 2.0 * hour
    return (weighted_in * price_in + tokens.get("output_tokens", 0) * price_out) / 1e6


@dataclass(frozen=True)
class Ending:
    """Everything known when the process is gone."""

    # the runner stopped it, and why ("stdout_closed": it closed its stdout and did not exit)
    killed: Literal["timeout", "cancel", "budget", "stdout_closed"] | None
    exit_code: int | None  # negative: killed by that signal
    stderr_tail: str
    budget_usd: float | None  # the task's max_budget_usd
    result: dict[str, Any] | None  # StreamState.result
    api_error: str | None = None
    rate_limit_status: str | None = None
    rate_limit_resets_at: float | None = None
    estimated_cost_usd: float | None = None  # the live estimate, for a budget kill's reason


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: str  # "" for COMPLETED
    api_error_status: int | None = None
    rate_limited: bool = False  # 429/529 or a rejected rate limit: pause, requeue
    resets_at: float | None = None


def decide(ending: Ending) -> Outcome:
    """The final state of an execution. Order matters: what the runner did first, then money,
    then what claude said. Reasons come only from the stream and stderr, clipped."""
    if ending.killed == "timeout":
        return Outcome(State.TIMED_OUT, "timeout")
    if ending.killed == "cancel":
        return Outcome(State.CANCELLED, "cancelled")
    result = ending.result
    cost = _num(result.get("total_cost_usd")) if result is not None else None
    budget = ending.budget_usd if ending.budget_usd and ending.budget_usd > 0 else None
    limit = _usd(budget) if budget is not None else "limit"
    if ending.killed == "budget":
        spent = max(cost or 0.0, ending.estimated_cost_usd or 0.0)
        return Outcome(State.BUDGET_EXCEEDED, f"budget {limit} reached (estimated ${spent:.4f})")
    if result is not None and (
        result.get("subtype") == "error_max_budget_usd"
        or (budget is not None and cost is not None and cost >= budget)
    ):
        return Outcome(State.BUDGET_EXCEEDED, f"budget {limit} reached (${cost or 0.0:.4f})")

    rejected = ending.rate_limit_status == "rejected"
    resets_at = ending.rate_limit_resets_at
    if result is None:
        reason = f"no result ({_exit(ending.exit_code)})"
        if ending.killed == "stdout_closed":
            reason = "no result: claude closed its stdout and did not exit, so it was stopped"
        last = _last_line(ending.stderr_tail)
        return _failed(f"{reason}: {last}" if last else reason, rejected, resets_at)

    subtype = _str(result.get("subtype")) or "result without subtype"
    if subtype == "success" and not result.get("is_error"):
        return Outcome(State.COMPLETED, "")
    if subtype == "success":
        status = _int(result.get("api_error_status"))
        if status is not None:
            label = str(status)
        elif ending.api_error and ending.api_error not in _API_ERROR_UNREACHABLE:
            label = ending.api_error
        else:
            label = "unreachable"
        limited = rejected or status in (429, 529) or ending.api_error in _RATE_LIMIT_ERRORS
        text = _str(result.get("result")) or ""
        reason = f"api_error {label}: {text}" if text.strip() else f"api_error {label}"
        return _failed(reason, limited, resets_at, status)
    errors = "; ".join(e for e in _list(result.get("errors")) if isinstance(e, str) and e)
    detail = errors or _str(result.get("terminal_reason")) or _str(result.get("result")) or ""
    reason = f"{subtype}: {detail}" if detail.strip() else subtype
    return _failed(reason, rejected and subtype not in _NOT_RETRYABLE, resets_at)


def _failed(reason: str, limited: bool, resets: float | None, status: int | None = None) -> Outcome:
    resets = resets if limited else None
    return Outcome(State.FAILED, _one_line(reason, REASON_MAX), status, limited, resets)


def _exit(code: int | None) -> str:
    """`exit 1`, `exit 143 SIGTERM`, `signal 9 SIGKILL`, or `no exit code`."""
    if code is None:
        return "no exit code"
    number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    name = next((f" {s.name}" for s in signal.Signals if number and s.value == number), "")
    return f"signal {-code}{name}" if code < 0 else f"exit {code}{name}"


def _last_line(text: str) -> str:
    lines = text[-4 * REASON_MAX :].strip().splitlines() if text else []
    return lines[-1].strip() if lines else ""


def _usd(amount: float) -> str:
    cents = amount * 100
    return f"${amount:.2f}" if abs(cents - round(cents)) < 1e-6 else f"${amount:g}"


def render(line: bytes) -> str | None:
    """One stdout line for people; None for lines not worth showing. Non-JSON lines as they are."""
    raw = line.rstrip(b"\r\n")
    if not raw or raw.isspace():
        return None
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        msg = None
    if not isinstance(msg, dict):
        return raw.decode("utf-8", "replace")
    kind = msg.get("type")
    if kind == "system":
        return _render_system(msg)
    if kind in ("assistant", "user"):
        message = msg.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if kind == "user" and isinstance(content, str):
            content = [{"type": "text", "text": content}]
        shown = [_render_block(b, kind) for b in _list(content) if isinstance(b, dict)]
        return "\n".join(s for s in shown if s) or None
    if kind == "result":
        return _render_result(msg)
    info = msg.get("rate_limit_info") if kind == "rate_limit_event" else None
    if not isinstance(info, dict) or _str(info.get("status")) in (None, "allowed"):
        return None
    until, which = _clock(_epoch(info.get("resetsAt"))), _str(info.get("rateLimitType"))
    text = f"[rate limit] {info['status']}" + (f" until {until}" if until else "")
    return text + (f" ({which})" if which else "")


def _render_system(msg: dict[str, Any]) -> str | None:
    subtype = msg.get("subtype")
    if subtype == "init":
        return (
            f"[init] model {_str(msg.get('model')) or '?'}, "
            f"cli {_str(msg.get('claude_code_version')) or '?'}, "
            f"session {_str(msg.get('session_id')) or '?'}"
        )
    if subtype == "api_retry":
        attempt, most = _int(msg.get("attempt")) or "?", _int(msg.get("max_retries")) or "?"
        status = _int(msg.get("error_status"))
        shown = f"[retry] attempt {attempt}/{most}: {_str(msg.get('error')) or 'error'}"
        return shown + (f" (status {status})" if status is not None else "")
    if subtype == "compact_boundary":
        meta = msg.get("compact_metadata")
        trigger = _str(meta.get("trigger")) if isinstance(meta, dict) else None
        return f"[compact] {trigger or 'context compacted'}"
    return None


def _render_block(block: dict[str, Any], role: str) -> str | None:
    kind = block.get("type")
    if not isinstance(kind, str):
        return None
    if kind == "text":
        text = _str(block.get("text")) or ""
        if role == "user":
            return f"[user] {_fold(text)}" if text.strip() else None
        return text or None
    if kind in _TOOL_BLOCKS:
        summary = summarize(block.get("input"))
        name = _str(block.get("name")) or "?"
        return f"→ {name}: {summary}" if summary else f"→ {name}"
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            parts = [
                (_str(p.get("text")) or "") if p.get("type") == "text" else f"[{p.get('type')}]"
                for p in content
                if isinstance(p, dict)
            ]
            content = "\n".join(parts)
        text = content if isinstance(content, str) else ""
        verdict = "error" if block.get("is_error") is True else "ok"
        return f"← {verdict}: {_fold(text) if text.strip() else '(no output)'}"
    return None


def _render_result(msg: dict[str, Any]) -> str:
    subtype = _str(msg.get("subtype")) or "?"
    if subtype == "success" and msg.get("is_error"):
        status = _int(msg.get("api_error_status"))
        subtype = f"api_error {status if status is not None else 'unreachable'}"
    errors = [e for e in _list(msg.get("errors")) if isinstance(e, str)]
    text = _str(msg.get("result")) or "; ".join(errors)
    facts = []
    if (cost := _num(msg.get("total_cost_usd"))) is not None:
        facts.append(f"${cost:.4f}")
    if (turns := _int(msg.get("num_turns"))) is not None:
        facts.append(f"{turns} turn" + ("" if turns == 1 else "s"))
    if (ms := _int(msg.get("duration_ms"))) is not None:
        facts.append(f"{ms / 1000:.1f}s")
    head = f"[result] {subtype}" + (f": {_fold(text)}" if text.strip() else "")
    return head + (" — " + ", ".join(facts) if facts else "")


def summarize(tool_input: Any) -> str:
    """A tool call's input on one short line: the telling field, else the first few fields."""
    if isinstance(tool_input, str):
        return _one_line(tool_input, SUMMARY_MAX)
    if not isinstance(tool_input, dict):
        return ""
    for key in _SUMMARY_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return _one_line(value, SUMMARY_MAX)
    parts = (f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in tool_input.items())
    return _one_line(", ".join(_one_line(p, 48) for p in islice(parts, 4)), SUMMARY_MAX)


def _one_line(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces, clipped to `limit` characters with an ellipsis."""
    flat = " ".join(text[: limit * 4].split())
    return flat if len(flat) <= limit and len(text) <= limit * 4 else flat[: limit - 1] + "…"


def _fold(text: str) -> str:
    """The first non-blank line, clipped, and how many more lines follow."""
    first, _, rest = text.strip().partition("\n")
    shown = first if len(first) <= FOLD_MAX else first[: FOLD_MAX - 1] + "…"
    more = rest.count("\n") + 1 if rest else 0
    return shown.rstrip() + (f" (+{more} line{'s' if more > 1 else ''})" if more else "")


def _clock(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    try:
        return time.strftime("%H:%M", time.localtime(epoch))
    except (OverflowError, OSError, ValueError):
        return None


def _epoch(value: Any) -> float | None:
    """Epoch seconds; a value that only makes sense as milliseconds is converted."""
    number = _num(value)
    if number is None or number <= 0:
        return None
    return number / 1000 if number > 1e11 else number


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
