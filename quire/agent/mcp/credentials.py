"""An MCP server's secrets as stored: environment and header values, and the whole URL (its query
may hold a token), sealed in one encrypted column. Their names and the URL without its query stay
readable, for the API to show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from quire.agent.mcp.models import McpServer, safe_url
from quire.core.db import Database
from quire.core.encryption import Encryptor


@dataclass(frozen=True)
class McpCredentials:
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    url: str | None = None


def credential_columns(encryptor: Encryptor, credentials: McpCredentials) -> dict[str, Any]:
    """The server's columns for its URL and secrets: readable ones get names only."""
    shown = safe_url(credentials.url)
    sealed: dict[str, Any] = {"env": credentials.env, "headers": credentials.headers}
    if credentials.url != shown:
        sealed["url"] = credentials.url
    return {
        "url": shown,
        "env_names": sorted(credentials.env),
        "header_names": sorted(credentials.headers),
        "credentials": encryptor.encrypt(sealed),
    }


def read_credentials(server: McpServer, encryptor: Encryptor) -> McpCredentials:
    """The server's secrets; UndecryptableSecret (naming QUIRE_SECRET_KEY) with the wrong key."""
    opened = encryptor.decrypt(server.credentials)
    return McpCredentials(
        env=dict(opened.get("env") or {}),
        headers=dict(opened.get("headers") or {}),
        url=opened.get("url") or server.url,
    )


def check_credentials_key(database: Database, encryptor: Encryptor) -> None:
    """Raise UndecryptableSecret (naming QUIRE_SECRET_KEY) unless `encryptor` opens the stored MCP
    credentials, so that a process started with the wrong key stops at once, not in a sync."""
    with database.system_session() as system:  # any tenant's server will do: they share one key
        server = system.exec(select(McpServer).limit(1)).first()
    if server is not None:
        read_credentials(server, encryptor)
