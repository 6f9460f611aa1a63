"""What a handler finds on the app: the service it answers for (`create_app` puts it in the
app's state), and the request type every handler takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request

if TYPE_CHECKING:
    from claudomator.service import Claudomator

Req = Request[Any, Any, Any]


def service_of(request: Req) -> Claudomator:
    service: Claudomator = request.app.state.service
    return service


__all__ = ["Req", "service_of"]
