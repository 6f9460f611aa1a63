"""claude's stream-json for people: `render` turns one stdout line into the text `claudomator logs`
and the API's readable log show, or None for a line not worth showing. Pure and stdlib-only: the
CLI imports it on its light read path."""

from __future__ import annotations

import json
import time

from claudomator.records import JSONObject
from claudomator.streamjson import (
    TOOL_BLOCKS,
    as_epoch,
    as_int,
    as_list,
    as_num,
    as_str,
    summarize,
)

FOLD_MAX = 200  # characters of the first line of a folded tool result


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
        shown = [_render_block(b, kind) for b in as_list(content) if isinstance(b, dict)]
        return "\n".join(s for s in shown if s) or None
    if kind == "result":
        return _render_result(msg)
    info = msg.get("rate_limit_info") if kind == "rate_limit_event" else None
    if not isinstance(info, dict) or as_str(info.get("status")) in (None, "allowed"):
        return None
    until, which = _clock(as_epoch(info.get("resetsAt"))), as_str(info.get("rateLimitType"))
    text = f"[rate limit] {info['status']}" + (f" until {until}" if until else "")
    return text + (f" ({which})" if which else "")


def _render_system(msg: JSONObject) -> str | None:
    subtype = msg.get("subtype")
    if subtype == "init":
        return (
            f"[init] model {as_str(msg.get('model')) or '?'}, "
            f"cli {as_str(msg.get('claude_code_version')) or '?'}, "
            f"session {as_str(msg.get('session_id')) or '?'}"
        )
    if subtype == "api_retry":
        attempt, most = as_int(msg.get("attempt")) or "?", as_int(msg.get("max_retries")) or "?"
        status = as_int(msg.get("error_status"))
        shown = f"[retry] attempt {attempt}/{most}: {as_str(msg.get('error')) or 'error'}"
        return shown + (f" (status {status})" if status is not None else "")
    if subtype == "compact_boundary":
        meta = msg.get("compact_metadata")
        trigger = as_str(meta.get("trigger")) if isinstance(meta, dict) else None
        return f"[compact] {trigger or 'context compacted'}"
    return None


def _render_block(block: JSONObject, role: str) -> str | None:
    kind = block.get("type")
    if not isinstance(kind, str):
        return None
    if kind == "text":
        text = as_str(block.get("text")) or ""
        if role == "user":
            return f"[user] {_fold(text)}" if text.strip() else None
        return text or None
    if kind in TOOL_BLOCKS:
        summary = summarize(block.get("input"))
        name = as_str(block.get("name")) or "?"
        return f"→ {name}: {summary}" if summary else f"→ {name}"
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            parts = [
                (as_str(p.get("text")) or "") if p.get("type") == "text" else f"[{p.get('type')}]"
                for p in content
                if isinstance(p, dict)
            ]
            content = "\n".join(parts)
        text = content if isinstance(content, str) else ""
        verdict = "error" if block.get("is_error") is True else "ok"
        return f"← {verdict}: {_fold(text) if text.strip() else '(no output)'}"
    return None


def _render_result(msg: JSONObject) -> str:
    subtype = as_str(msg.get("subtype")) or "?"
    if subtype == "success" and msg.get("is_error"):
        status = as_int(msg.get("api_error_status"))
        subtype = f"api_error {status if status is not None else 'unreachable'}"
    errors = [e for e in as_list(msg.get("errors")) if isinstance(e, str)]
    text = as_str(msg.get("result")) or "; ".join(errors)
    facts = []
    if (cost := as_num(msg.get("total_cost_usd"))) is not None:
        facts.append(f"${cost:.4f}")
    if (turns := as_int(msg.get("num_turns"))) is not None:
        facts.append(f"{turns} turn" + ("" if turns == 1 else "s"))
    if (ms := as_int(msg.get("duration_ms"))) is not None:
        facts.append(f"{ms / 1000:.1f}s")
    head = f"[result] {subtype}" + (f": {_fold(text)}" if text.strip() else "")
    return head + (" — " + ", ".join(facts) if facts else "")


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
