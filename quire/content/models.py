"""Documents, their immutable versions, the elements and chunks of each version."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Text, UniqueConstraint
from sqlalchemy import text as sa_text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import Integer, Uuid
from sqlmodel import Field

from quire.core.embeddings import DIMENSIONS
from quire.core.models import TenantScoped, enum_column, timestamp_column, utcnow
from quire.core.pages import ListPage

DEFAULT_COLLECTION = "default"


def collection_name(collection: str | None) -> str:
    """A collection's name as stored: trimmed, at most 200 characters, or the default."""
    return (collection or DEFAULT_COLLECTION).strip()[:200] or DEFAULT_COLLECTION


class VersionStatus(enum.StrEnum):
    stored = "stored"  # the bytes are safe; ingestion has not started or is queued
    parsing = "parsing"
    parsed = "parsed"
    chunked = "chunked"
    embedded = "embedded"
    indexed = "indexed"  # searchable: the end of a good ingestion
    empty = "empty"  # parsed, nothing to index
    unsupported = "unsupported"  # a type Quire cannot read, or an image without text
    failed = "failed"  # encrypted, corrupt, over a limit; the reason is kept

    @property
    def final(self) -> bool:
        return self in {
            VersionStatus.indexed,
            VersionStatus.empty,
            VersionStatus.unsupported,
            VersionStatus.failed,
        }


class Document(TenantScoped, table=True):
    """A document's stable identity: (tenant, collection, source key)."""

    __tablename__ = "content_document"
    __table_args__ = (
        UniqueConstraint("tenant_id", "collection", "source_key", name="uq_content_document_source"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    collection: str = Field(default=DEFAULT_COLLECTION, max_length=200, index=True)
    source_key: str = Field(max_length=1000)
    title: str = Field(max_length=1000)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False))
    latest_version_id: uuid.UUID | None = Field(default=None, description="The version search uses.")
    version_count: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    deleted_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    deleted_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Version(TenantScoped, table=True):
    """One upload of different bytes: immutable, numbered from 1."""

    __tablename__ = "content_version"
    __table_args__ = (UniqueConstraint("document_id", "number", name="uq_content_version_number"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="content_document.id", index=True, ondelete="CASCADE")
    number: int
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int
    filename: str = Field(max_length=1000)
    # The title it gives its document: the one its upload named, else its first heading (set when
    # it is parsed); None: neither, and the file name stands in (content/titles.py).
    title: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    content_type: str = Field(max_length=200)
    blob_key: str = Field(max_length=64)
    status: VersionStatus = Field(default=VersionStatus.stored, sa_column=enum_column(VersionStatus))
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error_code: str | None = Field(default=None, max_length=40)
    # What is wrong with the parsed text, or was repaired: [{"code", "message", "pages"}, ...].
    warnings: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=sa_text("'[]'::jsonb")),
    )
    run_id: uuid.UUID | None = Field(default=None, foreign_key="runtime_run.id")
    page_count: int | None = None
    element_count: int = 0
    chunk_count: int = 0
    created_by: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    indexed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Element(TenantScoped, table=True):
    """A structural element of a version. `element_id` survives into the next version when the
    element did not change, or changed in place (then its `content_hash` differs)."""

    __tablename__ = "content_element"

    version_id: uuid.UUID = Field(foreign_key="content_version.id", primary_key=True, ondelete="CASCADE")
    element_id: uuid.UUID = Field(primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="content_document.id", index=True, ondelete="CASCADE")
    ord: int
    type: str = Field(max_length=40)
    text: str = Field(sa_column=Column(Text, nullable=False))
    html: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    page: int | None = None
    section_path: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    content_hash: str = Field(max_length=64)
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False))


class Chunk(TenantScoped, table=True):
    """A piece of a version sized for retrieval, following its structure; `live` while its version
    is the document's searchable one."""

    __tablename__ = "content_chunk"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="content_document.id", index=True, ondelete="CASCADE")
    version_id: uuid.UUID = Field(foreign_key="content_version.id", index=True, ondelete="CASCADE")
    collection: str = Field(max_length=200)
    ord: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    element_ids: list[uuid.UUID] = Field(sa_column=Column(ARRAY(Uuid()), nullable=False))
    pages: list[int] = Field(default_factory=list, sa_column=Column(ARRAY(Integer()), nullable=False))
    section_path: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    text_hash: str = Field(max_length=64, description="SHA-256 of the text that is embedded.")
    embedding: list[float] | None = Field(default=None, sa_column=Column(Vector(DIMENSIONS), nullable=True))
    live: bool = False


class Embedding(TenantScoped, table=True):
    """Embeddings already computed, by (model, text hash): unchanged text is never embedded twice."""

    __tablename__ = "content_embedding"

    model: str = Field(primary_key=True, max_length=200)
    text_hash: str = Field(primary_key=True, max_length=64)
    tenant_id: uuid.UUID = Field(foreign_key="core_tenant.id", primary_key=True, ondelete="CASCADE")
    embedding: list[float] = Field(sa_column=Column(Vector(DIMENSIONS), nullable=False))


# What crosses the API.


class VersionWarning(BaseModel):
    """Something wrong with a version's text, or repaired, and the pages it concerns."""

    code: str
    message: str
    pages: list[int]


class DocumentVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    sha256: str
    size_bytes: int
    filename: str
    title: str | None = Field(
        default=None,
        description="The title it gives its document: its upload's, else its first heading; "
        "null before it is parsed, or when it has neither (the file name stands in).",
    )
    content_type: str
    status: VersionStatus
    status_reason: str | None
    error_code: str | None
    warnings: list[VersionWarning]
    run_id: uuid.UUID | None
    page_count: int | None
    element_count: int
    chunk_count: int
    created_at: datetime
    indexed_at: datetime | None


class DocumentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    collection: str
    source_key: str
    title: str
    tags: list[str]
    metadata: dict[str, Any]
    latest_version_id: uuid.UUID | None
    version_count: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class DocumentDetail(DocumentPublic):
    versions: list[DocumentVersionPublic]


class DocumentsPublic(ListPage):
    data: list[DocumentPublic]


class CollectionPublic(BaseModel):
    name: str = Field(description="A collection is named by the name its documents share.")
    documents: int = Field(description="Documents in it, deleted ones left out.")


class CollectionsPublic(ListPage):
    data: list[CollectionPublic]


class ElementPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Stays the same in the next version when the element did not change.")
    ord: int
    type: str
    text: str
    html: str | None
    page: int | None
    section_path: list[str]
    content_hash: str
    metadata: dict[str, Any]


class VersionDetail(DocumentVersionPublic):
    document_id: uuid.UUID
    elements: list[ElementPublic]


class VersionElement(BaseModel):
    """An element of a version, as a page of them lists it."""

    id: uuid.UUID = Field(
        description="The element's id; it survives into later versions while the element does."
    )
    position: int = Field(description="Its place in the version, from 0.")
    type: str
    text: str
    html: str | None
    page: int | None
    section: list[str] = Field(description="The headings it sits under, outermost first.")
    content_hash: str
    metadata: dict[str, Any]


class VersionElements(BaseModel):
    data: list[VersionElement]
    count: int = Field(description="The version's elements, on every page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class VersionChunk(BaseModel):
    """A chunk of a version: a piece sized for retrieval, and the elements it covers."""

    id: uuid.UUID
    position: int = Field(description="Its place in the version, from 0.")
    text: str
    page: int | None = Field(description="The first page it covers.")
    pages: list[int]
    section: list[str] = Field(description="The headings it sits under, outermost first.")
    element_ids: list[uuid.UUID] = Field(description="The elements it covers, in order.")


class VersionChunks(BaseModel):
    data: list[VersionChunk]
    count: int = Field(description="The version's chunks, on every page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class UploadResult(BaseModel):
    document_id: uuid.UUID
    version_id: uuid.UUID
    version_number: int
    run_id: uuid.UUID | None
    created: bool
    retried: bool = False  # the same bytes as a version whose ingestion failed: it runs again
    status: VersionStatus
    message: str

    @classmethod
    def of(
        cls, version: Version, *, run_id: uuid.UUID | None, created: bool, message: str, retried: bool = False
    ) -> UploadResult:
        """The answer to an upload that ended at `version` (new, retried or unchanged)."""
        return cls(
            document_id=version.document_id,
            version_id=version.id,
            version_number=version.number,
            run_id=run_id,
            created=created,
            retried=retried,
            status=version.status,
            message=message,
        )


class ElementChange(BaseModel):
    element_id: uuid.UUID
    type: str
    before: str | None
    after: str | None
    page: int | None
    section_path: list[str]


class VersionDiff(BaseModel):
    document_id: uuid.UUID
    from_version: int
    to_version: int
    added: list[ElementChange]
    removed: list[ElementChange]
    changed: list[ElementChange]
    unchanged: int


class Citation(BaseModel):
    """Where a search hit comes from, under the names an answer's citation uses for them
    (`title`, `version`, `section`, `element_id`, `page`, … of `AnswerCitation`)."""

    document_id: uuid.UUID
    title: str = Field(description="The document's title.")
    collection: str
    version: int = Field(description="The document version's number.")
    version_id: uuid.UUID
    chunk_id: uuid.UUID
    element_id: uuid.UUID | None = Field(description="The first element the passage covers.")
    element_ids: list[uuid.UUID] = Field(description="Every element it covers, in order.")
    page: int | None = Field(description="The first page of the passage.")
    pages: list[int]
    section: list[str] = Field(description="The headings over it, outermost first.")
    snippet: str = Field(description="The passage around the query's words, which are marked «like this».")


class SearchHit(BaseModel):
    score: float
    lexical_score: float | None
    dense_score: float | None
    text: str
    citation: Citation


class SearchResults(BaseModel):
    query: str
    hits: list[SearchHit]
    took_ms: float
