"""The only structlog configuration: to stderr, console on a terminal and JSON otherwise.

Every line leaves out empty fields (an event with no execution has no `execution_id=`) and
shows times as ISO 8601 (UTC, like its own timestamp), never as epoch seconds."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog

# fields that hold a moment as epoch seconds, beside every `*_at`
TIME_FIELDS = frozenset({"at", "not_before", "until", "rate_limited_until"})


def readable(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: empty fields (None, "") left out, moments as ISO 8601."""
    for key, value in list(event.items()):
        if value is None or value == "":
            del event[key]
        elif _is_time(key, value):
            moment = datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")
            event[key] = moment.replace("+00:00", "Z")
    return event


def _is_time(key: str, value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (key in TIME_FIELDS or key.endswith("_at")) and 1e8 < value < 1e11


def configure(level: str = "info", fmt: str = "auto") -> None:
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty() and not os.environ.get("NO_COLOR"))
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            readable,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
