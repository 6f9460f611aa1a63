"""Where an execution runs: the task's working_dir, else the configured default, and whether a
path lies inside the allowed roots. Pure but for resolving links."""

from __future__ import annotations

import os
from pathlib import Path

from claudomator.config import Config
from claudomator.task import TaskSpec


def working_dir(spec: TaskSpec, config: Config) -> Path:
    return Path(os.path.expanduser(spec.claude.working_dir or config.default_working_dir()))


def within(path: Path, roots: tuple[str, ...]) -> bool:
    """Whether `path` (links resolved) is inside one of `roots`; no roots: anywhere."""
    if not roots:
        return True
    real = os.path.realpath(path)
    return any(
        real == r or real.startswith(r.rstrip("/") + "/") for r in map(os.path.realpath, roots)
    )
