"""The MCP servers a tenant imports tools from, and what crosses the API about them.

Environment values, header values and the URL's query are secrets (tokens, keys): they are
stored encrypted (`credentials`, see `quire.agent.mcp.credentials`), used to connect, and never
shown, logged or returned; the API shows the names and the URL without its query.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Column, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField

from quire.core.errors import OutboundRefused
from quire.core.models import TenantScoped, timestamp_column, utcnow
from quire.core.outbound import url_target
from quire.core.pages import ListPage

Transport = Literal["stdio", "http"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"


class McpServer(TenantScoped, table=True):
    __tablename__ = "agent_mcp_server"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_agent_mcp_server_name"),)

    id: uuid.UUID = SQLField(default_factory=uuid.uuid4, primary_key=True)
    name: str = SQLField(max_length=100)
    transport: str = SQLField(max_length=20)
    command: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    args: list[str] = SQLField(default_factory=list, sa_column=Column(JSONB, nullable=False))
    url: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))  # without its query
    env_names: list[str] = SQLField(default_factory=list, sa_column=Column(JSONB, nullable=False))
    header_names: list[str] = SQLField(default_factory=list, sa_column=Column(JSONB, nullable=False))
    credentials: str = SQLField(sa_column=Column(Text, nullable=False))  # encrypted; see credentials.py
    enabled: bool = True
    tool_count: int = 0
    last_synced_at: datetime | None = SQLField(default=None, sa_column=timestamp_column(nullable=True))
    last_error: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = SQLField(default_factory=utcnow, sa_column=timestamp_column())

    @property
    def source(self) -> str:
        """The catalog source of this server's tools."""
        return source_of(self.name)


def source_of(name: str) -> str:
    return f"mcp:{name}"


class McpServerCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, description="Names the server; its tools' source is mcp:<name>.")
    transport: Transport
    command: str | None = Field(default=None, max_length=2000, description="stdio: the program to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, str] = Field(
        default_factory=dict, description="stdio: extra environment variables (kept secret)."
    )
    url: str | None = Field(default=None, max_length=2000, description="http: the streamable-HTTP endpoint.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="http: headers sent with every request (kept secret)."
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _fits_transport(self) -> McpServerCreate:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio server needs a command")
        if self.transport == "http":
            if not self.url:
                raise ValueError("an http server needs an http:// or https:// url")
            try:
                url_target(self.url)
            except OutboundRefused as refused:
                raise ValueError(str(refused)) from None
        return self


def safe_url(url: str | None) -> str | None:
    """The URL without credentials or query (either may carry a token)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class McpServerPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    transport: str
    command: str | None
    args: list[str]
    env_names: list[str] = Field(description="The environment variables set; their values are secret.")
    url: str | None
    header_names: list[str] = Field(description="The headers sent; their values are secret.")
    enabled: bool
    tool_count: int
    last_synced_at: datetime | None
    last_error: str | None
    created_at: datetime

    @classmethod
    def of(cls, server: McpServer) -> McpServerPublic:
        data: dict[str, Any] = {
            name: getattr(server, name)
            for name in (
                "id",
                "name",
                "transport",
                "command",
                "args",
                "enabled",
                "tool_count",
                "last_synced_at",
                "last_error",
                "created_at",
            )
        }
        return cls(
            **data,
            env_names=sorted(server.env_names),
            url=safe_url(server.url),
            header_names=sorted(server.header_names),
        )


class McpServersPublic(ListPage):
    data: list[McpServerPublic]


class McpSyncPublic(BaseModel):
    """What one sync did: the catalog's changes, or the error (the catalog then stays as it was)."""

    server: McpServerPublic
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[str] = Field(
        default_factory=list, description="Tools left out: their names belong to another source."
    )
    error: str | None = None
