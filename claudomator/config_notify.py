"""`[[notify]]` tables in config.toml: the webhook receivers, and what each may ask to be told."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from claudomator.config_values import is_url, names, tables
from claudomator.errors import ConfigError
from claudomator.state import State

# What a [[notify]] receiver can ask for: final task states, and conditions of the pool.
RATE_LIMITED = "RATE_LIMITED"  # the pool paused new starts for an API rate limit
DAILY_BUDGET_REACHED = "DAILY_BUDGET_REACHED"  # today's spend reached budget.daily_usd
AUTH_FAILED = "AUTH_FAILED"  # claude could not authenticate: the pool paused until resumed
BILLING_LANE = "BILLING_LANE"  # claude would have billed outside claude.billing: paused
NOTIFY_STATES = (
    *(s.value for s in State if s not in (State.PENDING, State.QUEUED, State.RUNNING)),
    RATE_LIMITED,
    DAILY_BUDGET_REACHED,
    AUTH_FAILED,
    BILLING_LANE,
)
NOTIFY_DEFAULT_STATES = (
    State.FAILED.value,
    State.TIMED_OUT.value,
    State.BUDGET_EXCEEDED.value,
    RATE_LIMITED,
    DAILY_BUDGET_REACHED,
    AUTH_FAILED,
    BILLING_LANE,
)
NOTIFY_FIELDS = ("url", "states", "secret")


@dataclass(frozen=True)
class NotifyTarget:
    """One webhook receiver from a `[[notify]]` table."""

    url: str
    states: tuple[str, ...] = NOTIFY_DEFAULT_STATES
    secret: str = field(default="", repr=False)  # HMAC-SHA256 key for the signature header

    def __repr__(self) -> str:
        return f"NotifyTarget(url={self.shown_url!r}, states={self.states!r})"

    @property
    def shown_url(self) -> str:
        """The URL without path or query, which may carry a secret (chat webhooks do)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."

    @property
    def shown(self) -> str:
        """How `claudomator config` shows it: no secret, no path."""
        return f"{self.shown_url} {list(self.states)}" + (" signed" if self.secret else "")


def notify_targets(value: object, where: str) -> tuple[NotifyTarget, ...]:
    """The receivers in config.toml's `notify` array of tables (`where` is the file)."""
    targets = []
    for at, table in tables(value, where, "notify", NOTIFY_FIELDS, "receiver"):
        url = table.get("url")
        if not isinstance(url, str) or not is_url(url):
            raise ConfigError(f"{at}.url: {url!r} is not an http(s) URL")
        states = table.get("states", list(NOTIFY_DEFAULT_STATES))
        try:
            wanted = names(states)
        except ValueError as e:
            raise ConfigError(f"{at}.states: {e}") from None
        if not wanted:
            raise ConfigError(f"{at}.states: empty: this receiver would never be told anything")
        for state in wanted:
            if state not in NOTIFY_STATES:
                raise ConfigError(
                    f"{at}.states: {state!r} is not one of {', '.join(NOTIFY_STATES)}"
                )
        secret = table.get("secret", "")
        if not isinstance(secret, str):
            raise ConfigError(f"{at}.secret: not a string")
        targets.append(NotifyTarget(url, tuple(dict.fromkeys(wanted)), secret))
    return tuple(targets)


NOTIFY_TEMPLATE = (
    "# Webhook notifications: one [[notify]] table per receiver, none by default. A JSON POST",
    "# when a task ends in one of `states` or the pool needs attention; with a `secret`, the",
    "# header X-Claudomator-Signature is sha256=HMAC-SHA256(secret, body) in hex.",
    "#   [[notify]]",
    '#   url = "https://example.com/hooks/claudomator"',
    "#   states = [" + ", ".join(f'"{s}"' for s in NOTIFY_DEFAULT_STATES) + "]",
    "#   # one of: " + ", ".join(NOTIFY_STATES),
    '#   secret = "a long random string"',
)
"""The `[[notify]]` part of config.toml's template (`claudomator init`): commented out."""
