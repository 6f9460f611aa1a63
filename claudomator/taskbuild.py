"""Plain data (from YAML or JSON) -> the tasks a file asks for: the batch layout, `defaults`
merged into each task, validation by `TaskSpec` with pydantic's errors in our words, placed at
the key or value they are about, then names and dependencies. Pure."""

from __future__ import annotations

import difflib
import graphlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from claudomator.errors import FieldError
from claudomator.task import TaskSpec, ValidationError
from claudomator.taskdoc import INVALID, Abort, Doc, FieldPath, describe, dotted, short

BATCH_KEYS = ("budget_usd", "defaults", "tasks")

KnownName = Callable[[str], bool]
Unknown = Literal["warn", "error"]


@dataclass(frozen=True)
class ParsedFile:
    """What one task file (one task) or batch file (many) asks for."""

    path: str  # as given, shown in messages
    tasks: list[TaskSpec]  # defaults already merged
    is_batch: bool
    warnings: list[FieldError]  # FieldError(warning=True, ...)
    budget_usd: float | None = None  # a batch's `budget_usd`: its tasks' executions together


def build(root: object, doc: Doc, known_name: KnownName | None, unknown: Unknown) -> ParsedFile:
    """Plain data -> tasks: batch layout, defaults merge, validation, names and dependencies."""
    if not isinstance(root, dict):
        if root is not INVALID:
            doc.error((), f"expected a task or batch mapping, got {describe(root)}")
        raise Abort
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
        raise Abort
    budget = _budget(root, doc) if is_batch else None
    if any(not e.warning for e in doc.errors):
        raise Abort
    return ParsedFile(doc.path, [spec for _, _, spec in specs], is_batch, doc.fail().errors, budget)


def _budget(root: dict[str, object], doc: Doc) -> float | None:
    """A batch's `budget_usd`: a number > 0 (not a boolean, not a string), or none."""
    value = root.get("budget_usd")
    if value is None or value is INVALID:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        doc.error(("budget_usd",), f"expected a number of dollars > 0, got {describe(value)}")
        return None
    return float(value)


def _layout(root: dict[str, object], doc: Doc) -> tuple[dict[str, object], list[Any]]:
    """A batch file's `defaults`, and each task mapping in `tasks` with its path."""
    for key in root:
        if key not in BATCH_KEYS:
            doc.error((key,), _unknown(key, BATCH_KEYS), doc.at((key,), key=True))
    defaults = root.get("defaults", {})
    if not isinstance(defaults, dict):
        if defaults is not INVALID:
            doc.error(("defaults",), f"expected a mapping, got {describe(defaults)}")
        defaults = {}
    tasks = root.get("tasks")
    if "tasks" not in root:
        doc.error(("tasks",), "missing required field", doc.at(()))
    elif tasks == []:
        doc.error(("tasks",), "a batch needs at least one task")
    elif not isinstance(tasks, list) and tasks is not INVALID:
        doc.error(("tasks",), f"expected a list of tasks, got {describe(tasks)}")
    entries = []
    for i, task in enumerate(tasks if isinstance(tasks, list) else ()):
        if isinstance(task, dict):
            entries.append((("tasks", i), task))
        elif task is not INVALID:
            doc.error(("tasks", i), f"expected a task mapping, got {describe(task)}")
    return defaults, entries


def _env_strings(task: dict[str, object], tpath: FieldPath, doc: Doc) -> None:
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
    doc: Doc, err: Any, tpath: FieldPath, task: dict[str, object], defaults: dict[str, object]
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
        return f"{short(value)} is not one of {choices}"
    if kind == "value_error":
        return str(ctx.get("error", "invalid value"))
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"must be {_BOUNDS[kind]} {bound:g}, got {short(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "finite_number":
        return f"must be a finite number, got {short(value)}"
    if kind not in _EXPECTED:
        return f"invalid value {short(value)}"
    expected = _EXPECTED[kind]
    if kind in ("list_type", "dict_type") and get_args(_annotation(loc))[-1:] == (str,):
        expected += " of strings"
    quote = hints and expected == "a string" and isinstance(value, int | float)
    return f"expected {expected}, got {describe(value)}{'; put it in quotes' if quote else ''}"


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
    doc: Doc,
    specs: list[tuple[FieldPath, dict[str, object], TaskSpec]],
    defaults: dict[str, object],
    known_name: KnownName | None,
    unknown: Unknown,
) -> None:
    """Names unique in the file; each dependency in the file or known; no cycles."""
    first: dict[str, FieldPath] = {}
    for tpath, task, spec in specs:
        if spec.name in first:
            message = f"duplicate task name {spec.name!r}; {dotted(first[spec.name])} has it"
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
