"""Blob storage: the original bytes of every upload, kept by their SHA-256.

`FileBlobStore` keeps them in a folder (under the data folder, or a mount every host shares);
`DatabaseBlobStore` keeps them in PostgreSQL, for hosts that share nothing but the database.
Another store (S3-compatible, say) only has to implement the four methods of `BlobStore`, and
no caller changes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from quire.core.errors import ConfigurationError, NotFound

if TYPE_CHECKING:
    from quire.core.db import Database


def blob_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobNotFound(NotFound):
    code = "blob_not_found"


class BlobStore(ABC):
    """Content-addressed storage: a blob's key is the SHA-256 of its bytes."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store `data` (a no-op when it is there already) and return its key."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes stored under `key`, or BlobNotFound."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...


def check_key(key: str) -> str:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise BlobNotFound(f"not a blob key: {key!r}")
    return key


class FileBlobStore(BlobStore):
    """Blobs as files `root/ab/cd/abcd…`, written atomically (temporary file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {key}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {key}") from None


class DatabaseBlobStore(BlobStore):
    """Blobs as rows of `core_blob`, each written in a transaction of its own (like a file)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        with self.database.system_session() as session:
            session.execute(
                text(
                    "INSERT INTO core_blob (key, size, data) VALUES (:key, :size, :data) "
                    "ON CONFLICT (key) DO NOTHING"
                ),
                {"key": key, "size": len(data), "data": data},
            )
            session.commit()
        return key

    def get(self, key: str) -> bytes:
        with self.database.system_session() as session:
            data = session.execute(
                text("SELECT data FROM core_blob WHERE key = :key"), {"key": check_key(key)}
            ).scalar()
        if data is None:
            raise BlobNotFound(f"no blob {key}")
        return bytes(data)

    def exists(self, key: str) -> bool:
        with self.database.system_session() as session:
            found = session.execute(
                text("SELECT 1 FROM core_blob WHERE key = :key"), {"key": check_key(key)}
            ).first()
        return found is not None

    def size(self, key: str) -> int:
        with self.database.system_session() as session:
            size = session.execute(
                text("SELECT size FROM core_blob WHERE key = :key"), {"key": check_key(key)}
            ).scalar()
        if size is None:
            raise BlobNotFound(f"no blob {key}")
        return int(size)


def blob_store(setting: str, *, data_dir: Path, database: Database | None) -> BlobStore:
    """The store QUIRE_BLOB_STORE names: empty (a folder in the data folder), a folder, or `postgres`."""
    if setting == "postgres":
        if database is None:
            raise ConfigurationError(
                "QUIRE_BLOB_STORE=postgres needs the database, and this process has none"
            )
        return DatabaseBlobStore(database)
    return FileBlobStore(Path(setting) if setting else data_dir / "blobs")
