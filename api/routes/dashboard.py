"""The built-in dashboard: one HTML page and its static assets, shipped inside the package.

Nothing is fetched from elsewhere at run time: the page, its script and its styles live in
``api/static/`` and read the same JSON API as any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
# revalidate on every load, so an upgraded package never serves a stale script
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/")
def read_dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=NO_CACHE)


@router.get("/static/{name}")
def read_asset(name: str) -> FileResponse:
    path = STATIC / name
    # a path parameter never holds '/', and dot-files are not assets
    if name.startswith(".") or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard asset {name!r}")
    return FileResponse(path, headers=NO_CACHE)
