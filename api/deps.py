"""Dependencies as ``Annotated`` aliases; the app's state holds the shared objects."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from driftline.ingest import Ingest
from driftline.settings import Settings
from driftline.store import Store


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


def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Mutating endpoints need ``Authorization: Bearer <key>`` when an API key is set."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value()
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this endpoint needs 'Authorization: Bearer <DRIFTLINE_API_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


ApiKeyDep = Depends(require_api_key)
