"""API tokens: a full one and a read-only one, each alone in a 0600 file in the data dir.

Stdlib only, so `claudomator token` starts fast. The server reads the files once at start; a
presented token is compared in constant time and is never logged, answered or published.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from claudomator.datadir import write_private
from claudomator.errors import ConfigError

Access = Literal["full", "read"]

_PREFIX = {False: "cmt_", True: "cmr_"}  # recognisable by secret scanners; says which kind


def token_path(root: Path, *, read_only: bool = False) -> Path:
    return root / ("token.read-only" if read_only else "token")


def read_token(root: Path, *, read_only: bool = False) -> str | None:
    """The token, or None when there is none; a file others may read is refused."""
    path = token_path(root, read_only=read_only)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the token: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{path}: others may read it (mode {stat.S_IMODE(info.st_mode):o}); "
                f"run chmod 600 {path}, or make a new token with `claudomator token --rotate`"
            )
        text = f.read(4096).decode("ascii", "replace").strip()
    return text or None


def ensure_token(root: Path, *, read_only: bool = False, rotate: bool = False) -> str:
    """The token, made (0600) when there is none yet or when `rotate` asks for a new one."""
    current = None if rotate else read_token(root, read_only=read_only)
    if current is not None:
        return current
    path = token_path(root, read_only=read_only)
    token = _PREFIX[read_only] + secrets.token_urlsafe(32)
    write_private(path, token + "\n", replace=True)  # atomic: a reader sees the old or the new
    return token


@dataclass(frozen=True)
class Tokens:
    """The tokens a server accepts (read at start; `--rotate` needs a restart)."""

    full: str | None = field(default=None, repr=False)
    read_only: str | None = field(default=None, repr=False)

    @classmethod
    def load(cls, root: Path) -> Tokens:
        return cls(read_token(root), read_token(root, read_only=True))

    def __bool__(self) -> bool:
        return bool(self.full or self.read_only)

    def access(self, presented: str) -> Access | None:
        """What `presented` may do (compared in constant time)."""
        given = presented.encode()
        if self.full is not None and hmac.compare_digest(given, self.full.encode()):
            return "full"
        if self.read_only is not None and hmac.compare_digest(given, self.read_only.encode()):
            return "read"
        return None
