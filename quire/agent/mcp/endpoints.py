"""Where an MCP server is and how to reach it: the command or URL, and the secrets that go with it.

An `Endpoint` holds environment and header values (tokens): log its `label()`, never the whole.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import StdioServerParameters
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client

from quire.agent.mcp.errors import McpError
from quire.agent.mcp.models import McpServer, safe_url


@dataclass(frozen=True, repr=False)
class Endpoint:
    """How to reach one tenant's MCP server. It holds secrets: log `label()`, never the whole."""

    tenant_id: uuid.UUID
    name: str
    transport: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[uuid.UUID, str]:
        return (self.tenant_id, self.name)

    def label(self) -> str:
        where = self.command if self.transport == "stdio" else safe_url(self.url)
        return f"{self.name} ({self.transport}: {where})"

    def scrub(self, text: str) -> str:
        """`text` without this endpoint's secrets (environment and header values, the raw URL)."""
        if self.url and self.url != safe_url(self.url):
            text = text.replace(self.url, safe_url(self.url) or "")
        for _, secret in (*self.env, *self.headers):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"Endpoint({self.label()})"


def endpoint_of(server: McpServer) -> Endpoint:
    return Endpoint(
        tenant_id=server.tenant_id,
        name=server.name,
        transport=server.transport,
        command=server.command,
        args=tuple(server.args),
        env=tuple(sorted(server.env.items())),
        url=server.url,
        headers=tuple(sorted(server.headers.items())),
    )


def describe_error(error: BaseException, endpoint: Endpoint | None = None) -> str:
    """One line about an error (the first leaf of an exception group), secrets removed."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, McpError) and text:
        line = text  # says what happened already
    else:
        line = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if endpoint is not None:
        line = endpoint.scrub(line)
    return line[:500]


@asynccontextmanager
async def http_transport(endpoint: Endpoint) -> AsyncIterator[Any]:
    """Streamable HTTP with the endpoint's headers (the SDK's timeouts: 30 s, 300 s to read)."""
    assert endpoint.url is not None
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        httpx2.AsyncClient(headers=dict(endpoint.headers), timeout=timeout) as http,
        streamable_http_client(endpoint.url, http_client=http) as streams,
    ):
        yield streams


def transport_for(endpoint: Endpoint) -> StdioServerParameters | Transport:
    if endpoint.transport == "stdio":
        assert endpoint.command is not None
        return StdioServerParameters(
            command=endpoint.command, args=list(endpoint.args), env=dict(endpoint.env)
        )
    return http_transport(endpoint)
