"""Task and batch files: YAML text -> validated `TaskSpec`s, with errors that name file, line and
field. The only module that imports yaml: the YAML is composed (never constructed), so no tag can
run code and every value keeps its position; we turn the nodes into plain data ourselves, within
limits on size, values and depth, and record where each field path came from."""

from __future__ import annotations

import codecs
import difflib
import graphlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import yaml

from claudomator.errors import FieldError, TaskFileError
from claudomator.task import TaskSpec, ValidationError

MAX_NODES = 100_000  # values after expanding aliases: stops "billion laughs" early
MAX_DEPTH = 64
MAX_INT = 2**63  # bigger ints overflow float() and repr() (4300 digits); no field needs them

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: much faster
_T = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT, _STAMP, _MERGE, _SEQ, _MAP = (
    _T + t for t in ("str", "null", "bool", "int", "float", "timestamp", "merge", "seq", "map")
)
_TAG_KIND = {_NULL: "null", _BOOL: "a boolean", _INT: "a number", _FLOAT: "a number"}
_SAFE = yaml.constructor.SafeConstructor()  # YAML 1.1 ints (0x1F, 1_000), floats, booleans
_CONSTRUCT: dict[str, Callable[[yaml.ScalarNode], object]] = {
    _BOOL: _SAFE.construct_yaml_bool,
    _INT: _SAFE.construct_yaml_int,
    _FLOAT: _SAFE.construct_yaml_float,
}
_BATCH_KEYS = ("defaults", "tasks")

FieldPath = tuple[str | int, ...]
Where = tuple[int, int]
KnownName = Callable[[str], bool]
Unknown = Literal["warn", "error"]


@dataclass(frozen=True)
class ParsedFile:
    """What one task file (one task) or batch file (many) asks for."""

    path: str  # as given, shown in messages
    tasks: list[TaskSpec]  # defaults already merged
    is_batch: bool
    warnings: list[FieldError]  # FieldError(warning=True, ...)


class _Abort(Exception):
    """Stop here and raise TaskFileError with every error recorded so far."""


class _Invalid:
    """Stands in for a value already reported, so validation does not report it again."""


_INVALID = _Invalid()


class _Doc:
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
        self.errors.append(FieldError(self.path, *where, _dotted(fpath), msg, warn))

    def bad(self, fpath: FieldPath, message: str, where: Where) -> _Invalid:
        self.error(fpath, message, where)
        self.invalid.add(fpath)
        return _INVALID

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
            raise _Abort
        if depth > MAX_DEPTH:
            self.error((), f"nested deeper than {MAX_DEPTH} levels", where)
            raise _Abort

    def fail(self) -> TaskFileError:
        return TaskFileError(sorted(dict.fromkeys(self.errors), key=lambda e: (e.line, e.column)))


def parse_bytes(
    data: bytes,
    path: str,
    *,
    known_name: KnownName | None = None,
    unknown_dependency: Unknown = "error",
    max_bytes: int = 1 << 20,
) -> ParsedFile:
    """Parse a task or batch file's bytes; TaskFileError lists every error found."""
    doc = _Doc(path, hints=True)
    try:
        if len(data) > max_bytes:
            doc.error((), _too_big(len(data), max_bytes))
            raise _Abort
        return _build(_compose(_decode(data, doc), doc), doc, known_name, unknown_dependency)
    except _Abort:
        raise doc.fail() from None


def parse_file(
    path: str | os.PathLike[str],
    *,
    display_path: str | None = None,
    known_name: KnownName | None = None,
    unknown_dependency: Unknown = "error",
    max_bytes: int = 1 << 20,
) -> ParsedFile:
    """Read and parse a file; a FIFO or an oversized file is refused without reading it."""
    shown = os.fspath(path) if display_path is None else display_path
    data, problem = b"", ""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                problem = "not a regular file"
            elif info.st_size > max_bytes:
                problem = _too_big(info.st_size, max_bytes)
            else:
                data = f.read(max_bytes + 1)
    except OSError as e:
        problem = f"cannot read the file: {e.strerror or e}"
    if problem:
        raise TaskFileError([FieldError(shown, 0, 0, "", problem)])
    return parse_bytes(
        data,
        shown,
        known_name=known_name,
        unknown_dependency=unknown_dependency,
        max_bytes=max_bytes,
    )


def parse_object(
    data: object,
    path: str,
    *,
    known_name: KnownName | None = None,
    unknown_dependency: Unknown = "error",
) -> ParsedFile:
    """Validate a task or batch given as JSON-like data (the API); errors have no position."""
    doc = _Doc(path, hints=False)
    try:
        return _build(_plain(data, (), 0, doc), doc, known_name, unknown_dependency)
    except _Abort:
        raise doc.fail() from None


def _too_big(size: int, limit: int) -> str:
    return f"file is too large: {size} bytes, the limit is {limit} bytes"


def _line_col(text: str, index: int) -> Where:
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _decode(data: bytes, doc: _Doc) -> str:
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        head = data[start : start + e.start].decode("utf-8")
        offset = start + e.start
        message = f"not UTF-8: byte {data[offset]:#04x} at offset {offset}; save it as UTF-8"
        doc.error((), message, _line_col(head, len(head)))
        raise _Abort from None


def _compose(text: str, doc: _Doc) -> object:
    """The single document's node tree, converted; YAML errors carry YAML's own position."""
    try:
        loader = _LOADER(text)  # the pure-Python reader checks characters here
        try:
            if not loader.check_node():
                doc.error((), "the file is empty", (1, 1))
                raise _Abort
            node = loader.get_node()
            if loader.check_node():
                mark = loader.peek_event().start_mark
                message = "a second YAML document (---); put many tasks in one batch file"
                doc.error((), message, (mark.line + 1, mark.column + 1))
                raise _Abort
            return _value(node, (), 0, doc)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = f"{e.problem} ({e.context})" if e.context else str(e.problem)
        doc.error((), f"invalid YAML: {what}", (mark.line + 1, mark.column + 1) if mark else (0, 0))
    except yaml.reader.ReaderError as e:  # the first such character is the one refused
        index = text.find(chr(e.character)) if isinstance(e.character, int) else -1
        where = _line_col(text, index) if index >= 0 else (0, 0)
        doc.error((), f"invalid YAML: character {e.character:#x} is not allowed", where)
    except yaml.YAMLError as e:
        doc.error((), f"invalid YAML: {e}")
    except RecursionError:  # only the pure-Python composer recurses; libyaml caps nesting
        doc.error((), f"nested deeper than {MAX_DEPTH} levels")
    raise _Abort


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_T) if tag.startswith(_T) else tag


def _value(node: yaml.Node, fpath: FieldPath, depth: int, doc: _Doc) -> object:
    """Node -> plain data. Aliases share nodes, so alias bombs cost time only here: counted."""
    where = node.start_mark.line + 1, node.start_mark.column + 1
    doc.enter(where, depth)
    doc.values[fpath] = where
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, fpath, where, doc)
    if id(node) in doc.active:
        doc.error(fpath, "recursive alias: the value contains itself", where)
        raise _Abort
    if node.tag != (_SEQ if isinstance(node, yaml.SequenceNode) else _MAP):
        return doc.bad(fpath, f"tag {_tag(node.tag)} is not allowed", where)
    doc.active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_value(n, (*fpath, i), depth + 1, doc) for i, n in enumerate(node.value)]
        return _mapping(node, fpath, depth, doc)
    finally:
        doc.active.discard(id(node))


def _scalar(node: yaml.ScalarNode, fpath: FieldPath, where: Where, doc: _Doc) -> object:
    tag, text = node.tag, node.value
    if tag in (_STR, _STAMP, _MERGE):  # a date stays as written; "<<" as a value is text
        return text
    if tag == _NULL:
        return None
    if tag not in _CONSTRUCT:
        return doc.bad(fpath, f"tag {_tag(tag)} is not allowed", where)
    try:
        value = _CONSTRUCT[tag](node)
    except (ValueError, KeyError, TypeError, IndexError):
        return doc.bad(fpath, f"{_short(text)} is not a valid {_tag(tag)}", where)
    if isinstance(value, int) and abs(value) >= MAX_INT:
        return doc.bad(fpath, "number too large", where)
    if len(fpath) > 1 and fpath[-2] == "env":
        doc.raw[fpath] = text
    return value


def _mapping(node: yaml.Node, fpath: FieldPath, depth: int, doc: _Doc) -> dict[str, object]:
    """Keys must be strings and unique; YAML merge keys (`<<: *x`, `<<: [*x, *y]`) apply."""
    out: dict[str, object] = {}
    sources = [
        s
        for k, v in node.value
        if k.tag == _MERGE
        for s in (v.value if isinstance(v, yaml.SequenceNode) else [v])
    ]
    for source in reversed(sources):  # the first source wins, so it is merged last
        merged = _value(source, fpath, depth + 1, doc)
        if isinstance(merged, dict):
            out.update(merged)
        elif merged is not _INVALID:
            doc.error(fpath, "'<<' merges a mapping or a list of mappings", doc.values[fpath])
    seen: dict[str, Where] = {}
    for key, value in node.value:
        where, kpath = (key.start_mark.line + 1, key.start_mark.column + 1), (*fpath, key.value)
        if key.tag == _MERGE:
            continue
        if not isinstance(key, yaml.ScalarNode) or key.tag not in (_STR, _STAMP):
            kind = _TAG_KIND.get(key.tag) if isinstance(key, yaml.ScalarNode) else None
            how = f": {_short(key.value)} is read as {kind}; put it in quotes" if kind else ""
            doc.error(fpath, f"keys must be strings{how}", where)
        elif key.value in seen:
            doc.error(kpath, f"duplicate key (first on line {seen[key.value][0]})", where)
        else:
            seen[key.value] = doc.keys[kpath] = where
            out[key.value] = _value(value, kpath, depth + 1, doc)
    doc.values[fpath] = node.start_mark.line + 1, node.start_mark.column + 1  # merges moved it
    return out


def _plain(obj: object, fpath: FieldPath, depth: int, doc: _Doc) -> object:
    """JSON-like data -> the same plain data the YAML path gives, within the same limits."""
    doc.enter((0, 0), depth)
    if isinstance(obj, int) and abs(obj) >= MAX_INT:
        return doc.bad(fpath, "number too large", (0, 0))
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    if not isinstance(obj, dict | list | tuple):
        return doc.bad(fpath, f"unsupported value of type {type(obj).__name__}", (0, 0))
    if id(obj) in doc.active:
        doc.error(fpath, "recursive value: it contains itself")
        raise _Abort
    doc.active.add(id(obj))
    try:
        if not isinstance(obj, dict):
            return [_plain(v, (*fpath, i), depth + 1, doc) for i, v in enumerate(obj)]
        out: dict[str, object] = {}
        for key, value in obj.items():
            if isinstance(key, str):
                out[key] = _plain(value, (*fpath, key), depth + 1, doc)
            else:
                doc.error(fpath, f"keys must be strings, got {_kind(key)}")
        return out
    finally:
        doc.active.discard(id(obj))


def _build(root: object, doc: _Doc, known_name: KnownName | None, unknown: Unknown) -> ParsedFile:
    """Plain data -> tasks: batch layout, defaults merge, validation, names and dependencies."""
    if not isinstance(root, dict):
        if root is not _INVALID:
            doc.error((), f"expected a task or batch mapping, got {_kind(root)}")
        raise _Abort
    is_batch = "tasks" in root or "defaults" in root
    defaults, entries = _layout(root, doc) if is_batch else ({}, [((), root)])
    _env_strings(defaults, ("defaults",), doc)
    specs: list[tuple[FieldPath, dict[str, object], TaskSpec]] = []
    for tpath, task in entries:
        _env_strings(task, tpath, doc)
        try:
            specs.append((tpath, task, TaskSpec.model_validate(_merge(defaults, task))))
        except ValidationError as e:
            for err in e.errors(include_url=False):
                _report(doc, err, tpath, task, defaults)
    _check_names(doc, specs, defaults, known_name, unknown)
    if any(not e.warning for e in doc.errors):
        raise _Abort
    return ParsedFile(doc.path, [spec for _, _, spec in specs], is_batch, doc.fail().errors)


def _layout(root: dict[str, object], doc: _Doc) -> tuple[dict[str, object], list[Any]]:
    """A batch file's `defaults`, and each task mapping in `tasks` with its path."""
    for key in root:
        if key not in _BATCH_KEYS:
            doc.error((key,), _unknown(key, _BATCH_KEYS), doc.at((key,), key=True))
    defaults = root.get("defaults", {})
    if not isinstance(defaults, dict):
        if defaults is not _INVALID:
            doc.error(("defaults",), f"expected a mapping, got {_kind(defaults)}")
        defaults = {}
    tasks = root.get("tasks")
    if "tasks" not in root:
        doc.error(("tasks",), "missing required field", doc.at(()))
    elif tasks == []:
        doc.error(("tasks",), "a batch needs at least one task")
    elif not isinstance(tasks, list) and tasks is not _INVALID:
        doc.error(("tasks",), f"expected a list of tasks, got {_kind(tasks)}")
    entries = []
    for i, task in enumerate(tasks if isinstance(tasks, list) else ()):
        if isinstance(task, dict):
            entries.append((("tasks", i), task))
        elif task is not _INVALID:
            doc.error(("tasks", i), f"expected a task mapping, got {_kind(task)}")
    return defaults, entries


def _env_strings(task: dict[str, object], tpath: FieldPath, doc: _Doc) -> None:
    """`DEBUG: 1` means the string "1": numbers and booleans in env become the text written."""
    claude = task.get("claude")
    env = claude.get("env") if isinstance(claude, dict) else None
    for key, value in env.items() if isinstance(env, dict) else ():
        if isinstance(value, int | float):  # bool included
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[key] = doc.raw.get((*tpath, "claude", "env", key), text)  # type: ignore[index]


def _merge(base: object, over: object) -> object:
    """Mappings merge recursively; lists and scalars are replaced; `over` wins."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in over.items()}}


def _origin(
    task: dict[str, object], defaults: dict[str, object], loc: FieldPath, tpath: FieldPath
) -> FieldPath:
    """Where in the file a merged task's field came from: the task or the defaults."""
    t: Any = task
    d: Any = defaults
    for key in loc:
        in_t = isinstance(t, dict) and key in t
        in_d = isinstance(d, dict) and key in d
        if in_d and not in_t:
            return ("defaults", *loc)
        if not (in_t and in_d and isinstance(t[key], dict) and isinstance(d[key], dict)):
            break
        t, d = t[key], d[key]
    return (*tpath, *loc)


def _report(
    doc: _Doc, err: Any, tpath: FieldPath, task: dict[str, object], defaults: dict[str, object]
) -> None:
    """One pydantic error, placed at the key or value it is about (or the mapping lacking it)."""
    loc: FieldPath = tuple(err["loc"])
    if err["type"] == "missing":
        parent = _origin(task, defaults, loc[:-1], tpath)
        doc.error((*parent, loc[-1]), "missing required field", doc.at(parent))
        return
    fpath = _origin(task, defaults, loc, tpath)
    if not any(fpath[:n] in doc.invalid for n in range(len(fpath) + 1)):
        where = doc.at(fpath, key=err["type"] == "extra_forbidden")
        doc.error(fpath, _message(err, loc, doc.hints), where)


_EXPECTED = {
    "string_type": "a string",
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "a whole number"),
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "true or false"),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type"), "a mapping"),
    "list_type": "a list",
}
_BOUNDS = {"greater_than": "greater than", "greater_than_equal": "at least"}
_BOUNDS |= {"less_than": "less than", "less_than_equal": "at most"}


def _message(err: Any, loc: FieldPath, hints: bool) -> str:
    """pydantic's error in our plain words (its own wording and URLs stay out of sight)."""
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown(str(loc[-1]), list(getattr(_annotation(loc[:-1]), "model_fields", ())))
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{_short(value)} is not one of {choices}"
    if kind == "value_error":
        return str(ctx.get("error", "invalid value"))
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"must be {_BOUNDS[kind]} {bound:g}, got {_short(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "finite_number":
        return f"must be a finite number, got {_short(value)}"
    if kind not in _EXPECTED:
        return f"invalid value {_short(value)}"
    expected = _EXPECTED[kind]
    if kind in ("list_type", "dict_type") and get_args(_annotation(loc))[-1:] == (str,):
        expected += " of strings"
    quote = hints and expected == "a string" and isinstance(value, int | float)
    return f"expected {expected}, got {_kind(value)}{'; put it in quotes' if quote else ''}"


def _annotation(loc: FieldPath) -> Any:
    """The type TaskSpec declares at `loc` (a model, `list[str]`...); None past the models."""
    found: Any = TaskSpec
    for key in loc:
        field = getattr(found, "model_fields", {}).get(key) if isinstance(key, str) else None
        found = field.annotation if field is not None else None
    return found


def _unknown(key: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    return f"unknown field; known fields are {', '.join(known)}"


def _check_names(
    doc: _Doc,
    specs: list[tuple[FieldPath, dict[str, object], TaskSpec]],
    defaults: dict[str, object],
    known_name: KnownName | None,
    unknown: Unknown,
) -> None:
    """Names unique in the file; each dependency in the file or known; no cycles."""
    first: dict[str, FieldPath] = {}
    for tpath, task, spec in specs:
        if spec.name in first:
            message = f"duplicate task name {spec.name!r}; {_dotted(first[spec.name])} has it"
            doc.error(_origin(task, defaults, ("name",), tpath), message)
        first.setdefault(spec.name, tpath)
    edges: dict[str, dict[str, FieldPath]] = {}  # task name -> name it depends on -> where written
    for tpath, task, spec in specs:
        for j, dep in enumerate(spec.depends_on):
            fpath = _origin(task, defaults, ("depends_on", j), tpath)
            if dep == spec.name:
                doc.error(fpath, f"task {dep!r} depends on itself")
            elif dep in first:
                edges.setdefault(spec.name, {}).setdefault(dep, fpath)
            elif known_name is None or not known_name(dep):
                where = "this file" + ("" if known_name is None else " or the store")
                message = f"unknown dependency {dep!r}: no task in {where} has that name"
                doc.error(fpath, message, warn=unknown == "warn")
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as e:
        cycle = list(reversed(e.args[1]))  # graphlib lists each dependency before its dependent
        doc.error(edges[cycle[0]][cycle[1]], f"dependency cycle: {' -> '.join(cycle)}")


def _dotted(fpath: FieldPath) -> str:
    out = ""
    for part in fpath:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({_short(value)})"
    kinds = {type(None): "null", str: "a string", list: "a list", dict: "a mapping"}
    return kinds.get(type(value), "an invalid value")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
