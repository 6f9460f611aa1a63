"""Models and prices as 2.1.197 resolves and charges them, and token usage as it reports it."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_ALIASES = {
    "opus": "claude-opus-4-8",
    "best": "claude-opus-4-8",
    "sonnet": "claude-sonnet-5",
    "fable": "claude-fable-5",
    "haiku": "claude-haiku-4-5-20251001",
}
# USD per million tokens: input, output, cache read, cache write; max output tokens.
_PRICES = {
    "claude-opus": (5.0, 25.0, 0.5, 6.25, 64000),
    "claude-sonnet": (3.0, 15.0, 0.3, 3.75, 64000),
    "claude-fable": (10.0, 50.0, 1.0, 12.5, 64000),
    "claude-haiku": (1.0, 5.0, 0.1, 1.25, 32000),
}

Usage = tuple[int, int, int, int]  # input, cache creation, cache read, output tokens

ZERO: Usage = (0, 0, 0, 0)
TITLE_USAGE: Usage = (418, 0, 0, 6)  # the session-title call seen in sample-stream.jsonl


def resolve_model(name: str | None) -> str:
    """The model name the init line shows (``[1m]`` kept); no --model is Opus with 1M context."""
    name = name or "opus[1m]"
    suffix = "[1m]" if name.endswith("[1m]") else ""
    base = name[: -len(suffix)] if suffix else name
    return _ALIASES.get(base, base) + suffix


def max_output_tokens(model: str) -> int:
    return _prices(model)[4]


def _prices(model: str) -> tuple[float, float, float, float, int]:
    for prefix, prices in _PRICES.items():
        if model.startswith(prefix):
            return prices
    return _PRICES["claude-sonnet"]


def price(model: str, usage: Usage) -> float:
    p_in, p_out, p_read, p_write, _ = _prices(model)
    inp, create, read, out = usage
    return (inp * p_in + out * p_out + read * p_read + create * p_write) / 1e6


def scale(usage: Usage, f: float) -> Usage:
    inp, create, read, out = usage
    return (round(inp * f), round(create * f), round(read * f), round(out * f))


def add(a: Usage, b: Usage) -> Usage:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def usage_json(u: Usage, *, result: bool) -> dict[str, Any]:
    """`usage` of an assistant line (start-of-message counts) or of the result line."""
    inp, create, read, out = u
    if not result:
        return {
            "input_tokens": inp,
            "cache_creation_input_tokens": create,
            "cache_read_input_tokens": read,
            "output_tokens": out,
            "service_tier": "standard",
            "cache_creation": {"ephemeral_5m_input_tokens": create, "ephemeral_1h_input_tokens": 0},
        }
    return {
        "input_tokens": inp,
        "cache_creation_input_tokens": create,
        "cache_read_input_tokens": read,
        "output_tokens": out,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": create},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
    }
