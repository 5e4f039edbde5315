"""Route classes for request bodies: strict JSON, and a size limit for configuration bodies.

Starlette's ``request.json()`` is Python's ``json.loads``, which takes ``NaN``, ``Infinity``,
``1e999`` (as inf) and lone surrogates (``"\\ud800"``, which no store can encode): values that
then break a write or every later read of what was stored. ``orjson`` refuses all of them, and
invalid UTF-8 too, with a ``JSONDecodeError`` that FastAPI answers as a standard 422.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.schemas import Responses, error

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
TOO_LARGE: Responses = {413: error("body over DRIFTLINE_MAX_CONFIG_REQUEST_BYTES")}


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """Request bodies are parsed by orjson: only finite numbers and valid Unicode get in."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            strict_request = StrictJSONRequest(request.scope, request.receive)
            if hasattr(request, "_body"):  # already read (ConfigBodyRoute): keep it
                strict_request._body = request._body
            return await handler(strict_request)

        return strict


def _too_large(size: int | str, limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"body is {size} bytes; the limit is {limit} (max_config_request_bytes)"},
        status_code=413,
    )


class ConfigBodyRoute(StrictJSONRoute):
    """Bodies of configuration resources (rules, subscriptions, silences) are small: a body
    over ``settings.max_config_request_bytes`` gets 413, and is never read past the limit."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: set[str] | list[str] | None = None,
        responses: Responses | None = None,
        **kwargs: Any,
    ) -> None:
        if BODY_METHODS & {m.upper() for m in methods or ()}:
            responses = {**TOO_LARGE, **(responses or {})}
        super().__init__(path, endpoint, methods=methods, responses=responses, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            if request.method not in BODY_METHODS:
                return await handler(request)
            limit: int = request.app.state.settings.max_config_request_bytes
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return _too_large(declared, limit)
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return _too_large(f"over {limit}", limit)
            request._body = bytes(body)  # what Request.body() returns from now on
            return await handler(request)

        return limited
