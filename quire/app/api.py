"""The FastAPI application: every package's router, mounted with one error mapping."""

from __future__ import annotations

from fastapi import FastAPI

from quire.app.errors import install_error_handlers
from quire.core import routes as core_routes
from quire.core.db import Database
from quire.core.settings import Settings


def create_app(*, settings: Settings, database: Database) -> FastAPI:
    app = FastAPI(
        title="Quire",
        version="0.1.0",
        summary="The content and memory layer for production AI agents.",
    )
    app.state.settings = settings
    app.state.database = database
    install_error_handlers(app)
    app.include_router(core_routes.router)
    return app
