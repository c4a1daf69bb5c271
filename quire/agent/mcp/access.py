"""What a process needs to reach tenants' MCP servers: where it may connect (the outbound policy)
and the key that opens their stored credentials. Built from the settings at the edge, passed down."""

from __future__ import annotations

from dataclasses import dataclass

from quire.core.encryption import Encryptor
from quire.core.outbound import OutboundPolicy
from quire.core.secrets import derive, secret_key
from quire.core.settings import Settings

CREDENTIALS_PURPOSE = "mcp-credentials"


@dataclass(frozen=True)
class McpAccess:
    outbound: OutboundPolicy
    credentials: Encryptor


def credentials_encryptor(secret: bytes) -> Encryptor:
    return Encryptor(derive(secret, CREDENTIALS_PURPOSE), what="MCP server credentials")


def mcp_access(settings: Settings) -> McpAccess:
    secret = secret_key(configured=settings.secret_key, data_dir=settings.data_dir)
    return McpAccess(
        outbound=OutboundPolicy.from_setting(settings.outbound_allow),
        credentials=credentials_encryptor(secret),
    )
