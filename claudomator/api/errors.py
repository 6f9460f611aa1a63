"""The API's one error shape and its one map from exceptions to status codes.

    {"error": {"code": "not_found", "message": "no task with id 'x'", "details": []}}

Every answer that is not a success has it: Litestar's own (bad parameters, 404 routes, 405, 413
with the limit), the WebSocket's path without the upgrade (426),
claudomator's errors (404, 409, 422 with every field error), access control's (400, 401, 403)
and anything unexpected (500, logged, never with its text).
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap

from claudomator.api.shapes import ErrorBody
from claudomator.errors import (
    ClaudomatorError,
    NotFoundError,
    StoreError,
    TaskFileError,
    TransitionError,
)

log = structlog.get_logger("claudomator.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_task",
    426: "upgrade_required",
    500: "internal",
    503: "unavailable",
}
ERRORS: tuple[tuple[type[ClaudomatorError], int], ...] = (  # first match wins
    (NotFoundError, 404),
    (TransitionError, 409),
    (TaskFileError, 422),
    (StoreError, 503),
    (ClaudomatorError, 400),
)
ERROR_RESPONSES = {
    status: ResponseSpec(
        data_container=ErrorBody, description=CODES[status], generate_examples=False
    )
    for status in (400, 401, 403, 404, 409, 415, 422)
}


def error_body(code: str, message: str, details: list[Any] | None = None) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "details": details or []}}
    ).encode()


def error(
    status: int, message: str, details: list[Any] | None = None, **headers: str
) -> Response[bytes]:
    return Response(
        error_body(CODES.get(status, "error"), message, details),
        status_code=status,
        headers=headers or None,
        media_type=MediaType.JSON,
    )


def on_claudomator_error(request: Request[Any, Any, Any], exc: ClaudomatorError) -> Response[bytes]:
    status = next(code for kind, code in ERRORS if isinstance(exc, kind))
    if isinstance(exc, TaskFileError):
        details = [
            {
                "field": e.field,
                "message": e.message,
                "line": e.line or None,
                "column": e.column or None,
            }
            for e in exc.errors
        ]
        first = exc.errors[0] if exc.errors else None
        message = "the task is invalid" + (
            f": {first.field + ': ' if first.field else ''}{first.message}" if first else ""
        )
        if len(exc.errors) > 1:
            message += f" (and {len(exc.errors) - 1} more)"
        return error(status, message, details)
    return error(status, exc.message)


# query parameters whose Python name differs (`state` is a name Litestar reserves)
ALIASES = {"task_state": "state", "stream_name": "stream", "log_format": "format"}


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    details = []
    if isinstance(exc.extra, list):  # validation of parameters: [{"key", "message", "source"}]
        for item in exc.extra:
            if isinstance(item, dict):
                key = str(item.get("key"))
                details.append({"field": ALIASES.get(key, key), "message": item.get("message")})
    message = exc.detail if exc.status_code != 500 else "internal error"
    if exc.status_code == 413 and (limit := request.route_handler.resolve_request_max_body_size()):
        message = f"the body is larger than the limit of {limit} bytes (intake.max_file_bytes)"
    return error(exc.status_code, message, details, **(exc.headers or {}))


def on_any_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("api.error", path=request.url.path, error=repr(exc), exc_info=exc)
    return error(500, "internal error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ClaudomatorError: on_claudomator_error,
    HTTPException: on_http_error,
    Exception: on_any_error,
}
