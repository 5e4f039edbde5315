"""The HTTP API: one router per resource, shared objects in ``app.state``.

With an API key configured, every resource router needs a key (``api/auth.py``).
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.auth import UNAUTHORIZED, KeyDep
from api.metrics import count_requests
from api.routes import (
    alerts,
    dashboard,
    deployments,
    drift,
    error_analysis,
    estimation,
    events,
    examples,
    health,
    metrics,
    models,
    retraining,
    rules,
    set_aside,
    silences,
    subscriptions,
    tags,
)
from driftline.ingest import Ingest
from driftline.metrics import new_registry
from driftline.settings import Settings
from driftline.store import Stores


def create_app(
    settings: Settings,
    stores: Stores,
    ingest: Ingest | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The API over the process's ``stores`` (``driftline.store.open_stores``).

    ``registry``: the process's Prometheus registry, served at ``/metrics`` (default: a new
    one); ``driftline up`` hands the one its worker and retrainer add their series to.
    """
    app = FastAPI(
        title="Driftline",
        summary="Monitoring for machine-learning models in production",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.stores = stores
    app.state.ingest = ingest or Ingest(settings.kafka_bootstrap, settings.event_limits())
    app.state.metrics = registry = new_registry() if registry is None else registry
    count_requests(app, registry)
    # open: liveness, and the dashboard's page and assets (it asks for a key when the API
    # answers 401); the OpenAPI document and /docs are open too: they hold no data
    app.include_router(health.router)
    app.include_router(dashboard.router)
    resources = (
        metrics,  # a key when one is configured: the read-only key will do for Prometheus
        models,
        drift,
        error_analysis,
        estimation,
        examples,
        tags,
        events,
        rules,
        alerts,
        subscriptions,
        silences,
        retraining,
        deployments,
        set_aside,
    )
    for resource in resources:
        app.include_router(resource.router, dependencies=[KeyDep], responses=UNAUTHORIZED)
    return app
