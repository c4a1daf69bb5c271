"""An httpx2 transport that applies the outbound policy to every connection it opens.

The check happens in the network backend, where a host name becomes a socket: the name is
resolved there, every address is vetted, and the socket is opened to a vetted address. So no
earlier answer is trusted (DNS rebinding), each redirect hop to a new host is vetted like the
first request, and TLS still verifies and sends SNI for the host name (httpcore passes the name to
`start_tls`, whatever address the socket went to). Proxies from the environment are not used:
the policy judges the server itself, not a proxy that would reach it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable

import anyio.to_thread
import httpcore2
import httpx2

from quire.core.errors import OutboundRefused
from quire.core.outbound import OutboundPolicy

logger = logging.getLogger(__name__)

SocketOption = httpcore2.SOCKET_OPTION
LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)  # httpx2's own defaults


class VettedBackend(httpcore2.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the policy allows (and no Unix sockets at all)."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await anyio.to_thread.run_sync(self.policy.vetted_addresses, host, port)
        except OutboundRefused as refused:
            logger.warning("refused to connect to %s:%s: %s", host, port, refused)
            raise
        except OSError as error:
            raise httpcore2.ConnectError(f"{host} does not resolve: {error}") from error
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # vetted_addresses returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise OutboundRefused("Quire does not connect to Unix sockets on a tenant's behalf")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class OutboundTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport, with its connections opened by a `VettedBackend`."""

    def __init__(self, policy: OutboundPolicy, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False, limits=LIMITS)
        # httpx2 takes no network backend, its connection pool does: the pool is rebuilt with one.
        # tests/core/test_outbound_transport.py fails if a new httpx2 stops using `_pool`.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify, trust_env=False),
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=VettedBackend(policy),
        )
