"""What the OpenAPI schema needs beyond what Litestar reads from the handlers' signatures: the
body of `POST /api/tasks` is the task-file schema (`claudomator schema`), as JSON or YAML, and
`GET /api/health` needs no token; `OpenAPIJson` serves openapi.json completed so."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin

from claudomator.records import JSONObject
from claudomator.task import json_schema

_PREFIX = "TaskFile"  # component names: TaskFile, TaskFileTaskSpec, ...


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


def complete_openapi(schema: JSONObject) -> JSONObject:
    """A copy of Litestar's `schema` with the task body and the open health route."""
    done = copy.deepcopy(schema)
    done.setdefault("components", {}).setdefault("schemas", {}).update(_task_file_components())
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
