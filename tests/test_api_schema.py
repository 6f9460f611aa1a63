"""Schemathesis against the app's own OpenAPI schema, on a real server on 127.0.0.1 (auth on, a
full token): generated requests for every operation, and no answer is a 5xx, nor strays from
the documented content types and shapes. Bounded: `EXAMPLES` per operation, well under a minute.

(Schemathesis' lazy pytest loader does not run under pytest 9, so each operation's strategy is
driven with hypothesis here.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from claudomator.api.app import routes
from claudomator.state import FINAL_STATES
from claudomator.token import ensure_token
from tests.apiserver import LiveServer
from tests.poll import wait_for
from tests.taskfiles import checked_task
from tests.test_api_diff import changed_branch, diff_of, end_with_workspace

EXAMPLES = 60

Operation = APIOperation[Any, Any, Any, Any]


def operations(schema: schemathesis.BaseSchema) -> list[Operation]:
    """Every operation `schema` documents (one it cannot read fails, saying why)."""
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    home: Path = tmp_path_factory.mktemp("schema") / "data"
    home.mkdir()
    token = ensure_token(home)
    # no pool: generated tasks are recorded and stay queued; nothing is spawned
    with LiveServer(home, flags={"server.auth": True}, pool=False) as server:
        yield server, token


@pytest.fixture(scope="module")
def api_schema(live: tuple[LiveServer, str]) -> schemathesis.BaseSchema:
    server, token = live
    return schemathesis.openapi.from_url(
        server.url + "/api/schema/openapi.json",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_the_schema_covers_every_route(
    api_schema: schemathesis.BaseSchema, live: tuple[LiveServer, str]
) -> None:
    api = live[0].api
    assert api is not None
    documented = {
        (operation.method.upper(), operation.path) for operation in operations(api_schema)
    }
    served = {
        (m, re.sub(r"\{(\w+):\w+\}", r"{\1}", p))
        for m, p in routes(api.app)
        if p != "/api/ws" and not p.startswith("/api/schema")  # the WebSocket, the schema's own
    }
    assert documented == served, (documented - served, served - documented)


def test_an_execution_with_a_worktree_answers_as_documented(
    api_schema: schemathesis.BaseSchema,
    live: tuple[LiveServer, str],
    tmp_path: Path,
) -> None:
    """The answers generated requests never reach: an execution with its workspace (in the
    execution and in its task) and its diff, checked against the schema."""
    server, token = live
    auth = {"Authorization": f"Bearer {token}"}
    body = {"name": "worktree", "claude": {"instructions": "x"}}
    assert httpx.post(f"{server.url}/api/tasks?run=true", json=body, headers=auth).is_success
    service = server.service
    assert service is not None
    executions = service.config.data_dir.executions
    done = server.call(
        lambda: end_with_workspace(
            service.store,
            executions,
            lambda eid: changed_branch(tmp_path, diff_of(executions, eid)),
        )
    )
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    asked = [
        ("/api/executions/{execution_id}", {"execution_id": done.execution_id}),
        ("/api/executions/{execution_id}/diff", {"execution_id": done.execution_id}),
        ("/api/tasks/{task_id}", {"task_id": done.task_id}),
    ]
    for path, parameters in asked:
        case = api_schema[path]["GET"].Case(path_parameters=parameters)
        response = case.call(base_url=server.url, headers=auth, timeout=10)
        assert response.status_code == 200, (path, response.text)
        case.validate_response(response, checks=checks)
    shown = httpx.get(f"{server.url}/api/executions/{done.execution_id}", headers=auth).json()
    assert shown["workspace"]["branch"] and shown["workspace"]["diff_path"]


@pytest.mark.timeout(60)
def test_an_execution_with_verify_rounds_and_denials_answers_as_documented(
    tmp_path: Path, fake_claude: Path
) -> None:
    """A real run (the pool, the fake claude): a verify round, a denied write in each; the
    execution and its task checked against the schema's Verify and PermissionDenial."""
    home = tmp_path / "data"
    home.mkdir()
    token = ensure_token(home)
    work = tmp_path / "work"
    work.mkdir()
    auth = {"Authorization": f"Bearer {token}"}
    with LiveServer(home, flags={"server.auth": True, "claude.binary": str(fake_claude)}) as server:
        body = checked_task("checked", tmp_path / "sessions", claude={"working_dir": str(work)})
        made = httpx.post(f"{server.url}/api/tasks?run=true", json=body, headers=auth).json()

        def ended() -> dict[str, Any] | None:
            task = httpx.get(f"{server.url}/api/tasks/{made['id']}", headers=auth).json()
            return task if task["state"] in FINAL_STATES else None

        task = wait_for(ended, 30)
        assert task["state"] == "COMPLETED", task["reason"]
        schema = schemathesis.openapi.from_url(
            server.url + "/api/schema/openapi.json", headers=auth
        )
        checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
        asked = [("/api/tasks/{task_id}", {"task_id": made["id"]})] + [
            ("/api/executions/{execution_id}", {"execution_id": ex["id"]})
            for ex in task["executions"]
        ]
        for path, parameters in asked:
            case = schema[path]["GET"].Case(path_parameters=parameters)
            response = case.call(base_url=server.url, headers=auth, timeout=10)
            assert response.status_code == 200, (path, response.text)
            case.validate_response(response, checks=checks)
    assert sorted(ex["round"] for ex in task["executions"]) == [0, 1]
    assert all(ex["verify"] and ex["permission_denials"] for ex in task["executions"])


@pytest.mark.timeout(60)
def test_no_server_errors(
    api_schema: schemathesis.BaseSchema, live: tuple[LiveServer, str]
) -> None:
    server, token = live
    auth = {"Authorization": f"Bearer {token}"}
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    seen: list[str] = []
    for operation in operations(api_schema):
        calls = 0

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Operation]) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=server.url, headers=auth, timeout=10)
            case.validate_response(response, checks=checks)

        check()
        assert calls > 0, operation.label
        seen.append(operation.label)
    assert len(seen) >= 13
