"""The house rules that keep the package layered, checked by reading its imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "claudomator"

LAYER = {
    "cli": 3, "api": 3, "serve": 3,
    "service": 2, "pool": 2, "intake": 2, "node": 2, "recovery": 2,
    "run": 2, "lifecycle": 2, "dependents": 2, "gate": 2, "publisher": 2, "faults": 2,
    "views": 2,
    "store": 1, "runner": 1, "spool": 1, "sources": 1, "events": 1, "log": 1, "lock": 1,
    "notify": 1, "metrics": 1, "mirror": 1,
    "errors": 0, "state": 0, "task": 0, "taskfile": 0, "config": 0, "stream": 0,
    "schedule": 0, "duration": 0, "ids": 0, "secret": 0, "failpoint": 0, "token": 0,
    "config_keys": 0, "config_values": 0, "config_notify": 0, "config_sources": 0, "datadir": 0,
    "proctree": 1, "logfiles": 1,
    "streamjson": 0, "outcome": 0, "transcript": 0, "command": 0, "workdir": 0,
    "taskdoc": 0, "taskbuild": 0,
}  # fmt: skip
# third-party library -> the only modules that may import it
OWNERS = {
    "yaml": {"taskfile"},
    "sqlmodel": {"store"},
    "sqlalchemy": {"store"},
    "psycopg": {"store"},
    "watchfiles": {"sources"},
    "litestar": {"api"},
    "uvicorn": {"api"},
    "msgspec": {"api"},
    "prometheus_client": {"metrics"},
    "httpx": {"notify"},
    "click": {"cli"},
    "pydantic": {"task"},
    "psutil": {"proctree"},
}


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        top = rel.parts[0]
        if top != "__init__":
            out.append((top, path))
    return out


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(("top", "path"), modules(), ids=lambda v: str(v))
def test_imports_go_down_the_layers_and_libraries_have_one_owner(top: str, path: Path) -> None:
    assert top in LAYER, f"{top} has no layer: add it to LAYER"
    for name in imports(path):
        root = name.split(".")[0]
        if root == "claudomator" and name.count("."):
            dep = name.split(".")[1]
            if dep != top:
                assert LAYER[dep] <= LAYER[top], (
                    f"{top} (layer {LAYER[top]}) imports {dep} ({LAYER[dep]})"
                )
                if LAYER[top] == 0:
                    assert LAYER[dep] == 0
        elif root in OWNERS:
            assert top in OWNERS[root], f"{path.name} imports {root}, owned by {OWNERS[root]}"


def test_structlog_is_configured_in_one_place() -> None:
    configuring = [p.name for _, p in modules() if "structlog.configure(" in p.read_text()]
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
