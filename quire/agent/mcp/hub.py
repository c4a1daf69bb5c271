"""Connections to external MCP servers, held open by one event loop thread per process.

Quire's code is synchronous; the MCP SDK is async. The hub runs an asyncio loop in a daemon
thread and keeps one client connection per (tenant, server): tool calls from any thread reuse
it, and it listens for the server's `notifications/tools/list_changed` (on 2026-era
connections through a `subscriptions/listen` stream, on older ones as plain notifications),
which it hands to `on_tools_changed` on a thread of its own. A connection that fails is
dropped; the next use opens a new one.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.session import IncomingMessage, MessageHandlerFnT
from mcp.client.subscriptions import SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from quire.agent.mcp.endpoints import Endpoint, describe_error, public_error, transport_for, unreachable
from quire.agent.mcp.errors import McpUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_PAGES = 50  # of a tools/list walk: a server whose cursor never ends cannot hang a sync
CLIENT_INFO = types.Implementation(name="quire", version="0.1.0")


@dataclass(eq=False)
class _Connection:
    endpoint: Endpoint
    ready: asyncio.Future[Client]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    tools: list[types.Tool] | None = None  # the last listing; None once the server said it changed


ToolsChanged = Callable[[Endpoint], None]


class McpHub:
    """The process's MCP client connections (see the module's docstring)."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        ping_interval: float = 30.0,
        on_tools_changed: ToolsChanged | None = None,
    ) -> None:
        self.timeout = timeout
        self.ping_interval = ping_interval
        self.on_tools_changed = on_tools_changed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="quire-mcp", daemon=True)
        self._thread.start()
        self._connections: dict[tuple[uuid.UUID, str], _Connection] = {}  # touched on the loop only
        self._announcer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="quire-mcp-changed")
        self._pending: set[tuple[uuid.UUID, str]] = set()
        self._pending_lock = threading.Lock()
        self._closed = False
        self.pid = os.getpid()

    # The synchronous face, for any thread but the hub's own.

    def tools(self, endpoint: Endpoint, *, refresh: bool = False, keep_open: bool = True) -> list[types.Tool]:
        """Every tool the server lists (all pages); the last listing unless `refresh` or it changed.

        Without `keep_open`, a connection opened for this listing is closed after it.
        """
        return self._wait(self._tools(endpoint, refresh=refresh, keep_open=keep_open), endpoint=endpoint)

    def call_tool(
        self,
        endpoint: Endpoint,
        name: str,
        arguments: dict[str, Any],
        *,
        meta: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> types.CallToolResult:
        seconds = timeout or self.timeout
        return self._wait(
            self._call(endpoint, name, arguments, meta, seconds), timeout=seconds + 5, endpoint=endpoint
        )

    def open(self, endpoint: Endpoint) -> None:
        """Connect now (and listen for changes), if not connected already."""
        self._wait(self._client(endpoint), endpoint=endpoint)

    def close(self, key: tuple[uuid.UUID, str]) -> None:
        self._wait(self._close(key))

    def connected(self) -> list[tuple[uuid.UUID, str]]:
        return self._wait(self._keys())

    def shutdown(self, timeout: float = 5.0) -> None:
        """Close every connection (stdio servers exit with it) and stop the loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self._wait(self._close_all(), timeout=timeout)
        except Exception:
            logger.warning("MCP connections did not close cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._announcer.shutdown(wait=False)

    def _wait(
        self,
        coroutine: Coroutine[Any, Any, T],
        *,
        timeout: float | None = None,
        endpoint: Endpoint | None = None,
    ) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("the MCP hub's own thread cannot wait for the hub")
        if self._closed and self._loop.is_closed():
            coroutine.close()
            raise McpUnavailable("the MCP hub is shut down")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout if timeout is not None else self.timeout + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            problem = f"no answer within {timeout or self.timeout:.0f} s"
            if endpoint is None or endpoint.transport != "http":
                raise McpUnavailable(problem) from None
            logger.warning("MCP server %s: %s", endpoint.label(), problem)
            raise McpUnavailable(unreachable(endpoint)) from None

    # The loop's side.

    async def _keys(self) -> list[tuple[uuid.UUID, str]]:
        return list(self._connections)

    async def _client(self, endpoint: Endpoint) -> Client:
        connection = self._connections.get(endpoint.key)
        if connection is not None and (connection.endpoint != endpoint or connection.stop.is_set()):
            connection.stop.set()  # the configuration changed, or it is closing: start afresh
            self._connections.pop(endpoint.key, None)
            connection = None
        if connection is None:
            connection = _Connection(endpoint=endpoint, ready=self._loop.create_future())
            connection.ready.add_done_callback(_retrieved)  # a failure nobody waits for is not an error
            self._connections[endpoint.key] = connection
            connection.task = self._loop.create_task(self._hold(connection))
        try:
            return await asyncio.wait_for(asyncio.shield(connection.ready), self.timeout)
        except TimeoutError:
            connection.stop.set()
            if connection.task is not None:
                connection.task.cancel()
            problem = f"MCP server {endpoint.label()} did not finish connecting within {self.timeout:.0f} s"
            if endpoint.transport != "http":
                raise McpUnavailable(problem) from None
            logger.warning("%s", problem)
            raise McpUnavailable(unreachable(endpoint)) from None

    async def _hold(self, connection: _Connection) -> None:
        """Open the connection, publish it, listen for changes, and close it when asked."""
        endpoint = connection.endpoint
        try:
            async with Client(
                transport_for(endpoint),
                message_handler=self._message_handler(connection),
                read_timeout_seconds=self.timeout,
                client_info=CLIENT_INFO,
                cache=None,
            ) as client:
                logger.info("connected to MCP server %s (%s)", endpoint.label(), client.protocol_version)
                if not connection.ready.done():
                    connection.ready.set_result(client)
                async with anyio.create_task_group() as group:
                    if _announces_changes(client):
                        group.start_soon(self._listen, connection, client)
                    elif client.protocol_version not in MODERN_PROTOCOL_VERSIONS:  # 2026 has no ping
                        group.start_soon(self._keep_alive, connection, client)
                    await connection.stop.wait()
                    group.cancel_scope.cancel()
        except Exception as error:
            detail = describe_error(error, endpoint)
            if not connection.ready.done():
                logger.warning("could not connect to MCP server %s: %s", endpoint.label(), detail)
                connection.ready.set_exception(
                    _unavailable(endpoint, error, f"MCP server {endpoint.label()}")
                )
            else:
                logger.warning("the connection to MCP server %s ended: %s", endpoint.label(), detail)
        finally:
            connection.stop.set()
            if self._connections.get(endpoint.key) is connection:
                del self._connections[endpoint.key]
            if not connection.ready.done():
                connection.ready.set_exception(McpUnavailable(f"MCP server {endpoint.label()} closed"))

    async def _keep_alive(self, connection: _Connection, client: Client) -> None:
        """Ping now and then (with no change stream to tell), so a dead server is noticed early."""
        while not connection.stop.is_set():
            await anyio.sleep(self.ping_interval)
            try:
                with anyio.fail_after(self.timeout):
                    await client.session.send_ping()
            except Exception as error:
                logger.warning(
                    "MCP server %s stopped answering: %s",
                    connection.endpoint.label(),
                    describe_error(error, connection.endpoint),
                )
                connection.stop.set()

    async def _listen(self, connection: _Connection, client: Client) -> None:
        """Hold a 2026-era listen stream open; its events reach the message handler too."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    pass
        except SubscriptionLost:
            logger.warning("MCP server %s dropped its change stream", connection.endpoint.label())
            connection.stop.set()
        except Exception as error:  # calls still work; the periodic re-sync covers changes
            logger.info(
                "MCP server %s does not announce changes: %s",
                connection.endpoint.label(),
                describe_error(error, connection.endpoint),
            )

    def _message_handler(self, connection: _Connection) -> MessageHandlerFnT:
        async def handle(message: IncomingMessage) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                connection.tools = None
                self.announce(connection.endpoint)
            elif isinstance(message, Exception):
                logger.debug(
                    "MCP server %s: %s",
                    connection.endpoint.label(),
                    describe_error(message, connection.endpoint),
                )

        return handle

    def announce(self, endpoint: Endpoint) -> None:
        """Hand a change to `on_tools_changed`, off the loop; a burst of notices makes one call."""
        if self.on_tools_changed is None:
            return
        with self._pending_lock:
            if endpoint.key in self._pending:
                return
            self._pending.add(endpoint.key)
        self._announcer.submit(self._changed, endpoint)

    def _changed(self, endpoint: Endpoint) -> None:
        with self._pending_lock:
            self._pending.discard(endpoint.key)
        callback = self.on_tools_changed
        if callback is None:
            return
        try:
            callback(endpoint)
        except Exception:
            logger.exception("re-syncing MCP server %s after a change failed", endpoint.label())

    async def _tools(self, endpoint: Endpoint, *, refresh: bool, keep_open: bool) -> list[types.Tool]:
        opened_here = endpoint.key not in self._connections
        client = await self._client(endpoint)
        connection = self._connections.get(endpoint.key)
        if not refresh and connection is not None and connection.tools is not None:
            return connection.tools
        try:
            tools: list[types.Tool] = []
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        except Exception as error:
            await self._drop(endpoint, error)
            raise _unavailable(endpoint, error, f"listing the tools of {endpoint.label()}") from None
        if connection is not None:
            connection.tools = tools
        if not keep_open and opened_here:
            await self._close(endpoint.key)
        return tools

    async def _call(
        self,
        endpoint: Endpoint,
        name: str,
        arguments: dict[str, Any],
        meta: dict[str, Any] | None,
        timeout: float,
    ) -> types.CallToolResult:
        client = await self._client(endpoint)
        try:
            return await client.call_tool(
                name,
                arguments,
                read_timeout_seconds=timeout,
                meta=cast(types.RequestParamsMeta, meta) if meta else None,
            )
        except MCPError as error:
            if error.code != types.CONNECTION_CLOSED:
                raise  # the server answered with a protocol error: the connection is fine
            await self._drop(endpoint, error)
            raise McpUnavailable(f"MCP server {endpoint.label()} closed the connection") from None
        except Exception as error:
            await self._drop(endpoint, error)
            raise _unavailable(endpoint, error, f"calling {name} on {endpoint.label()}") from None

    async def _drop(self, endpoint: Endpoint, error: BaseException) -> None:
        logger.warning(
            "dropping the connection to MCP server %s: %s", endpoint.label(), describe_error(error, endpoint)
        )
        await self._close(endpoint.key)

    async def _close(self, key: tuple[uuid.UUID, str]) -> None:
        connection = self._connections.pop(key, None)
        if connection is None:
            return
        connection.stop.set()
        if connection.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(connection.task), 5)
            except (TimeoutError, asyncio.CancelledError):
                connection.task.cancel()

    async def _close_all(self) -> None:
        await asyncio.gather(*(self._close(key) for key in list(self._connections)), return_exceptions=True)


def _unavailable(endpoint: Endpoint, error: BaseException, what: str) -> McpUnavailable:
    """The error callers get: for an HTTP server, `public_error` (its detail is logged where it
    happened); for a stdio one, the detail, which tells nothing about the network."""
    if endpoint.transport == "http":
        return McpUnavailable(public_error(error, endpoint))
    return McpUnavailable(f"{what}: {describe_error(error, endpoint)}")


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _announces_changes(client: Client) -> bool:
    """Whether to open a listen stream: a 2026-era server that says its tool list can change."""
    tools = client.server_capabilities.tools
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS and bool(tools and tools.list_changed)


_hub: McpHub | None = None
_hub_lock = threading.Lock()
_on_tools_changed: ToolsChanged | None = None


def get_hub() -> McpHub:
    """This process's hub, started on first use and closed at exit."""
    global _hub
    with _hub_lock:
        if _hub is None or _hub._closed or _hub.pid != os.getpid():  # a forked child starts its own
            _hub = McpHub(on_tools_changed=_on_tools_changed)
            atexit.register(_hub.shutdown)
        return _hub


def set_change_handler(handler: ToolsChanged | None) -> None:
    """What this process's hub does when a server says its tools changed."""
    global _on_tools_changed
    with _hub_lock:
        _on_tools_changed = handler
        if _hub is not None:
            _hub.on_tools_changed = handler
