"""The FastAPI application: every package's router, mounted with one error mapping."""

from __future__ import annotations

from dramatiq.broker import Broker
from fastapi import FastAPI

from quire.app.errors import install_error_handlers, register_error
from quire.app.programs import load_programs
from quire.core import routes as core_routes
from quire.core.broker import build_broker
from quire.core.db import Database
from quire.core.settings import Settings
from quire.runtime import routes as runtime_routes
from quire.runtime.errors import InvalidProcess
from quire.runtime.kicks import Kicker


def create_app(*, settings: Settings, database: Database, broker: Broker | None = None) -> FastAPI:
    load_programs(settings)
    app = FastAPI(
        title="Quire",
        version="0.1.0",
        summary="The content and memory layer for production AI agents.",
    )
    app.state.settings = settings
    app.state.database = database
    app.state.kicker = Kicker(
        broker or build_broker(broker_url=settings.broker_url, database_url=database.url)
    )
    register_error(InvalidProcess, 500)
    install_error_handlers(app)
    app.include_router(core_routes.router)
    app.include_router(runtime_routes.router)
    return app
