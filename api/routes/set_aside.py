"""Windows the store rejected for their content, set aside so that every other window goes on
(``streams/pipeline.py``): what they were and why."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import StoreDep
from api.params import MAX_NAME

router = APIRouter(prefix="/v1/windows-set-aside", tags=["models"])


class SetAsideWindowPublic(BaseModel):
    model: str
    stage: str
    window_start: int = Field(description="epoch s, as the events gave it (it may be out of range)")
    window_seconds: int
    events: int = Field(description="events, late and invalid ones included, it held")
    reason: str = Field(description="what the store said")
    set_aside_at: float = Field(description="epoch s")


@router.get("")
def read_windows_set_aside(
    store: StoreDep,
    model: str | None = Query(None, max_length=MAX_NAME),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[SetAsideWindowPublic]:
    """Newest first. Each one also counts in its model's ``store.windows_set_aside`` metric,
    which the default ``WindowSetAside`` rule alerts on."""
    return [
        SetAsideWindowPublic.model_validate(window, from_attributes=True)
        for window in store.windows_set_aside(model, limit)
    ]
