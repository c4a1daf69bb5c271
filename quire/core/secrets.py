"""The installation's secret key, and the purpose-bound keys derived from it.

One secret (`QUIRE_SECRET_KEY`, or a random one kept in the data folder) is the root of every
key Quire needs beyond the database's own credentials: the key that signs a transaction's tenant
for row-level security (`quire.core.db`), and the key that encrypts MCP server credentials at
rest. Each use derives its own key with `derive(secret, purpose)`, so no two uses share one.
Every process of an installation must see the same secret: on several hosts, set it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)

SECRET_FILE = "secret-key"
MIN_BYTES = 32


def load_or_create(path: Path, *, size: int = MIN_BYTES) -> bytes:
    """The random secret kept in `path`, made (readable by its owner only) if missing.

    Processes that share the folder share the secret. Without a writable folder the secret lives
    in memory, and whatever it signs ends with the process.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            secret = path.read_bytes()
            if len(secret) >= MIN_BYTES:
                return secret
            raise OSError(f"{path} is shorter than {MIN_BYTES} bytes") from None
        secret = secrets.token_bytes(size)
        with os.fdopen(fd, "wb") as file:
            file.write(secret)
        return secret
    except OSError as error:
        logger.warning("a secret could not be kept in %s; it lasts as long as this process: %s", path, error)
        return secrets.token_bytes(size)


def secret_key(*, configured: str, data_dir: Path) -> bytes:
    """QUIRE_SECRET_KEY when set, else the installation's random key in the data folder."""
    if configured:
        return configured.encode()
    return load_or_create(data_dir / SECRET_FILE)


def derive(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose ("db-context", "mcp-credentials", …) from the root secret."""
    return hmac.new(secret, b"quire:" + purpose.encode(), hashlib.sha256).digest()
