"""The web page: `/` and its files under `/ui/`, shipped in the package (`static/`), no build step.

They are public (access control lets them through without a token): they hold no data, and the
page asks for a token before its first API call when the server needs one.
"""

from __future__ import annotations

import os
from importlib.resources import files
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.params import FromPath

from claudomator.errors import NotFoundError

STATIC = files("claudomator.api").joinpath("static")
TYPES = {".html": MediaType.HTML, ".js": "text/javascript", ".css": "text/css"}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


def _static(name: str) -> Response[bytes]:
    suffix = os.path.splitext(name)[1]
    entry = STATIC.joinpath(name)
    if suffix not in TYPES or "/" in name or name.startswith(".") or not entry.is_file():
        raise NotFoundError(f"no file {name!r}")
    return Response(entry.read_bytes(), media_type=TYPES[suffix], headers=HEADERS)


@get("/", include_in_schema=False, security=[{}])
async def page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """index.html, told whether to ask for the token up front (so no 401 is ever logged)."""
    response = _static("index.html")
    if request.app.state.auth:
        response.content = response.content.replace(b'data-auth="off"', b'data-auth="on"', 1)
    return response


@get("/ui/{name:str}", include_in_schema=False, security=[{}])
async def page_file(name: FromPath[str]) -> Response[bytes]:
    return _static(name)


PAGE_ROUTES = [page, page_file]
PAGE_PATHS = frozenset({"/", "/ui/{name:str}"})

__all__ = ["PAGE_PATHS", "PAGE_ROUTES"]
