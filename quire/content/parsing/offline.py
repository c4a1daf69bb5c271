"""The parsing processes stay offline: every IP connection and DNS lookup in them raises.

Parsers of untrusted files should not fetch what a file points to (an external entity, a remote
image), and unstructured's own telemetry and model downloads must not run behind Quire's back.
"""

from __future__ import annotations

import socket
from typing import Any


class NetworkAccessForbidden(BaseException):
    """Raised when parsing code tries to reach the network.

    A BaseException, so that the `except Exception` clauses around unstructured's telemetry and
    downloads cannot swallow it: a parse that tries to go online fails loudly instead.
    """


_INET = (socket.AF_INET, socket.AF_INET6)
# Every address the parsing code tried to reach, even if something swallowed the exception.
NETWORK_ATTEMPTS: list[str] = []


def forbid_network() -> None:
    """Make every IP connection and DNS lookup in this process raise NetworkAccessForbidden."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def refuse(address: object) -> NetworkAccessForbidden:
        NETWORK_ATTEMPTS.append(str(address))
        return NetworkAccessForbidden(f"the parsing process may not use the network ({address})")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in _INET:
            raise refuse(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in _INET:
            raise refuse(address)
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise refuse(f"{host}:{port}")

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo
