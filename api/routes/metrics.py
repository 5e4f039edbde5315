"""``GET /metrics``: the process's health in the Prometheus format (``driftline/metrics.py``).

A resource like the others: with a key configured it needs one (the read-only key is enough;
Prometheus sends it with ``authorization: {credentials: …}`` in its scrape config).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry
from prometheus_client.exposition import choose_encoder

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "the series"}},
)
def read_metrics(request: Request) -> Response:
    """Series of this process: API requests, and in ``driftline up``/``demo`` the worker's and
    the retrainer's too (one process, one registry)."""
    registry: CollectorRegistry = request.app.state.metrics
    # the format the scraper asks for (Prometheus 2 takes the 0.0.4 text, the default)
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), headers={"Content-Type": content_type})
