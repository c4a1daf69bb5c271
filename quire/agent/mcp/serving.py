"""Quire's MCP server over the wire: streamable HTTP behind an API key, and stdio for one key.

HTTP: every request carries `Authorization: Bearer <Quire API key>`; a request without a valid
key gets 401 before it reaches MCP, and each tool call runs as that request's key. The endpoint
is stateless (any API process can answer any request). stdio: the key is fixed for the process.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from quire.agent.mcp.server import QuireMcpServer
from quire.core.db import Database
from quire.core.errors import Unauthenticated
from quire.core.tenancy import Caller, authenticate
from quire.runtime.kicks import Kicker

CALLER_SCOPE_KEY = "quire.caller"


def caller_for_key(database: Database, key: str) -> Caller:
    with database.system_session() as session:
        return authenticate(session=session, key=key)


def _unauthenticated(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "unauthenticated", "message": message}},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class ApiKeyAuth:
    """ASGI middleware: the request's API key, checked, and its caller put in the scope."""

    def __init__(self, app: ASGIApp, database: Database) -> None:
        self.app = app
        self.database = database

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            await _unauthenticated("send an API key in the header `Authorization: Bearer <key>`")(
                scope, receive, send
            )
            return
        try:
            caller = await anyio.to_thread.run_sync(caller_for_key, self.database, key.strip())
        except Unauthenticated as error:
            await _unauthenticated(str(error))(scope, receive, send)
            return
        await self.app({**scope, CALLER_SCOPE_KEY: caller}, receive, send)


def caller_from_request(ctx: ServerRequestContext[Any, Any]) -> Caller:
    request = ctx.request
    caller = request.scope.get(CALLER_SCOPE_KEY) if request is not None else None
    if not isinstance(caller, Caller):
        raise Unauthenticated("this MCP request carries no authenticated API key")
    return caller


class HttpEndpoint:
    """The streamable-HTTP endpoint: `app` to mount, `running()` to hold for the app's lifetime."""

    def __init__(self, *, database: Database, kicker: Callable[[], Kicker | None], services: Any) -> None:
        self.mcp = QuireMcpServer(
            database=database, identify=caller_from_request, kicker=kicker, services=services
        )
        # Bearer keys protect the endpoint; DNS-rebinding checks (Host/Origin allow-lists) are off.
        self.manager = StreamableHTTPSessionManager(app=self.mcp.server, stateless=True, json_response=True)
        self.app: ASGIApp = ApiKeyAuth(StreamableHTTPASGIApp(self.manager), database)

    def running(self) -> AbstractAsyncContextManager[None]:
        return self.manager.run()


async def serve_stdio(*, database: Database, caller: Caller, kicker: Kicker | None, services: Any) -> None:
    """Serve one client on this process's stdin and stdout, as `caller`, until it hangs up."""
    mcp = QuireMcpServer(
        database=database, identify=lambda ctx: caller, kicker=lambda: kicker, services=services
    )
    async with stdio_server() as (read_stream, write_stream):
        await mcp.server.run(read_stream, write_stream, mcp.server.create_initialization_options())
