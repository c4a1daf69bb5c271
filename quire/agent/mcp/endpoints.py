"""Where an MCP server is and how to reach it: the command or URL, the secrets that go with it, and
the outbound policy its HTTP connections obey.

An `Endpoint` holds environment and header values (tokens): log its `label()`, never the whole.
What a tenant is told when an HTTP server cannot be reached is `public_error`: one sentence,
whatever happened, because which error it was (refused, reset, timed out, not MCP) would tell
the tenant what listens at an address; the detail goes to the log.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import StdioServerParameters
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client

from quire.agent.mcp.access import McpAccess
from quire.agent.mcp.credentials import read_credentials
from quire.agent.mcp.errors import McpError
from quire.agent.mcp.models import McpServer, safe_url
from quire.core.errors import OutboundRefused
from quire.core.outbound import OutboundPolicy
from quire.core.outbound_transport import OutboundTransport


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
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)  # by default, no internal address

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


def endpoint_of(server: McpServer, access: McpAccess) -> Endpoint:
    """How to reach `server`, its credentials decrypted (UndecryptableSecret with the wrong key)."""
    credentials = read_credentials(server, access.credentials)
    return Endpoint(
        tenant_id=server.tenant_id,
        name=server.name,
        transport=server.transport,
        command=server.command,
        args=tuple(server.args),
        env=tuple(sorted(credentials.env.items())),
        url=credentials.url,
        headers=tuple(sorted(credentials.headers.items())),
        outbound=access.outbound,
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


def public_error(error: BaseException, endpoint: Endpoint) -> str:
    """What the tenant is told of a failure to reach the server (see the module's docstring).

    A refusal by the outbound policy is said as it is: it tells what the tenant's own URL resolves
    to, not what answers there.
    """
    if endpoint.transport != "http" or isinstance(error, McpError):  # Quire's own say what they may
        return describe_error(error, endpoint)
    refused = outbound_refusal(error)
    if refused is not None:
        return str(refused)
    return unreachable(endpoint)


def unreachable(endpoint: Endpoint) -> str:
    return f"could not reach the MCP server at {safe_url(endpoint.url)}: it did not answer as an MCP server"


def outbound_refusal(error: BaseException) -> OutboundRefused | None:
    """The outbound policy's refusal behind `error`, if that is what it was (through groups and causes)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OutboundRefused):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


@asynccontextmanager
async def http_transport(endpoint: Endpoint) -> AsyncIterator[Any]:
    """Streamable HTTP with the endpoint's headers (the SDK's timeouts: 30 s, 300 s to read), every
    connection (redirects included) made through the outbound policy."""
    assert endpoint.url is not None
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        httpx2.AsyncClient(
            headers=dict(endpoint.headers), timeout=timeout, transport=OutboundTransport(endpoint.outbound)
        ) as http,
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
