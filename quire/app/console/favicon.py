"""The favicon, at the one address browsers ask for without being told: /favicon.ico."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from quire.app.console.pages import STATIC

router = APIRouter(include_in_schema=False)

ICON = STATIC / "favicon.ico"


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(ICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
