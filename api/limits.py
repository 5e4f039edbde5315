"""A route class that refuses request bodies over a size limit before anything parses them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _too_large(size: int | str, limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"body is {size} bytes; the limit is {limit} (max_config_request_bytes)"},
        status_code=413,
    )


class ConfigBodyRoute(APIRoute):
    """Bodies of configuration resources (rules, subscriptions, silences) are small: a body
    over ``settings.max_config_request_bytes`` gets 413, and is never read past the limit."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            limit: int = request.app.state.settings.max_config_request_bytes
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return _too_large(declared, limit)
            if request.method in ("POST", "PUT", "PATCH"):
                body = bytearray()
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        return _too_large(f"over {limit}", limit)
                request._body = bytes(body)  # what Request.body() returns from now on
            return await handler(request)

        return limited
