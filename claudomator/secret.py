"""Secrets stay out of sight: env names that look secret are masked wherever they are shown, and
secret values from claudomator's own environment are scrubbed from text we record (stderr tails,
reasons)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
MASK = "***"


def is_secret_name(name: str) -> bool:
    """Environment names whose values are masked wherever they are shown."""
    return bool(_SECRET_NAME.search(name))


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if is_secret_name(k) else v) for k, v in env.items()}


def secret_values(env: Mapping[str, str] | None = None) -> list[bytes]:
    """The values of secret-looking variables of `env` (default: ours), longest first."""
    env = os.environ if env is None else env
    values = {v.encode() for k, v in env.items() if len(v) >= 6 and is_secret_name(k)}
    return sorted(values, key=len, reverse=True)


def scrub_bytes(data: bytes, secrets: list[bytes]) -> bytes:
    for value in secrets:
        if value in data:
            data = data.replace(value, MASK.encode())
    return data


def scrub(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` with the value of every secret-looking variable of `env` (default: ours) replaced."""
    env = os.environ if env is None else env
    for name, value in env.items():
        if len(value) >= 6 and is_secret_name(name) and value in text:
            text = text.replace(value, MASK)
    return text
