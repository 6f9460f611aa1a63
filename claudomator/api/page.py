"""The web page: `/` and its files under `/ui/`, shipped in the package (`static/`), no build step;
and the API's docs page at `/api/schema` (`DocsPage`: schema.html, which renders the OpenAPI
document itself, so nothing comes from a CDN and it works offline).

They are public (access control lets them through without a token): they hold no data, and the
pages ask for a token before their first API call when the server needs one.
"""

from __future__ import annotations

import os
from importlib.resources import files
from typing import Any

from litestar import MediaType, Request, Response, Router, get
from litestar.openapi.plugins import OpenAPIRenderPlugin
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


def _told(request: Request[Any, Any, Any], html: bytes) -> bytes:
    """A page told whether to ask for the token up front (so no 401 is ever logged)."""
    if request.app.state.auth:
        return html.replace(b'data-auth="off"', b'data-auth="on"', 1)
    return html


@get("/", include_in_schema=False, security=[{}])
async def page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """index.html, told whether to ask for the token."""
    response = _static("index.html")
    response.content = _told(request, response.content)
    return response


@get("/ui/{name:str}", include_in_schema=False, security=[{}])
async def page_file(name: FromPath[str]) -> Response[bytes]:
    return _static(name)


DOCS_PATH = "/api/schema"


class DocsPage(OpenAPIRenderPlugin):
    """`/api/schema`: schema.html, which reads openapi.json and renders it with schema.js."""

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        html = _told(request, STATIC.joinpath("schema.html").read_bytes())
        # its links are relative to /api/schema; asked as /api/schema/, they are one more level up
        asked = request.scope.get("raw_path") or request.url.path.encode()  # Litestar strips a /
        up = "../" * max(1, asked.count(b"/") - 1)
        return html.replace(b'"../', f'"{up}'.encode())


def docs_router() -> Router:
    """The router of the schema's routes (the docs page and openapi.json), with the page's
    headers."""
    return Router(DOCS_PATH, route_handlers=[], include_in_schema=False, response_headers=HEADERS)


PAGE_ROUTES = [page, page_file]
PAGE_PATHS = frozenset({"/", "/ui/{name:str}", DOCS_PATH})

__all__ = ["DOCS_PATH", "PAGE_PATHS", "PAGE_ROUTES", "DocsPage", "docs_router"]
