"""What the OpenAPI schema needs beyond what Litestar reads from the handlers' signatures: the
body of `POST /api/tasks` is the task-file schema (`claudomator schema`), as JSON or YAML; an
execution's `workspace` (a JSON object in its record) has the shape of the workspace's record
(`shapes.Workspace`), its `verify` that of `shapes.Verify` and each of its `permission_denials`
that of `shapes.PermissionDenial`; and `GET /api/health` needs no token. `OpenAPIJson` serves
openapi.json completed so."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin

from claudomator.api.shapes import PermissionDenial, Verify, Workspace
from claudomator.records import JSONObject
from claudomator.task import json_schema

_PREFIX = "TaskFile"  # component names: TaskFile, TaskFileTaskSpec, ...
_WORKSPACE = "Workspace"  # the component of an execution's workspace
_TEMPLATE = "#/components/schemas/{name}"
_SAID = {  # what an execution's fields mean, where the record's type cannot say it
    "round": "its verify round: 0 for an attempt's first execution, then 1, 2, ... for each "
    "resumption after a verify command failed",
    "resumed_from": "the execution whose claude session it resumed (a verify round, or a retry); "
    "null: a fresh session",
}


@functools.cache
def _task_file_components() -> JSONObject:
    schema = json_schema()
    defs = schema.pop("$defs")
    schema.pop("$schema", None)
    text = json.dumps({_PREFIX: schema, **{_PREFIX + k: v for k, v in defs.items()}})
    for name in defs:
        text = text.replace(f'"#/$defs/{name}"', f'"#/components/schemas/{_PREFIX}{name}"')
    components: JSONObject = json.loads(text)
    return components


@functools.cache
def _workspace_component() -> JSONObject:
    _, found = msgspec.json.schema_components([Workspace], ref_template=_TEMPLATE)
    component: JSONObject = found[Workspace.__name__]
    component["title"] = _WORKSPACE
    return component


@functools.cache
def _check_components() -> JSONObject:
    """Verify (and the VerifyCommand it refers to) and PermissionDenial."""
    _, found = msgspec.json.schema_components([Verify, PermissionDenial], ref_template=_TEMPLATE)
    for component in found.values():
        if component.get("required") == []:
            del component["required"]
    return dict(found)


def _ref(name: str) -> JSONObject:
    return {"$ref": _TEMPLATE.format(name=name)}


def complete_openapi(schema: JSONObject) -> JSONObject:
    """A copy of Litestar's `schema` with the task body, the execution's workspace, verify and
    permission denials, and the open health route."""
    done = copy.deepcopy(schema)
    components = done.setdefault("components", {}).setdefault("schemas", {})
    components.update(_task_file_components())
    execution = components.get("Execution", {}).get("properties", {})
    if "workspace" in execution:
        components[_WORKSPACE] = copy.deepcopy(_workspace_component())
        execution["workspace"] = {
            "oneOf": [_ref(_WORKSPACE), {"type": "null"}],
            "description": "where it ran; null when none was recorded (while it runs, or when it "
            "ended before its workspace was concluded)",
        }
    for key, description in _SAID.items():
        if key in execution:
            execution[key]["description"] = description
    if "verify" in execution or "permission_denials" in execution:
        components.update(copy.deepcopy(_check_components()))
    if "verify" in execution:
        execution["verify"] = {
            "oneOf": [_ref(Verify.__name__), {"type": "null"}],
            "description": "what its verify commands said; null when none ran (the task has no "
            "verify, or claude did not succeed)",
        }
    if "permission_denials" in execution:
        execution["permission_denials"] = {
            "type": "array",
            "items": _ref(PermissionDenial.__name__),
            "description": "the tool uses claude was not allowed, as claude reported them",
        }
    paths = done.get("paths", {})
    create = paths.get("/api/tasks", {}).get("post")
    if create is not None:
        body = {"schema": {"$ref": f"#/components/schemas/{_PREFIX}"}}
        create["requestBody"] = {
            "required": True,
            "description": "a task or a batch (tasks: [...]), as in a task file",
            "content": {"application/json": body, "application/yaml": body},
        }
    health = paths.get("/api/health", {}).get("get")
    if health is not None:
        health["security"] = []
    return done


class OpenAPIJson(JsonRenderPlugin):
    """openapi.json with what Litestar cannot say from a handler's signature (the task body)."""

    _done: tuple[JSONObject, bytes] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: JSONObject) -> bytes:
        if self._done is None or self._done[0] is not openapi_schema:  # Litestar caches it
            text = self.render_json(request, complete_openapi(openapi_schema))
            self._done = (openapi_schema, text)
        return self._done[1]


__all__ = ["OpenAPIJson", "complete_openapi"]
