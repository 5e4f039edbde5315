from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, HTTPException, status

from api.deps import SettingsDep, StoreDep
from api.schemas import HealthPublic, error

router = APIRouter(tags=["health"])


@router.get("/health", responses={503: error("the store does not answer")})
def read_health(store: StoreDep, settings: SettingsDep) -> HealthPublic:
    """Liveness plus a round trip to the store."""
    try:
        store.backend.execute("SELECT 1")
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"store unreachable: {exc}"
        ) from exc
    return HealthPublic(status="ok", store=settings.store, version=version("driftline"))
