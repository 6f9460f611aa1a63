"""Secret values in answers shown as ***: the values of secret-looking variables, ours and the
task's own `claude.env`. claude may print them, and its result and errors are recorded as it
wrote them."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, TypeVar, cast

from claudomator.secret import scrub_bytes, secret_values

if TYPE_CHECKING:
    from claudomator.service import Claudomator


V = TypeVar("V")


def masked(service: Claudomator, task_id: str, data: V) -> V:
    """`data` (a task's or an execution's view) with every secret value masked."""
    secrets = secret_values({**os.environ, **service.task_env(task_id)})
    text = json.dumps(data).encode()
    hidden = scrub_bytes(text, secrets)
    return data if hidden == text else cast(V, json.loads(hidden))


__all__ = ["masked"]
