"""One task file being read: the errors found in it, and where each field path's key and value
are written, so that every error names file, line and field. Shared by the conversion of the text
(`taskfile`) and the building of tasks from it (`taskbuild`). Pure."""

from __future__ import annotations

from claudomator.errors import FieldError, TaskFileError

MAX_NODES = 100_000  # values after expanding aliases: stops "billion laughs" early
MAX_DEPTH = 64
MAX_INT = 2**63  # bigger ints overflow float() and repr() (4300 digits); no field needs them

FieldPath = tuple[str | int, ...]
Where = tuple[int, int]


class Abort(Exception):
    """Stop here and raise TaskFileError with every error recorded so far."""


class Invalid:
    """Stands in for a value already reported, so validation does not report it again."""


INVALID = Invalid()


class Doc:
    """Errors found in one file, and where each field path's key and value are written."""

    def __init__(self, path: str, hints: bool) -> None:
        self.path = path
        self.hints = hints  # YAML advice ("put it in quotes") makes no sense for JSON
        self.errors: list[FieldError] = []
        self.values: dict[FieldPath, Where] = {}
        self.keys: dict[FieldPath, Where] = {}
        self.raw: dict[FieldPath, str] = {}  # env numbers and booleans: the text written
        self.invalid: set[FieldPath] = set()
        self.nodes = 0
        self.active: set[int] = set()  # containers being converted: meeting one again is a loop

    def error(
        self, fpath: FieldPath, msg: str, where: Where | None = None, warn: bool = False
    ) -> None:
        """Record an error at `where`, by default where the value at `fpath` is written."""
        where = self.at(fpath) if where is None else where
        self.errors.append(FieldError(self.path, *where, dotted(fpath), msg, warn))

    def bad(self, fpath: FieldPath, message: str, where: Where) -> Invalid:
        self.error(fpath, message, where)
        self.invalid.add(fpath)
        return INVALID

    def at(self, fpath: FieldPath, key: bool = False) -> Where:
        """Where the key or value at `fpath` is, else its nearest ancestor's; 0, 0 if unknown."""
        if key and fpath in self.keys:
            return self.keys[fpath]
        while fpath and fpath not in self.values:
            fpath = fpath[:-1]
        return self.values.get(fpath, (0, 0))

    def enter(self, where: Where, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.error((), f"more than {MAX_NODES} values after expanding aliases", where)
            raise Abort
        if depth > MAX_DEPTH:
            self.error((), f"nested deeper than {MAX_DEPTH} levels", where)
            raise Abort

    def fail(self) -> TaskFileError:
        return TaskFileError(sorted(dict.fromkeys(self.errors), key=lambda e: (e.line, e.column)))


def dotted(fpath: FieldPath) -> str:
    out = ""
    for part in fpath:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


def describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({short(value)})"
    kinds = {type(None): "null", str: "a string", list: "a list", dict: "a mapping"}
    return kinds.get(type(value), "an invalid value")


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
