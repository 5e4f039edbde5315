"""API keys: with a key configured, every resource endpoint needs ``Authorization: Bearer``.

Two keys (``driftline/settings.py``): the admin key (``DRIFTLINE_API_KEY``) may do everything;
the read-only key (``DRIFTLINE_API_READ_KEY``, for dashboards and Grafana) may only read
(``GET``). ``main.py`` puts :data:`KeyDep` on every resource router, so a new route is covered
without anyone remembering to; ``/health``, the dashboard's page and static files, and the
OpenAPI docs (which hold no data) stay open.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from api.deps import SettingsDep
from api.schemas import Responses, error

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    description="DRIFTLINE_API_KEY (admin: every endpoint) or DRIFTLINE_API_READ_KEY "
    "(read-only: GET endpoints). Needed only when the server has a key configured.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _is(token: str, key: SecretStr | None) -> bool:
    return key is not None and hmac.compare_digest(token.encode(), key.get_secret_value().encode())


def require_key(request: Request, settings: SettingsDep, credentials: Credentials) -> None:
    """Reads need the read-only or the admin key; anything else the admin key (403 for the
    read-only one). Without a key configured the API is open."""
    if settings.api_key is None:
        return
    token = credentials.credentials if credentials is not None else ""
    if _is(token, settings.api_key):
        return
    is_read_key = _is(token, settings.api_read_key)
    if is_read_key and request.method in READ_METHODS:
        return
    if is_read_key:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"the read-only key (DRIFTLINE_API_READ_KEY) cannot change anything: "
            f"{request.method} {request.url.path} needs the admin key (DRIFTLINE_API_KEY)",
        )
    needed = "DRIFTLINE_API_KEY"
    if request.method in READ_METHODS and settings.api_read_key is not None:
        needed = "DRIFTLINE_API_READ_KEY or DRIFTLINE_API_KEY"
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        f"{'a wrong' if credentials is not None else 'no'} API key: this endpoint needs "
        f"'Authorization: Bearer <{needed}>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


KeyDep = Depends(require_key)

UNAUTHORIZED: Responses = {401: error("no API key, or a wrong one (the server has a key)")}
ADMIN_ONLY: Responses = {403: error("the read-only key: a change needs the admin key")}
