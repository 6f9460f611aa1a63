"""Which billing a claude run uses, and whether that is the configured lane. Pure, stdlib-only,
table-tested.

`claude.billing` is `any` (the default), `subscription` or `api_key`. claude's `system/init` line
says what it would bill (`apiKeySource`): `ANTHROPIC_API_KEY` is metered API billing; `none` is
no API key, so a subscription login (or none at all). Any other value is unknown, and an unknown
source never passes a lane. Before any run, `credentials` tells from the environment and the
claude config folder what claude would use (for `claudomator doctor`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Lane = Literal["any", "subscription", "api_key"]
LANES: tuple[Lane, ...] = ("any", "subscription", "api_key")
Billed = Literal["subscription", "api_key", "unknown"]

_API_KEY_SOURCES = frozenset({"ANTHROPIC_API_KEY", "apiKeyHelper"})
_SUBSCRIPTION_SOURCES = frozenset({"none"})
# environment variables that make claude bill something else than a subscription login
API_KEY_ENV = ("ANTHROPIC_API_KEY",)
TOKEN_ENV = ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")  # a subscription's token
CLOUD_ENV = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")  # billed by the cloud


def billed(api_key_source: str | None) -> Billed:
    """What an init line's `apiKeySource` bills."""
    if api_key_source in _API_KEY_SOURCES:
        return "api_key"
    if api_key_source in _SUBSCRIPTION_SOURCES:
        return "subscription"
    return "unknown"


def refusal(lane: Lane, api_key_source: str | None) -> str | None:
    """Why a run that would bill `api_key_source` is outside `lane` (None: it is inside)."""
    if lane == "any":
        return None
    if billed(api_key_source) == lane:
        return None
    return f"billing lane: expected {lane}, claude would bill {_shown(api_key_source)}"


def _shown(api_key_source: str | None) -> str:
    if api_key_source is None:
        return "an unknown source (init line without apiKeySource)"
    if api_key_source == "none":
        return "a subscription login (apiKeySource none)"
    return api_key_source if billed(api_key_source) == "api_key" else f"{api_key_source!r}"


@dataclass(frozen=True)
class Credentials:
    """What claude would use, as far as can be told before it runs (values never shown)."""

    billed: Billed | Literal["none"]  # "none": no credentials found at all
    source: str  # the variable or file it comes from


def credentials(env: Mapping[str, str], home: str | None = None) -> Credentials:
    """From claude's environment: an API key wins over a login in headless runs."""
    for name in API_KEY_ENV:
        if env.get(name):
            return Credentials("api_key", name)
    for name in CLOUD_ENV:
        if env.get(name) not in (None, "", "0", "false"):
            return Credentials("api_key", name)
    for name in TOKEN_ENV:
        if env.get(name):
            return Credentials("subscription", name)
    config = env.get("CLAUDE_CONFIG_DIR") or os.path.join(
        home or env.get("HOME") or str(Path.home()), ".claude"
    )
    login = os.path.join(config, ".credentials.json")
    if os.path.isfile(login):
        return Credentials("subscription", login)
    return Credentials("none", "")


def allows(lane: Lane, found: Credentials) -> bool:
    """Whether what `credentials` found fits `lane` (nothing found fits none)."""
    return lane == "any" or found.billed == lane
