"""A switch that makes any connection to a real, paid model provider fail loudly in tests."""

from __future__ import annotations

import os
import socket
from typing import Any

REAL_PROVIDER_DOMAINS = (
    "api.openai.com",
    "openai.azure.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",
    "openrouter.ai",
    "api.mistral.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.deepseek.com",
)


class RealProviderBlocked(BaseException):
    """A test tried to reach a real model provider.

    A BaseException on purpose: the SDKs turn any Exception raised while connecting into
    their own retryable connection error, which would let a run fall back and hide the
    attempt; this one goes straight through them and fails the test.
    """


def is_real_provider(host: object) -> bool:
    """Whether a host name belongs to a paid provider (its domains, their subdomains, Azure
    OpenAI resources and Vertex AI's regional `<region>-aiplatform` hosts)."""
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    name = host.lower().rstrip(".")
    return any(
        name == domain or name.endswith(("." + domain, "-" + domain)) for domain in REAL_PROVIDER_DOMAINS
    )


def _refuse(host: object) -> None:
    if is_real_provider(host):
        raise RealProviderBlocked(
            f"a test tried to connect to the real model provider {host!r}; point the adapter "
            "at a fake server from tests/agent/fakes instead"
        )


def block_real_providers() -> None:
    """Patch name resolution and socket connections so real provider hosts cannot be reached.

    Idempotent; other hosts, localhost included, are untouched. Provider hosts are also put
    in NO_PROXY, so an HTTP proxy in the environment cannot carry a request past the check.
    """
    if getattr(socket.getaddrinfo, "_quire_guard", False):
        return
    original_getaddrinfo = socket.getaddrinfo
    original_create_connection = socket.create_connection

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse(host)
        return original_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        _refuse(address[0])
        return original_create_connection(address, *args, **kwargs)

    getaddrinfo._quire_guard = True  # type: ignore[attr-defined]
    socket.getaddrinfo = getaddrinfo
    socket.create_connection = create_connection

    for variable in ("NO_PROXY", "no_proxy"):
        entries = [entry for entry in os.environ.get(variable, "").split(",") if entry]
        missing = [domain for domain in REAL_PROVIDER_DOMAINS if domain not in entries]
        os.environ[variable] = ",".join(entries + missing)
