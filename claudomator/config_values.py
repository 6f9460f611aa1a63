"""Config values as TOML or the environment give them, checked and made typed.

Each parser takes what config.toml (a TOML value) or the environment (a string) holds and
returns the typed value, or raises ValueError with a reason fit to follow "where: key: ". The
config keys, `[[notify]]` and `[[sources]]` share them, and `tables` and `did_you_mean`.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from claudomator.errors import ConfigError
from claudomator.records import JSONObject
from claudomator.workspace import check_prefix


def positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise ValueError(f"{value!r} must be at least 1")
    return number


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def byte_size(value: object) -> int:
    """Bytes, as a whole number or with a binary unit: 500M, 20G, 1.5T (K, M, G, T; an optional
    trailing B or iB); 0 means no limit."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a size (e.g. 20G, 500M or a number of bytes)")
    text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
    unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
    try:
        number = float(text[: len(text) - len(unit)])
    except ValueError:
        raise ValueError(f"{value!r} is not a size (e.g. 20G, 500M or a number of bytes)") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a size >= 0")
    return int(number * _SIZE_UNITS[unit])


def port(value: object) -> int:
    number = positive_int(value)
    if number > 65535:
        raise ValueError(f"{value!r} is not a TCP port (1-65535)")
    return number


def text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.strip().lower() in ("1", "true", "yes", "on")
    raise ValueError(f"{value!r} is not true or false")


def count(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a whole number >= 0")
    return value


def paths(value: object) -> tuple[str, ...]:
    """Absolute folders, from a TOML array or a colon-separated string (environment)."""
    if isinstance(value, str):
        value = [p for p in value.split(":") if p]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{value!r} is not a list of folders")
    found = tuple(os.path.expanduser(v) for v in value)
    for path in found:
        if not os.path.isabs(path):
            raise ValueError(f"{path!r} is not an absolute path")
    return found


def money(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not an amount in USD") from None
    if number < 0 or number != number:
        raise ValueError(f"{value!r} must be 0 (no limit) or more")
    return number


def money_by_name(value: object) -> tuple[tuple[str, float], ...]:
    """A table of amounts by name: `{nightly = 5.0}` in config.toml, `nightly=5,team-a=20` in
    the environment; every amount > 0. As (name, amount) pairs, by name: a config is frozen."""
    found = []
    for name, amount in _by_name(value, "amounts (e.g. {nightly = 5.0})"):
        number = money(amount)
        if number <= 0:
            raise ValueError(f"{name}: {amount!r} must be more than 0")
        found.append((name, number))
    return tuple(found)


def count_by_name(value: object) -> tuple[tuple[str, int], ...]:
    """A table of whole numbers >= 1 by name: `{gpu = 1}` in config.toml, `gpu=1,deploy=2` in
    the environment. As (name, number) pairs, by name."""
    return tuple((name, positive_int(n)) for name, n in _by_name(value, "numbers (e.g. {gpu = 1})"))


def _by_name(value: object, what: str) -> list[tuple[str, object]]:
    if isinstance(value, str):
        pairs = [p.partition("=") for p in value.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError(f"{value!r} is not name=value pairs (e.g. a=1,b=2)")
        value = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a table of {what}")
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{name!r} is not a name")
    return sorted(value.items())


NUMBERS: tuple[Callable[[object], Any], ...] = (positive_int, port, money, count, byte_size)
"""The parsers of numbers: a value for them from the environment is stripped first."""

POSTGRESQL_SCHEMES = ("postgresql+psycopg://", "postgresql://")
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """A database URL fit to show: its password (in the authority or the query) masked."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


def is_postgresql_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRESQL_SCHEMES)


def database_url(value: object) -> str:
    """ "" (SQLite in the data dir) or a PostgreSQL URL; the password never shown in errors."""
    url = text(value).strip()
    if url and not is_postgresql_url(url):
        raise ValueError(
            f"{mask_url(url)!r} is not a PostgreSQL URL (postgresql+psycopg://user@host:5432/db); "
            "leave it empty for SQLite in the data dir"
        )
    return url


def branch_prefix(value: object) -> str:
    return check_prefix(text(value))


def choice(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return check


def names(value: object) -> tuple[str, ...]:
    """A TOML array of strings, or a comma-separated string (environment)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ValueError(f"{value!r} is not a list of strings")


def hosts(value: object) -> tuple[str, ...]:
    found = names(value)
    for host in found:
        if host != "*" and (not host.strip("*.") or any(c in host for c in "/:@ ")):
            raise ValueError(f"{host!r} is not a host name (e.g. example.com, *.example.com)")
    return found


def origins(value: object) -> tuple[str, ...]:
    found = names(value)
    for origin in found:
        if not _is_origin(origin):
            raise ValueError(f"{origin!r} is not an origin like https://example.com:8443")
    return tuple(o.rstrip("/").lower() for o in found)


def _is_origin(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username)
    )


def is_url(text: str) -> bool:
    """An http(s) URL with a host (and, if any, a valid port)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def tables(
    value: object, where: str, key: str, fields: Sequence[str], what: str
) -> Iterator[tuple[str, JSONObject]]:
    """An array of tables (`[[key]]`): each table with where it is, unknown keys refused."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key}: write each {what} as a [[{key}]] table")
    for i, table in enumerate(value):
        at = f"{where}: {key}[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{at}: write each {what} as a [[{key}]] table")
        for name in table:
            if name not in fields:
                raise ConfigError(f"{at}.{name}: unknown key{did_you_mean(name, fields)}")
        yield at, table


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
