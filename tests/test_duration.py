from __future__ import annotations

import pytest

from claudomator.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("2d", 172800),
        ("1h1m1s", 3661),
        (45, 45),
        (1.5, 1.5),
        ("30", 30),
        (" 10m ", 600),
    ],
)
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "1.5h", "10 minutes", "m", "-5s", -1, True, None, [], "1y", "inf"]
)
def test_parse_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.5, "500ms"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d")]
)
def test_format_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
