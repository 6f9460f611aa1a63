"""What a git source is wired to: the store and the spool (its own layer), the checkout roots the
intake's crash repair reads, and plain callables into the layers above, bound by whoever
builds the sources. Nothing in `sources/` holds the intake or the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from claudomator.spool import Spool
from claudomator.state import State

if TYPE_CHECKING:
    from claudomator.store.db import Store


class OfferBytes(Protocol):
    """The type of one callable (the intake's `offer_bytes`): a committed version of a task file
    into the one ingest path; False when that version was offered before."""

    def __call__(
        self,
        source: str,
        rel: str,
        data: bytes,
        *,
        provenance: dict[str, str],
        base_dir: Path,
        version: tuple[str, str],
    ) -> bool: ...


class RefuseBytes(Protocol):
    """The type of the intake's `refuse_bytes`: a committed version that never runs, put in
    `rejected/` with its reason through the one rejection path; False when seen before."""

    def __call__(
        self,
        source: str,
        rel: str,
        data: bytes,
        *,
        provenance: dict[str, str],
        reason: str,
        version: tuple[str, str],
    ) -> bool: ...


@dataclass(frozen=True)
class Hooks:
    """The calls a git source makes upward."""

    offer: OfferBytes  # a new version, to be ingested (at most once, ever)
    refuse: RefuseBytes  # a new version that never runs (at most once, ever)
    cancel_if: Callable[[str, list[State], str], bool]  # withdraw a task that has not started


@dataclass(frozen=True)
class Links:
    store: Store
    spool: Spool
    base_dirs: dict[str, Path]  # "@name" -> checkout root, read by the intake's crash repair
    hooks: Hooks


__all__ = ["Hooks", "Links", "OfferBytes", "RefuseBytes"]
