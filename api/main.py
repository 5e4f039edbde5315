"""The HTTP API: one router per resource, shared objects in ``app.state``."""

from __future__ import annotations

from fastapi import FastAPI

from api.routes import (
    alerts,
    dashboard,
    drift,
    events,
    health,
    models,
    retraining,
    rules,
    silences,
    subscriptions,
)
from driftline.events import EventLimits
from driftline.ingest import Ingest
from driftline.settings import Settings
from driftline.store import Store


def create_app(settings: Settings, store: Store, ingest: Ingest | None = None) -> FastAPI:
    app = FastAPI(
        title="Driftline",
        summary="Monitoring for machine-learning models in production",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.ingest = ingest or Ingest(
        settings.kafka_bootstrap,
        EventLimits(settings.max_message_bytes, settings.max_features, settings.max_string_length),
    )
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(drift.router)
    app.include_router(events.router)
    app.include_router(rules.router)
    app.include_router(alerts.router)
    app.include_router(subscriptions.router)
    app.include_router(silences.router)
    app.include_router(retraining.router)
    app.include_router(dashboard.router)
    return app
