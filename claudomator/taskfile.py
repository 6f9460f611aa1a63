"""Task and batch files: YAML text -> validated `TaskSpec`s, with errors that name file, line and
field. The only module that imports yaml: the YAML is composed (never constructed), so no tag can
run code and every value keeps its position; we turn the nodes into plain data ourselves, within
limits on size, values and depth, and record where each field path came from (`taskdoc`). JSON-like
data (the API) becomes the same plain data; `taskbuild` makes the tasks of either."""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Callable
from typing import Any

import yaml

from claudomator.errors import FieldError, TaskFileError
from claudomator.taskbuild import KnownName, ParsedFile, Unknown, build
from claudomator.taskdoc import (
    INVALID,
    MAX_DEPTH,
    MAX_INT,
    MAX_NODES,
    Abort,
    Doc,
    FieldPath,
    Where,
    describe,
    short,
)

__all__ = ["MAX_DEPTH", "MAX_INT", "MAX_NODES", "ParsedFile", "parse_bytes", "parse_file"]
__all__ += ["parse_object"]

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


def parse_bytes(
    data: bytes,
    path: str,
    *,
    known_name: KnownName | None = None,
    unknown_dependency: Unknown = "error",
    max_bytes: int = 1 << 20,
) -> ParsedFile:
    """Parse a task or batch file's bytes; TaskFileError lists every error found."""
    doc = Doc(path, hints=True)
    try:
        if len(data) > max_bytes:
            doc.error((), _too_big(len(data), max_bytes))
            raise Abort
        return build(_compose(_decode(data, doc), doc), doc, known_name, unknown_dependency)
    except Abort:
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
    doc = Doc(path, hints=False)
    try:
        return build(_plain(data, (), 0, doc), doc, known_name, unknown_dependency)
    except Abort:
        raise doc.fail() from None


def _too_big(size: int, limit: int) -> str:
    return f"file is too large: {size} bytes, the limit is {limit} bytes"


def _line_col(text: str, index: int) -> Where:
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _decode(data: bytes, doc: Doc) -> str:
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        head = data[start : start + e.start].decode("utf-8")
        offset = start + e.start
        message = f"not UTF-8: byte {data[offset]:#04x} at offset {offset}; save it as UTF-8"
        doc.error((), message, _line_col(head, len(head)))
        raise Abort from None


def _compose(text: str, doc: Doc) -> object:
    """The single document's node tree, converted; YAML errors carry YAML's own position."""
    try:
        loader = _LOADER(text)  # the pure-Python reader checks characters here
        try:
            if not loader.check_node():
                doc.error((), "the file is empty", (1, 1))
                raise Abort
            node = loader.get_node()
            if loader.check_node():
                mark = loader.peek_event().start_mark
                message = "a second YAML document (---); put many tasks in one batch file"
                doc.error((), message, (mark.line + 1, mark.column + 1))
                raise Abort
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
    raise Abort


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_T) if tag.startswith(_T) else tag


def _value(node: yaml.Node, fpath: FieldPath, depth: int, doc: Doc) -> object:
    """Node -> plain data. Aliases share nodes, so alias bombs cost time only here: counted."""
    where = node.start_mark.line + 1, node.start_mark.column + 1
    doc.enter(where, depth)
    doc.values[fpath] = where
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, fpath, where, doc)
    if id(node) in doc.active:
        doc.error(fpath, "recursive alias: the value contains itself", where)
        raise Abort
    if node.tag != (_SEQ if isinstance(node, yaml.SequenceNode) else _MAP):
        return doc.bad(fpath, f"tag {_tag(node.tag)} is not allowed", where)
    doc.active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_value(n, (*fpath, i), depth + 1, doc) for i, n in enumerate(node.value)]
        return _mapping(node, fpath, depth, doc)
    finally:
        doc.active.discard(id(node))


def _scalar(node: yaml.ScalarNode, fpath: FieldPath, where: Where, doc: Doc) -> object:
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
        return doc.bad(fpath, f"{short(text)} is not a valid {_tag(tag)}", where)
    if isinstance(value, int) and abs(value) >= MAX_INT:
        return doc.bad(fpath, "number too large", where)
    if len(fpath) > 1 and fpath[-2] == "env":
        doc.raw[fpath] = text
    return value


def _mapping(node: yaml.Node, fpath: FieldPath, depth: int, doc: Doc) -> dict[str, object]:
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
        elif merged is not INVALID:
            doc.error(fpath, "'<<' merges a mapping or a list of mappings", doc.values[fpath])
    seen: dict[str, Where] = {}
    for key, value in node.value:
        where, kpath = (key.start_mark.line + 1, key.start_mark.column + 1), (*fpath, key.value)
        if key.tag == _MERGE:
            continue
        if not isinstance(key, yaml.ScalarNode) or key.tag not in (_STR, _STAMP):
            kind = _TAG_KIND.get(key.tag) if isinstance(key, yaml.ScalarNode) else None
            how = f": {short(key.value)} is read as {kind}; put it in quotes" if kind else ""
            doc.error(fpath, f"keys must be strings{how}", where)
        elif key.value in seen:
            doc.error(kpath, f"duplicate key (first on line {seen[key.value][0]})", where)
        else:
            seen[key.value] = doc.keys[kpath] = where
            out[key.value] = _value(value, kpath, depth + 1, doc)
    doc.values[fpath] = node.start_mark.line + 1, node.start_mark.column + 1  # merges moved it
    return out


def _plain(obj: object, fpath: FieldPath, depth: int, doc: Doc) -> object:
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
        raise Abort
    doc.active.add(id(obj))
    try:
        if not isinstance(obj, dict):
            return [_plain(v, (*fpath, i), depth + 1, doc) for i, v in enumerate(obj)]
        out: dict[str, object] = {}
        for key, value in obj.items():
            if isinstance(key, str):
                out[key] = _plain(value, (*fpath, key), depth + 1, doc)
            else:
                doc.error(fpath, f"keys must be strings, got {describe(key)}")
        return out
    finally:
        doc.active.discard(id(obj))
