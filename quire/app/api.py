"""The FastAPI application: every package's router, mounted with one error mapping."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dramatiq.broker import Broker
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quire.agent import routes as agent_routes
from quire.app.api_docs import API_DESCRIPTION, mount_api_docs
from quire.app.console.mount import mount_console
from quire.app.errors import document_errors, install_error_handlers
from quire.app.limits import BodySizeLimit
from quire.app.mcp import mount_mcp
from quire.app.metrics import install_metrics
from quire.app.openapi import operation_id
from quire.app.programs import warm_up_in_background
from quire.app.ratelimit import RateLimitMiddleware
from quire.app.services import Services, build_services
from quire.content import routes as content_routes
from quire.core import routes as core_routes
from quire.core.broker import build_broker
from quire.core.db import Database
from quire.core.logcontext import log_context
from quire.core.settings import Settings
from quire.core.tracing import configure_tracing, span_from
from quire.memory import routes as memory_routes
from quire.runtime import routes as runtime_routes
from quire.runtime.kicks import Kicker


def create_app(
    *,
    settings: Settings,
    database: Database,
    broker: Broker | None = None,
    services: Services | None = None,
    warm_up: bool = False,
) -> FastAPI:
    """The API of one process; `services` default to the ones these settings describe."""
    services = services or build_services(settings, database)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            warm_up_in_background(services.content, parser=False)
        yield

    app = FastAPI(
        title="Quire",
        version="0.1.0",
        summary="The content and memory layer for production AI agents.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by mount_api_docs, from Quire itself rather than a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.services = services
    app.state.kicker = Kicker(
        broker or build_broker(broker_url=settings.broker_url, database_url=database.url)
    )
    configure_tracing(exporter=settings.otel_exporter, endpoint=settings.otel_endpoint, service="quire-api")
    install_error_handlers(app)
    document_errors(app)
    install_metrics(app, database, token=settings.metrics_token)
    app.add_middleware(
        BodySizeLimit,
        limit_bytes=settings.max_request_kb * 1024,
        upload_limit_bytes=services.content.max_upload_bytes,
        upload_paths=("/v1/documents",),
    )
    if settings.rate_limit_per_minute:  # added after, so it runs before: refused before read
        app.add_middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute)
    app.include_router(core_routes.router)
    app.include_router(runtime_routes.router)
    app.include_router(content_routes.router)
    app.include_router(memory_routes.router)
    app.include_router(agent_routes.router)
    app.include_router(agent_routes.usage_router)
    mount_console(app)
    mount_mcp(app, database, services)
    mount_api_docs(app)
    # Added last so it runs first: every later layer logs with the request id.
    app.add_middleware(RequestContext)
    return app


class RequestContext:
    """Gives each request an id (X-Request-ID, kept if the client sent one), for logs and traces."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        sent = headers.get(b"x-request-id", b"").decode(errors="replace")[:100]
        request_id = sent or uuid.uuid4().hex
        # A caller's W3C traceparent is continued, so a trace spans the client, the API and workers.
        traceparent = headers.get(b"traceparent", b"").decode(errors="replace")[:100] or None

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        name = f"HTTP {scope.get('method')} {scope.get('path')}"
        with log_context(request_id=request_id), span_from(traceparent, name, request_id=request_id):
            await self.app(scope, receive, with_id)
