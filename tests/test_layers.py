"""The house rules that keep the package layered, checked by reading its imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "claudomator"

# 3 entry, 2 orchestration, 1 adapters (one external system each), 0 pure. A module imports only
# modules of its own layer or below, and no import cycle exists, not even a TYPE_CHECKING one.
LAYER = {
    **dict.fromkeys(["cli", "cli.__main__", "cli.commands", "cli.render", "serve"], 3),
    **dict.fromkeys(["cli.context", "cli.workspaces", "cli.doctor"], 3),
    **dict.fromkeys(["cli.demo", "cli.terminal"], 3),
    **dict.fromkeys(["api", "api.access", "api.app", "api.cache", "api.context", "api.errors"], 3),
    **dict.fromkeys(["api.executions", "api.logs", "api.masking", "api.openapi", "api.page"], 3),
    **dict.fromkeys(["api.pool", "api.server", "api.shapes", "api.status", "api.tasks"], 3),
    **dict.fromkeys(["api.diffs", "api.ws", "api.ws_feed"], 3),
    **dict.fromkeys(["service", "run", "recovery", "lifecycle", "node", "intake", "ingest"], 2),
    **dict.fromkeys(["pool", "dependents", "gate", "publisher", "faults", "views"], 2),
    **dict.fromkeys(["workspaces", "inventory", "rounds", "checks", "progress", "doctor"], 2),
    **dict.fromkeys(["finish"], 2),
    **dict.fromkeys(["store", "store.database", "store.db", "store.dependencies"], 1),
    **dict.fromkeys(["store.events", "store.executions", "store.files", "store.nodes"], 1),
    **dict.fromkeys(["store.pool_state", "store.reader", "store.relay", "store.rows"], 1),
    **dict.fromkeys(
        ["store.schema", "store.sources", "store.sql", "store.tasks", "store.spend"], 1
    ),
    **dict.fromkeys(["store.rounds", "store.figures"], 1),
    **dict.fromkeys(["demo"], 2),
    **dict.fromkeys(["claude_standin"], 0),  # a program `claudomator demo` runs, stdlib only
    **dict.fromkeys(["sources", "sources.git", "sources.gitapply", "sources.gitcmd"], 1),
    **dict.fromkeys(["sources.gitfetch", "sources.gitpass", "sources.gitreport"], 1),
    **dict.fromkeys(["sources.inbox", "sources.links", "sources.watch"], 1),
    **dict.fromkeys(["runner", "proctree", "logfiles", "spool", "mirror", "events"], 1),
    **dict.fromkeys(["log", "lock", "notify", "metrics", "worktree", "shell"], 1),
    **dict.fromkeys(["errors", "state", "task", "taskfile", "taskdoc", "taskbuild"], 0),
    **dict.fromkeys(["config", "config_keys", "config_values", "config_notify"], 0),
    **dict.fromkeys(["config_sources", "datadir", "schedule", "duration", "ids", "secret"], 0),
    **dict.fromkeys(["failpoint", "token", "stream", "streamjson", "outcome", "transcript"], 0),
    **dict.fromkeys(["command", "workdir", "sources.gitplan", "records", "stored", "workspace"], 0),
    **dict.fromkeys(["resume", "verification", "watchdog", "billing", "diagnosis", "budget"], 0),
    **dict.fromkeys(["limits"], 0),
}
# third-party library -> the modules (or packages) that own it; structlog is everyone's
OWNERS: dict[str, str | tuple[str, ...]] = {
    "yaml": "taskfile",
    "pydantic": ("task", "workspace"),  # the task file's models
    "sqlmodel": "store",
    "sqlalchemy": "store",
    "psycopg": "store",
    "watchfiles": "sources.watch",
    "litestar": "api",
    "uvicorn": "api.server",
    "msgspec": "api",
    "prometheus_client": "metrics",
    "httpx": "notify",
    "click": "cli",
    "psutil": "proctree",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if module_name(p)}


def imports(path: Path) -> tuple[set[str], set[str]]:
    """The package's modules and the third-party roots `path` imports (TYPE_CHECKING too)."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s.removeprefix("claudomator.") in MODULES] or [node.module]
        else:
            continue
        for name in names:
            if name.startswith("claudomator."):
                ours.add(name.removeprefix("claudomator."))
            elif name.split(".")[0] not in sys.stdlib_module_names | {"__future__", "claudomator"}:
                theirs.add(name.split(".")[0])
    return ours, theirs


GRAPH = {name: imports(path)[0] - {name} for name, path in MODULES.items()}


def owns(module: str, owners: str | tuple[str, ...]) -> bool:
    return any(
        module == o or module.startswith(o + ".")
        for o in (owners if isinstance(owners, tuple) else (owners,))
    )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_layers_and_libraries_have_one_owner(name: str) -> None:
    assert name in LAYER, f"{name} has no layer: add it to LAYER"
    ours, theirs = imports(MODULES[name])
    for dep in sorted(ours - {name}):
        assert dep in LAYER, f"{name} imports {dep}, which has no layer"
        assert LAYER[dep] <= LAYER[name], (
            f"{name} (layer {LAYER[name]}) imports {dep} ({LAYER[dep]})"
        )
    for lib in sorted(theirs):
        if lib != "structlog":
            assert lib in OWNERS, f"{name} imports {lib}, which has no owner: add it to OWNERS"
            assert owns(name, OWNERS[lib]), f"{name} imports {lib}, owned by {OWNERS[lib]}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`: its strongly connected components of more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, deps = work[-1]
            for dep in deps:
                if dep not in graph:
                    continue
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    work.append((dep, iter(sorted(graph[dep]))))
                    break
                if dep in stack:
                    low[node] = min(low[node], index[dep])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while (member := stack.pop()) != node:
                        component.append(member)
                    if component:
                        found.append(sorted([node, *component]))
    return found


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b", "x"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
        ({"a": {"a"}}, []),
    ],
)
def test_cycles_are_found(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert sorted(cycles(graph)) == expected


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_structlog_is_configured_in_one_place() -> None:
    configuring = [p.name for p in MODULES.values() if "structlog.configure(" in p.read_text()]
    assert configuring == ["log.py"]


FAST = """
import sys
from claudomator.cli import main
sys.argv = ["claudomator", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
heavy = sorted(m for m in ("sqlalchemy", "sqlmodel", "structlog", "pydantic", "yaml", "litestar", "psutil") if m in sys.modules)
print("HEAVY", heavy)
"""


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["list"], ["list", "--json"]])
def test_read_commands_stay_light(home: Path, args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", FAST, *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"
