"""Dependencies as ``Annotated`` aliases; the app's state holds the shared objects."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from driftline.ingest import Ingest
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.alarms import AlarmStore
from driftline.store.jobs import JobStore
from driftline.store.labels import LabelStore
from driftline.store.tags import TagStore
from retrainer.registry import Registry


def get_stores(request: Request) -> Stores:
    """The process's stores, handed to the app (``create_app``)."""
    stores: Stores = request.app.state.stores
    return stores


StoresDep = Annotated[Stores, Depends(get_stores)]


def get_store(stores: StoresDep) -> Store:
    return stores.store


def get_alarm_store(stores: StoresDep) -> AlarmStore:
    return stores.alarms


def get_job_store(stores: StoresDep) -> JobStore:
    return stores.jobs


def get_label_store(stores: StoresDep) -> LabelStore:
    return stores.labels


def get_tag_store(stores: StoresDep) -> TagStore:
    return stores.tags


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_ingest(request: Request) -> Ingest:
    ingest: Ingest = request.app.state.ingest
    return ingest


StoreDep = Annotated[Store, Depends(get_store)]
AlarmStoreDep = Annotated[AlarmStore, Depends(get_alarm_store)]
JobStoreDep = Annotated[JobStore, Depends(get_job_store)]
LabelStoreDep = Annotated[LabelStore, Depends(get_label_store)]
TagStoreDep = Annotated[TagStore, Depends(get_tag_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
IngestDep = Annotated[Ingest, Depends(get_ingest)]


def get_registry(request: Request) -> Registry:
    """The model registry under the data directory (shared with the retrainer)."""
    state = request.app.state
    registry: Registry | None = getattr(state, "registry", None)
    if registry is None:
        registry = state.registry = Registry(state.settings.data_dir / "models")
    return registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
