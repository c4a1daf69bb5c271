"""Both blob stores keep bytes by their hash, store each once, and refuse keys that are not hashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from quire.core.blobs import BlobNotFound, BlobStore, DatabaseBlobStore, blob_key, blob_store
from quire.core.db import Database
from quire.core.errors import ConfigurationError


@pytest.fixture(params=["folder", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, session_database: Database) -> Iterator[BlobStore]:
    if request.param == "folder":
        yield blob_store(str(tmp_path / "shared"), data_dir=tmp_path, database=None)
        return
    yield blob_store("postgres", data_dir=tmp_path, database=session_database)
    with session_database.system_session() as session:
        session.execute(text("DELETE FROM core_blob"))
        session.commit()


def test_a_blob_is_kept_once_by_its_hash(store: BlobStore) -> None:
    data = b"%PDF-1.7 pretend" * 1000
    key = store.put(data)
    assert key == blob_key(data) and store.put(data) == key
    assert store.exists(key) and store.get(key) == data and store.size(key) == len(data)
    missing = blob_key(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(BlobNotFound):
        store.get(missing)
    with pytest.raises(BlobNotFound, match="not a blob key"):
        store.get("../../etc/passwd")


def test_the_setting_picks_the_store(tmp_path: Path, session_database: Database) -> None:
    assert blob_store("", data_dir=tmp_path, database=None).root == tmp_path / "blobs"  # type: ignore[attr-defined]
    assert isinstance(blob_store("postgres", data_dir=tmp_path, database=session_database), DatabaseBlobStore)
    with pytest.raises(ConfigurationError, match="needs the database"):
        blob_store("postgres", data_dir=tmp_path, database=None)
