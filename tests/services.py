"""The service tests and benches build: one data dir's `Claudomator`, configured as the CLI
configures it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from claudomator.config import load_config
from claudomator.service import Claudomator


def make_service(
    home: Path | None = None,
    *,
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Claudomator:
    """A `Claudomator` on `load_config(home, env, flags)`: the data dir `home` (else the one `env`
    names), the environment `env` (else this process's), then `flags` by key name. It is its own
    context manager: `with make_service(...) as service:` closes it at the end."""
    return Claudomator(load_config(home, env=env, flags=flags))
