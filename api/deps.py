"""Dependencies as ``Annotated`` aliases; the app's state holds the shared objects."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from driftline.ingest import Ingest
from driftline.settings import Settings
from driftline.store import Store
from driftline.store.alarms import AlarmStore
from retrainer.registry import Registry


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_ingest(request: Request) -> Ingest:
    ingest: Ingest = request.app.state.ingest
    return ingest


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
IngestDep = Annotated[Ingest, Depends(get_ingest)]


def get_alarm_store(request: Request) -> AlarmStore:
    """One AlarmStore per app, over the app's store backend."""
    state = request.app.state
    alarm_store: AlarmStore | None = getattr(state, "alarm_store", None)
    if alarm_store is None:
        alarm_store = state.alarm_store = AlarmStore(state.store.backend)
    return alarm_store


AlarmStoreDep = Annotated[AlarmStore, Depends(get_alarm_store)]


def get_registry(request: Request) -> Registry:
    """The model registry under the data directory (shared with the retrainer)."""
    state = request.app.state
    registry: Registry | None = getattr(state, "registry", None)
    if registry is None:
        registry = state.registry = Registry(state.settings.data_dir / "models")
    return registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
