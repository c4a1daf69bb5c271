"""Embedding chunks (through the cache), and putting a version into search or taking it out."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.content.chunking import search_text
from quire.content.models import Chunk, Document, Version, VersionStatus
from quire.content.titles import title_of
from quire.core.embeddings import Embedder
from quire.core.models import utcnow
from quire.core.search.dense import vector_literal
from quire.core.search.postings import index_items, unindex_items

INDEX_NAME = "content"


def text_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class EmbedCount:
    embedded: int  # computed now
    reused: int  # found in the cache


def embed_chunks(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    chunks: list[tuple[uuid.UUID, str, str]],
    embedder: Embedder,
) -> EmbedCount:
    """Put the vectors of chunks (id, text hash, text to embed) in the embedding cache,
    computing only texts it does not hold yet.

    The chunk rows get their vectors when the version is published (`publish_version`), in the
    same UPDATE that makes them live: a chunk row is too wide for PostgreSQL to update it in
    place, so each UPDATE writes a new row version and inserts it into the HNSW graph again; one
    UPDATE for the vector and another for the live flag put every chunk into the graph twice.
    """
    if not chunks:
        return EmbedCount(0, 0)
    hashes = sorted({digest for _, digest, _ in chunks})
    cached = {
        row[0]
        for row in session.execute(
            text(
                "SELECT text_hash FROM content_embedding "
                "WHERE model = :model AND text_hash = ANY(CAST(:hashes AS text[]))"
            ),
            {"model": embedder.name, "hashes": hashes},
        )
    }
    missing: dict[str, str] = {}
    for _, digest, body in chunks:
        if digest not in cached:
            missing.setdefault(digest, body)
    if missing:
        vectors = embedder.embed(list(missing.values()))
        session.execute(
            text(
                "INSERT INTO content_embedding (tenant_id, model, text_hash, embedding) "
                "SELECT :tenant_id, :model, h, CAST(v AS vector) "
                "FROM unnest(CAST(:hashes AS text[]), CAST(:vectors AS text[])) AS u(h, v) "
                "ON CONFLICT DO NOTHING"
            ),
            {
                "tenant_id": tenant_id,
                "model": embedder.name,
                "hashes": list(missing),
                "vectors": [vector_literal(v) for v in vectors],
            },
        )
    return EmbedCount(embedded=len(missing), reused=sum(1 for _, d, _ in chunks if d in cached))


def _attach_vectors(session: Session, *, version_id: uuid.UUID, model: str, live: bool) -> None:
    """Give a version's chunks their cached vectors (and the live flag) in one write per row."""
    session.execute(
        text(
            "UPDATE content_chunk AS c SET embedding = e.embedding, live = :live "
            "FROM content_embedding AS e "
            "WHERE c.version_id = :version_id AND e.tenant_id = c.tenant_id "
            "AND e.model = :model AND e.text_hash = c.text_hash"
        ),
        {"version_id": version_id, "model": model, "live": live},
    )


def _withdraw_live_chunks(session: Session, document_id: uuid.UUID) -> int:
    live_ids = list(
        session.exec(
            select(Chunk.id).where(Chunk.document_id == document_id, col(Chunk.live).is_(True))
        ).all()
    )
    if live_ids:
        unindex_items(session, index_name=INDEX_NAME, item_ids=live_ids)
        session.execute(
            text("UPDATE content_chunk SET live = false WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": live_ids},
        )
    return len(live_ids)


def publish_version(session: Session, *, version_id: uuid.UUID, model: str) -> bool:
    """Make `version_id` the version search uses, unless a newer one already is. Returns whether it did.

    Its chunks get their vectors of embedding model `model` from the cache either way (a search
    inside one version reads them)."""
    version = session.get(Version, version_id)
    assert version is not None
    document = session.get(Document, version.document_id, with_for_update=True)
    assert document is not None
    version.status = VersionStatus.indexed
    version.indexed_at = utcnow()
    session.add(version)
    if document.latest_version_id is not None and document.latest_version_id != version.id:
        current = session.get(Version, document.latest_version_id)
        if current is not None and current.number > version.number:
            # A newer version finished first; this one stays out of search.
            _attach_vectors(session, version_id=version.id, model=model, live=False)
            return False
    _withdraw_live_chunks(session, document.id)
    document.latest_version_id = version.id
    document.title = title_of(version)  # what its chunks were embedded with
    document.updated_at = utcnow()
    session.add(document)
    live = document.deleted_at is None
    _attach_vectors(session, version_id=version.id, model=model, live=live)
    if live:
        chunks = session.exec(select(Chunk).where(Chunk.version_id == version.id)).all()
        index_items(
            session,
            tenant_id=document.tenant_id,
            index_name=INDEX_NAME,
            items=[
                (chunk.id, search_text(document.title, chunk.section_path, chunk.text)) for chunk in chunks
            ],
        )
    return True


def withdraw_document(session: Session, *, document: Document) -> int:
    """Take a document's chunks out of search; returns how many."""
    return _withdraw_live_chunks(session, document.id)
