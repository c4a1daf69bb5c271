"""Blob storage: the original bytes of every upload, kept by their SHA-256.

`FileBlobStore` keeps them under the data folder; another store (S3-compatible, say) only has to
implement the four methods of `BlobStore`, and no caller changes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from quire.core.errors import NotFound


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


class FileBlobStore(BlobStore):
    """Blobs as files `root/ab/cd/abcd…`, written atomically (temporary file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise BlobNotFound(f"not a blob key: {key!r}")
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
