"""The API's own series: requests by method, route template and status class.

The route is the template (``/v1/models/{model}``), never the path a client sent, and a method
outside the usual ones counts as ``other``, so the series stay bounded whatever clients send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})


def count_requests(app: FastAPI, registry: CollectorRegistry) -> None:
    """Count and time every request ``app`` answers in ``registry``."""
    requests = Counter(
        "driftline_api_requests",
        "HTTP requests answered, by method, route template and status class",
        ["method", "route", "status"],
        registry=registry,
    )
    seconds = Histogram(
        "driftline_api_request_seconds", "Time to answer an HTTP request", registry=registry
    )

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        with seconds.time():
            response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        method = request.method if request.method in METHODS else "other"
        requests.labels(method, route, f"{response.status_code // 100}xx").inc()
        return response
