"""Where an execution runs: the task's working_dir, else the configured default; whether a path
lies inside the allowed roots; and a file's working_dir confined to its checkout and those roots.
Pure but for resolving links."""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def confine(spec: TaskSpec, base: Path | None, allowed_roots: Sequence[str]) -> TaskSpec:
    """`spec` with its working_dir resolved: relative to a checkout (`base`, also its default),
    and inside the checkout or one of `allowed_roots` (links resolved); ValueError otherwise."""
    wd = spec.claude.working_dir
    if base is None:
        if not allowed_roots or not wd:
            return spec
        path = Path(os.path.expanduser(wd))
    else:
        path = base / os.path.expanduser(wd) if wd else base
    real = os.path.realpath(path)
    if not within(Path(real), ((str(base),) if base else ()) + tuple(allowed_roots)):
        where = "the checkout or allowed_roots" if base else "allowed_roots"
        raise ValueError(
            f"claude.working_dir: {wd or str(path)!r} resolves to {real}, outside {where}"
        )
    if base is None:
        return spec
    return spec.model_copy(update={"claude": spec.claude.model_copy(update={"working_dir": real})})
