"""The FastAPI application: every package's router, mounted with one error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dramatiq.broker import Broker
from fastapi import FastAPI

from quire.agent import routes as agent_routes
from quire.app.console.mount import mount_console
from quire.app.errors import install_error_handlers, register_error
from quire.app.limits import BodySizeLimit
from quire.app.programs import configure_process, warm_up_in_background
from quire.content import routes as content_routes
from quire.content.errors import UploadTooLarge
from quire.core import routes as core_routes
from quire.core.broker import build_broker
from quire.core.db import Database
from quire.core.settings import Settings
from quire.memory import routes as memory_routes
from quire.memory.errors import MissingEvidence, ReviewRefused
from quire.runtime import routes as runtime_routes
from quire.runtime.errors import InvalidProcess
from quire.runtime.kicks import Kicker

register_error(InvalidProcess, 500)
register_error(UploadTooLarge, 413)
register_error(MissingEvidence, 422)
register_error(ReviewRefused, 409)


def create_app(
    *, settings: Settings, database: Database, broker: Broker | None = None, warm_up: bool = False
) -> FastAPI:
    environment = configure_process(settings, database)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            warm_up_in_background(environment, parser=False)
        yield

    app = FastAPI(
        title="Quire",
        version="0.1.0",
        summary="The content and memory layer for production AI agents.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.kicker = Kicker(
        broker or build_broker(broker_url=settings.broker_url, database_url=database.url)
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, limit_bytes=environment.max_upload_bytes, paths=("/v1/documents",))
    app.include_router(core_routes.router)
    app.include_router(runtime_routes.router)
    app.include_router(content_routes.router)
    app.include_router(memory_routes.router)
    app.include_router(agent_routes.router)
    mount_console(app)
    return app
