"""Quire's MCP surfaces in the running system: the HTTP endpoint and API routes in the API's app,
and `quire mcp` (one client over stdio)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from quire.agent.mcp.routes import router as mcp_servers_router
from quire.agent.mcp.serving import HttpEndpoint
from quire.core.db import Database
from quire.core.settings import Settings

MCP_PATH = "/mcp"


def mount_mcp(app: FastAPI, database: Database, services: Any) -> HttpEndpoint:
    """Serve MCP at /mcp (API key required) and the MCP-server registry under /v1/tools/mcp-servers.

    The endpoint's sessions need a task group for the app's lifetime, so the app's lifespan is
    wrapped to hold it.
    """
    endpoint = HttpEndpoint(
        database=database, kicker=lambda: getattr(app.state, "kicker", None), services=services
    )
    app.include_router(mcp_servers_router)
    app.router.routes.append(
        Route(MCP_PATH, endpoint.app, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with endpoint.running(), inner(application) as state:
            yield state

    app.router.lifespan_context = lifespan
    return endpoint


def serve_stdio(settings: Settings, *, key: str) -> None:
    """`quire mcp`: authenticate `key`, then answer one MCP client on stdin/stdout until it leaves.

    Nothing but MCP may reach stdout: logs go to stderr.
    """
    import anyio

    from quire.agent.mcp.serving import caller_for_key, serve_stdio
    from quire.app.services import build_services
    from quire.core.broker import build_broker
    from quire.core.db import check_database
    from quire.runtime.kicks import Kicker

    with _stdout_to_stderr():  # starting the database (or anything else) must not write on the wire
        database = Database.from_settings(settings, pool_size=4)
    try:
        with _stdout_to_stderr():
            check_database(database.url)
            database.check_context_key()
            caller = caller_for_key(database, key)
            services = build_services(settings, database)
            kicker = Kicker(build_broker(broker_url=settings.broker_url, database_url=database.url))
        anyio.run(lambda: serve_stdio(database=database, caller=caller, kicker=kicker, services=services))
    finally:
        database.dispose()


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while: this process's and its children's output."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
