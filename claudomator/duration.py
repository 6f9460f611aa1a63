"""Durations as people write them: `90s`, `15m`, `1h30m`, `500ms`, `2d`; a bare number is seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d))+")
MAX_SECONDS = 100 * 365 * 86400.0  # longer is a typo, and would not fit a float for long


def parse_duration(value: object) -> float:
    """Seconds in `value`; ValueError with a readable reason when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0 or value != value:
            raise ValueError(f"{value!r} is not a duration (must be a number >= 0)")
        if value > MAX_SECONDS:
            raise ValueError("duration too long (100 years at most)")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    text = value.strip()
    if len(text) > 40:
        raise ValueError("duration too long (100 years at most)")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return parse_duration(float(text))
    if not _WHOLE.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a duration (use whole numbers with units ms, s, m, h, d, "
            "e.g. 90s, 15m, 1h30m)"
        )
    return parse_duration(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """The shortest readable form: 0.5 -> 500ms, 90 -> 1m30s, 5400 -> 1h30m."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    rest = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, rest = divmod(rest, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"
