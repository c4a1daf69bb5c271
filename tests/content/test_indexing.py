"""What indexing writes for a document version (content/indexing.py): vectors through the
embedding cache, chunks made live or not, postings in the lexical index, and their withdrawal."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.content.indexing import (
    INDEX_NAME,
    EmbedCount,
    embed_chunks,
    publish_version,
    text_hash,
    vector_literal,
    withdraw_document,
)
from quire.content.models import Chunk, Document, Version, VersionStatus
from quire.core.db import Database
from quire.core.embeddings import Embedder, HashingEmbedder
from quire.core.models import Tenant


class CountingEmbedder(Embedder):
    """The hashing embedder under another model name, keeping every text it was asked for."""

    def __init__(self, name: str = "counting") -> None:
        self.name = name
        self.dim = HashingEmbedder().dim
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return HashingEmbedder().embed(texts)


def make_tenant(database: Database) -> uuid.UUID:
    with database.system_session() as session:
        tenant = Tenant(name=f"unit-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
    return tenant.id


@pytest.fixture
def tenant_id(database: Database) -> uuid.UUID:
    return make_tenant(database)


def make_document(session: Session, tenant_id: uuid.UUID, title: str = "Travel handbook") -> Document:
    document = Document(tenant_id=tenant_id, source_key=f"handbook-{uuid.uuid4()}", title=title)
    session.add(document)
    session.flush()
    return document


def make_version(
    session: Session, document: Document, number: int, *texts: str
) -> tuple[Version, list[Chunk]]:
    """A parsed and chunked version (as ingestion leaves it for indexing), with a chunk per text."""
    version = Version(
        tenant_id=document.tenant_id,
        document_id=document.id,
        number=number,
        sha256=uuid.uuid4().hex * 2,
        size_bytes=100,
        filename="handbook.md",
        content_type="text/markdown",
        blob_key=uuid.uuid4().hex,
        status=VersionStatus.embedded,
    )
    session.add(version)
    session.flush()
    chunks = [
        Chunk(
            tenant_id=document.tenant_id,
            document_id=document.id,
            version_id=version.id,
            collection=document.collection,
            ord=ord_,
            text=body,
            element_ids=[uuid.uuid4()],
            section_path=["Flights"],
            text_hash=text_hash(body),
        )
        for ord_, body in enumerate(texts)
    ]
    session.add_all(chunks)
    session.flush()
    return version, chunks


def embed(session: Session, chunks: list[Chunk], embedder: Embedder) -> EmbedCount:
    return embed_chunks(
        session,
        tenant_id=chunks[0].tenant_id,
        chunks=[(c.id, c.text_hash, c.text) for c in chunks],
        embedder=embedder,
    )


def cached(session: Session, model: str) -> dict[str, list[float]]:
    rows = session.execute(
        text("SELECT text_hash, embedding::text FROM content_embedding WHERE model = :m"), {"m": model}
    ).all()
    return {row[0]: json.loads(row[1]) for row in rows}


def live_chunks(session: Session, document: Document) -> set[uuid.UUID]:
    return set(
        session.exec(
            select(Chunk.id).where(Chunk.document_id == document.id, col(Chunk.live).is_(True))
        ).all()
    )


def posted(session: Session, chunks: list[Chunk]) -> dict[uuid.UUID, set[str]]:
    """The lexemes each of `chunks` has in the content index."""
    rows = session.execute(
        text(
            "SELECT item_id, lexeme FROM core_search_posting "
            "WHERE index_name = :index AND item_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"index": INDEX_NAME, "ids": [c.id for c in chunks]},
    ).all()
    found: dict[uuid.UUID, set[str]] = {}
    for item_id, lexeme in rows:
        found.setdefault(item_id, set()).add(lexeme)
    return found


def indexed_docs(session: Session) -> int:
    value = session.execute(
        text("SELECT coalesce(sum(docs), 0) FROM core_search_stats WHERE index_name = :index"),
        {"index": INDEX_NAME},
    ).scalar_one()
    return int(value)


FLIGHTS = "Employees book flights through the travel portal."
ECONOMY = "Economy class is the default for flights under six hours."
HOTELS = "Hotels are reimbursed up to 150 euros per night."


def test_the_helpers_hash_text_and_write_vectors_postgresql_reads(
    database: Database, tenant_id: uuid.UUID
) -> None:
    assert text_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert vector_literal([1.0, 0.5, -0.25, 1e-9]) == "[1,0.5,-0.25,1e-09]"
    with database.tenant_session(tenant_id) as session:
        value = session.execute(text("SELECT CAST(:v AS vector)::text"), {"v": vector_literal([0.5, -2.0])})
        assert value.scalar_one() == "[0.5,-2]"


def test_only_texts_the_cache_lacks_are_embedded(database: Database, tenant_id: uuid.UUID) -> None:
    embedder = CountingEmbedder()
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id)
        _, first = make_version(session, document, 1, FLIGHTS, ECONOMY, FLIGHTS)
        assert embed(session, first, embedder) == EmbedCount(embedded=2, reused=0)
        assert embedder.texts == [FLIGHTS, ECONOMY]  # the repeated text once
        vectors = cached(session, embedder.name)
        assert set(vectors) == {text_hash(FLIGHTS), text_hash(ECONOMY)}
        assert vectors[text_hash(ECONOMY)] == pytest.approx(HashingEmbedder().embed_one(ECONOMY), abs=1e-6)

        # The next version keeps two texts and adds one: only the new one is embedded.
        _, second = make_version(session, document, 2, FLIGHTS, ECONOMY, HOTELS)
        assert embed(session, second, embedder) == EmbedCount(embedded=1, reused=2)
        assert embedder.texts == [FLIGHTS, ECONOMY, HOTELS]
        assert embed_chunks(session, tenant_id=tenant_id, chunks=[], embedder=embedder) == EmbedCount(0, 0)


def test_the_cache_is_kept_per_model_and_per_tenant(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        _, chunks = make_version(session, make_document(session, tenant_id), 1, FLIGHTS)
        embed(session, chunks, CountingEmbedder("model-a"))
        other_model = CountingEmbedder("model-b")
        assert embed(session, chunks, other_model) == EmbedCount(embedded=1, reused=0)
        assert other_model.texts == [FLIGHTS]
        session.commit()  # kept: the other tenant's session below must be able to see it if it leaked
    other = make_tenant(database)
    with database.tenant_session(other) as session:
        _, chunks = make_version(session, make_document(session, other), 1, FLIGHTS)
        assert cached(session, "model-a") == {}  # another tenant's cache is not read
        assert embed(session, chunks, CountingEmbedder("model-a")) == EmbedCount(embedded=1, reused=0)
    with database.tenant_session(tenant_id) as session:  # while the tenant's own is still there
        assert set(cached(session, "model-a")) == {text_hash(FLIGHTS)}
        _, chunks = make_version(session, make_document(session, tenant_id), 1, FLIGHTS)
        assert embed(session, chunks, CountingEmbedder("model-a")) == EmbedCount(embedded=0, reused=1)


def test_publishing_makes_a_version_live_with_its_vectors_and_postings(
    database: Database, tenant_id: uuid.UUID
) -> None:
    embedder = CountingEmbedder()
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id)
        version, chunks = make_version(session, document, 1, FLIGHTS, ECONOMY)
        embed(session, chunks, embedder)
        docs_before = indexed_docs(session)
        assert publish_version(session, version_id=version.id, model=embedder.name) is True

        session.flush()  # as the caller commits
        session.expire_all()
        assert session.get(Document, document.id).latest_version_id == version.id  # type: ignore[union-attr]
        published = session.get(Version, version.id)
        assert published is not None and published.status == VersionStatus.indexed
        assert published.indexed_at is not None
        assert live_chunks(session, document) == {c.id for c in chunks}
        for chunk in chunks:
            stored = session.get(Chunk, chunk.id)
            assert stored is not None and stored.embedding is not None
            assert list(stored.embedding) == pytest.approx(HashingEmbedder().embed_one(chunk.text), abs=1e-6)
        postings = posted(session, chunks)
        # Each chunk is indexed with its document's title and headings (stemmed).
        assert postings[chunks[0].id] >= {"employe", "book", "flight", "travel", "portal", "handbook"}
        assert postings[chunks[1].id] >= {"economi", "class", "default", "six", "hour", "handbook"}
        assert indexed_docs(session) == docs_before + 2


def test_a_new_version_takes_the_previous_ones_place_in_search(
    database: Database, tenant_id: uuid.UUID
) -> None:
    embedder = CountingEmbedder()
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id)
        first, old = make_version(session, document, 1, FLIGHTS, ECONOMY)
        embed(session, old, embedder)
        publish_version(session, version_id=first.id, model=embedder.name)
        docs_before = indexed_docs(session)

        second, new = make_version(session, document, 2, FLIGHTS, HOTELS)
        embed(session, new, embedder)
        assert publish_version(session, version_id=second.id, model=embedder.name) is True
        session.flush()  # as the caller commits
        session.expire_all()
        assert live_chunks(session, document) == {c.id for c in new}
        assert posted(session, old) == {}
        assert set(posted(session, new)) == {c.id for c in new}
        assert indexed_docs(session) == docs_before  # two out, two in
        assert session.get(Document, document.id).latest_version_id == second.id  # type: ignore[union-attr]


def test_an_older_version_finishing_last_stays_out_of_search(
    database: Database, tenant_id: uuid.UUID
) -> None:
    embedder = CountingEmbedder()
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id)
        first, old = make_version(session, document, 1, FLIGHTS)
        second, new = make_version(session, document, 2, HOTELS)
        embed(session, old + new, embedder)
        assert publish_version(session, version_id=second.id, model=embedder.name) is True
        assert publish_version(session, version_id=first.id, model=embedder.name) is False

        session.flush()  # as the caller commits
        session.expire_all()
        assert session.get(Document, document.id).latest_version_id == second.id  # type: ignore[union-attr]
        assert live_chunks(session, document) == {new[0].id}
        assert posted(session, old) == {}
        # Still indexed, with its vectors, for a search inside that version.
        late = session.get(Version, first.id)
        assert late is not None and late.status == VersionStatus.indexed
        stored = session.get(Chunk, old[0].id)
        assert stored is not None and stored.embedding is not None and stored.live is False


def test_a_deleted_documents_new_version_is_not_made_live(database: Database, tenant_id: uuid.UUID) -> None:
    embedder = CountingEmbedder()
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id)
        document.deleted_at = document.created_at
        session.add(document)
        version, chunks = make_version(session, document, 1, FLIGHTS)
        embed(session, chunks, embedder)
        assert publish_version(session, version_id=version.id, model=embedder.name) is True
        session.flush()  # as the caller commits
        session.expire_all()
        assert session.get(Document, document.id).latest_version_id == version.id  # type: ignore[union-attr]
        assert live_chunks(session, document) == set()
        assert posted(session, chunks) == {}
        stored = session.get(Chunk, chunks[0].id)
        assert stored is not None and stored.embedding is not None


def test_withdrawing_a_document_takes_its_chunks_out_of_search(
    database: Database, tenant_id: uuid.UUID
) -> None:
    embedder = CountingEmbedder()
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id)
        other = make_document(session, tenant_id, title="Hardware policy")
        version, chunks = make_version(session, document, 1, FLIGHTS, ECONOMY)
        other_version, other_chunks = make_version(session, other, 1, HOTELS)
        embed(session, chunks + other_chunks, embedder)
        publish_version(session, version_id=version.id, model=embedder.name)
        publish_version(session, version_id=other_version.id, model=embedder.name)
        docs_before = indexed_docs(session)

        assert withdraw_document(session, document=document) == 2
        session.flush()  # as the caller commits
        session.expire_all()
        assert live_chunks(session, document) == set()
        assert posted(session, chunks) == {}
        assert indexed_docs(session) == docs_before - 2
        # The other document is untouched, and a second withdrawal finds nothing.
        assert live_chunks(session, other) == {other_chunks[0].id}
        assert set(posted(session, other_chunks)) == {other_chunks[0].id}
        assert withdraw_document(session, document=document) == 0


def test_publishing_a_version_again_changes_nothing(database: Database, tenant_id: uuid.UUID) -> None:
    """A worker that retries the step publishes the same version twice."""
    embedder = CountingEmbedder()
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id)
        version, chunks = make_version(session, document, 1, FLIGHTS, ECONOMY)
        embed(session, chunks, embedder)
        publish_version(session, version_id=version.id, model=embedder.name)
        session.flush()
        docs, postings = indexed_docs(session), posted(session, chunks)
        assert publish_version(session, version_id=version.id, model=embedder.name) is True
        session.flush()
        session.expire_all()
        assert live_chunks(session, document) == {c.id for c in chunks}
        assert posted(session, chunks) == postings
        assert indexed_docs(session) == docs
