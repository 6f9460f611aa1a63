"""One exception root for everything claudomator raises on purpose.

    ClaudomatorError
    ├── ConfigError          config.toml, environment or flags are wrong
    ├── TaskFileError        a task or batch file is invalid (carries every FieldError)
    └── StoreError           the database cannot be opened or used
        ├── NotFoundError    no task or execution with that id
        ├── TransitionError  a state change the transition table forbids, or lost a race
        ├── LeaseLost        this node's lease expired or it was marked lost: it must not start
        └── DatabaseUnavailable  unreachable, or refused for a moment: worth trying again

The class docstring is the default message; errors carry context fields.
"""

from __future__ import annotations

from dataclasses import dataclass


class ClaudomatorError(Exception):
    """claudomator failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(ClaudomatorError):
    """The configuration is invalid."""


@dataclass(frozen=True)
class FieldError:
    """One problem in a task file: where it is and what is wrong."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    field: str  # dotted field path, e.g. "tasks[1].claude.model"; "" for the whole file
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
        field = f" {self.field}:" if self.field else ""
        kind = " warning:" if self.warning else ""
        return f"{where}:{kind}{field} {self.message}"


class TaskFileError(ClaudomatorError):
    """The task file is invalid."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class StoreError(ClaudomatorError):
    """The database failed."""


class NotFoundError(StoreError):
    """No such task or execution."""


class TransitionError(StoreError):
    """That state change is not allowed."""


class LeaseLost(StoreError):
    """This node's lease expired or another node marked it lost: it must not start tasks."""


class DatabaseUnavailable(StoreError):
    """The database cannot be reached or refused for a moment (a network cut, a restart, a lock
    timeout): worth trying again."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: the database is unavailable: {reason}")
        self.reason = reason
