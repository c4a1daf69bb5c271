"""Ingestion, a durable program: stored → parsed → chunked → embedded → indexed.

Each stage is a step whose database writes commit with it, so a worker that dies mid-way
resumes at the stage it was in, and no stage's rows are written twice. Parsing runs in a child
process with time and memory limits; a file that cannot be parsed ends its version as `failed`
or `unsupported` with the reason, and its bytes stay in the blob store.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel
from sqlalchemy import insert
from sqlmodel import Session, col, select

from quire.content.chunking import ChunkInput, ChunkOut, chunk_elements, search_text
from quire.content.elements import Previous, assign_ids, content_hash
from quire.content.environment import ContentEnvironment, content_of
from quire.content.indexing import embed_chunks, publish_version, text_hash
from quire.content.models import Chunk, Document, Element, Version, VersionStatus
from quire.content.parsing.results import ParsedDocument
from quire.content.titles import first_heading, title_of
from quire.core.embeddings import Embedder
from quire.core.memory import release_memory
from quire.runtime.context import RunContext
from quire.runtime.errors import StepFailed
from quire.runtime.programs import program
from quire.runtime.retry import RetryPolicy

logger = logging.getLogger(__name__)

PROGRAM = "content.ingest"
INGEST_PROGRESS = "ingest.progress"  # the event an ingestion run writes after each stage
EMBED_BATCH = 128
PARSE_RETRY = RetryPolicy(max_attempts=3, base_delay=2.0, max_delay=30.0)
# PDFs, Word files and HTML pages this large may be long enough to parse in parts: a child
# counts their pages (or blocks). XHTML is read as XML by unstructured, so it is not planned.
PLAN_FROM_BYTES = 64 * 1024
PLANNED_TYPES = {
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/html",
}
# Files this large parse as large work, which may not take every parsing child (parsing/server.py).
LARGE_FILE_BYTES = 1024 * 1024
# After writing this many elements, the worker hands the memory they took back to the machine.
RELEASE_AFTER_ELEMENTS = 2000
NO_TEXT = "no_text"  # the error code of a version that parsed but holds no text (status `empty`)


class ParsedLike(Protocol):
    """What write_elements needs of a parsed element (quire.content.parsing.ParsedElement)."""

    @property
    def type(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str | None: ...
    @property
    def page(self) -> int | None: ...
    @property
    def section_path(self) -> tuple[str, ...]: ...
    @property
    def metadata(self) -> dict[str, object]: ...


class IngestState(BaseModel):
    version_id: uuid.UUID
    status: VersionStatus | None = None
    elements: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0


def _version(ctx: RunContext, version_id: uuid.UUID) -> Version:
    version = ctx.session.get(Version, version_id, with_for_update=True)
    if version is None:
        raise LookupError(f"version {version_id} is gone")
    return version


def mark_parsing(ctx: RunContext, version_id: uuid.UUID) -> None:
    version = _version(ctx, version_id)
    version.status = VersionStatus.parsing
    ctx.session.add(version)


class ParsePlan(BaseModel):
    """How a version is parsed: whole (no parts), or a part at a time."""

    blob_key: str
    filename: str | None
    content_type: str | None
    parts: list[tuple[str, int, int]] = []  # quire.content.parsing.parts.Part


def plan_parsing(ctx: RunContext, version_id: uuid.UUID) -> ParsePlan:
    """Mark the version parsing, and split a long PDF, Word file or HTML page into parts (asking a child)."""
    environment = content_of(ctx.services)
    version = _version(ctx, version_id)
    version.status = VersionStatus.parsing
    ctx.session.add(version)
    plan = ParsePlan(blob_key=version.blob_key, filename=version.filename, content_type=version.content_type)
    if (
        environment.parse_range_pages
        and version.size_bytes >= PLAN_FROM_BYTES
        and version.content_type in PLANNED_TYPES
    ):
        from quire.content.parsing import ParseFailure
        from quire.content.parsing.parts import plan as plan_parts

        data = environment.blobs.get(version.blob_key)
        with contextlib.suppress(ParseFailure):  # parsed whole, it fails there with its reason
            plan.parts = list(
                environment.parser().run_in_child(
                    plan_parts, data, version.filename, version.content_type, environment.parse_range_pages
                )
            )
    return plan


@dataclass(frozen=True)
class ParsedPart:
    """A part of a document as its step records it: its elements, or why it could not be parsed."""

    document: ParsedDocument | None = None
    status: str | None = None  # the version's status when the part failed
    code: str | None = None
    reason: str | None = None


def parse_part(environment: ContentEnvironment, plan: ParsePlan, part: tuple[str, int, int]) -> ParsedPart:
    """Parse one part of a document (a step that holds no transaction while the child works)."""
    from quire.content.parsing import ParseFailure, ParserCrashed
    from quire.content.parsing.parts import Part
    from quire.content.parsing.parts import parse_part as parse_in_child

    data = environment.blobs.get(plan.blob_key)
    try:
        document = environment.parser().run_in_child(
            parse_in_child, data, plan.filename, plan.content_type, Part(*part), large=True
        )
    except ParserCrashed:
        raise  # a crash of the child may be the machine's, not the file's: try again
    except ParseFailure as failure:
        return ParsedPart(status=failure.status, code=failure.code, reason=str(failure))
    finally:
        del data
    return ParsedPart(document=document)


def write_parts(ctx: RunContext, version_id: uuid.UUID, parts: list[ParsedPart]) -> dict[str, object]:
    """Write the elements of a document parsed in parts, or the failure of the first part that failed."""
    from quire.content.parsing.parts import join

    failed = next((part for part in parts if part.document is None), None)
    if failed is not None:
        version = _version(ctx, version_id)
        version.status = VersionStatus(str(failed.status))
        version.status_reason = failed.reason
        version.error_code = failed.code
        ctx.session.add(version)
        return {"status": version.status.value, "reason": failed.reason}
    return write_parsed(
        ctx.session, _version(ctx, version_id), join([p.document for p in parts if p.document])
    )


def parse_version(ctx: RunContext, version_id: uuid.UUID) -> dict[str, object]:
    """Parse the stored bytes and write the elements, with ids carried over from the last version."""
    from quire.content.parsing import ParseFailure, ParserCrashed

    environment = content_of(ctx.services)
    session = ctx.session
    version = _version(ctx, version_id)
    data = environment.blobs.get(version.blob_key)
    try:
        parsed = environment.parser().parse(
            data,
            filename=version.filename,
            content_type=version.content_type,
            large=len(data) >= LARGE_FILE_BYTES,
        )
    except ParserCrashed:
        raise  # a crash of the child may be the machine's, not the file's: try again
    except ParseFailure as failure:
        version.status = VersionStatus(failure.status)
        version.status_reason = str(failure)
        version.error_code = failure.code
        session.add(version)
        return {"status": version.status.value, "reason": str(failure)}
    return write_parsed(session, version, parsed)


def write_parsed(session: Session, version: Version, parsed: ParsedDocument) -> dict[str, object]:
    """Write a parsed version's elements, or mark it empty."""
    version.content_type = parsed.content_type
    version.page_count = parsed.page_count
    version.warnings = [warning.as_json() for warning in parsed.warnings]
    elements = [e for e in parsed.elements if e.text.strip()]
    if not elements:
        version.status = VersionStatus.empty
        version.status_reason = "the file holds no text"
        version.error_code = NO_TEXT
        session.add(version)
        return {"status": version.status.value}

    write_elements(session, version, elements)
    if len(elements) >= RELEASE_AFTER_ELEMENTS:
        release_memory()  # a long document's elements were hundreds of MB of small objects
    return {"status": version.status.value, "elements": len(elements), "pages": parsed.page_count}


def write_elements(session: Session, version: Version, elements: Sequence[ParsedLike]) -> None:
    """Store a version's elements, with ids carried over from the document's previous version."""
    previous_version = session.exec(
        select(Version)
        .where(Version.document_id == version.document_id, col(Version.number) < version.number)
        .where(col(Version.element_count) > 0)
        .order_by(col(Version.number).desc())
        .limit(1)
    ).first()
    previous: list[Previous] = []
    if previous_version is not None:
        previous = [
            Previous(element_id=e.element_id, type=e.type, text=e.text, content_hash=e.content_hash)
            for e in session.exec(
                select(Element).where(Element.version_id == previous_version.id).order_by(col(Element.ord))
            )
        ]
    ids = assign_ids(previous, elements)
    # One multi-row INSERT of plain rows: the unit of work's objects and per-row statements
    # were a fifth of the worker's Python time during an ingest.
    session.execute(
        insert(Element),
        [
            {
                "tenant_id": version.tenant_id,
                "version_id": version.id,
                "document_id": version.document_id,
                "element_id": element_id,
                "ord": index,
                "type": element.type,
                "text": element.text,
                "html": element.html,
                "page": element.page,
                "section_path": list(element.section_path),
                "content_hash": content_hash(element),
                "meta": dict(element.metadata),
            }
            for index, (element, element_id) in enumerate(zip(elements, ids, strict=True))
        ],
    )
    version.status = VersionStatus.parsed
    version.element_count = len(elements)
    if version.title is None:  # a title its upload named stands
        version.title = first_heading((element.type, element.text) for element in elements)
    session.add(version)


def chunk_version(ctx: RunContext, version_id: uuid.UUID) -> int:
    return write_chunks(ctx.session, version_id)


def write_chunks(session: Session, version_id: uuid.UUID) -> int:
    """Chunk a version's elements and store the chunks (without vectors yet)."""
    version = session.get(Version, version_id, with_for_update=True)
    assert version is not None
    document = session.get(Document, version.document_id)
    assert document is not None
    elements = session.exec(
        select(Element).where(Element.version_id == version_id).order_by(col(Element.ord))
    ).all()
    chunks = chunk_elements(
        [ChunkInput(e.element_id, e.type, e.text, e.page, tuple(e.section_path)) for e in elements]
    )
    if chunks:
        session.execute(insert(Chunk), [_chunk_row(version, document, chunk) for chunk in chunks])
    version.status = VersionStatus.chunked
    version.chunk_count = len(chunks)
    session.add(version)
    return len(chunks)


def _chunk_row(version: Version, document: Document, chunk: ChunkOut) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": version.tenant_id,
        "document_id": version.document_id,
        "version_id": version.id,
        "collection": document.collection,
        "ord": chunk.ord,
        "text": chunk.text,
        "element_ids": chunk.element_ids,
        "pages": chunk.pages,
        "section_path": chunk.section_path,
        "text_hash": text_hash(search_text(title_of(version), chunk.section_path, chunk.text)),
    }


def embed_batch(ctx: RunContext, version_id: uuid.UUID, batch: int) -> dict[str, int]:
    return embed_version_batch(ctx.session, version_id, batch, content_of(ctx.services).embedder)


def embed_version_batch(
    session: Session, version_id: uuid.UUID, batch: int, embedder: Embedder
) -> dict[str, int]:
    """Vectors for one batch of a version's chunks, from the cache where it has them."""
    version = session.get(Version, version_id)
    assert version is not None
    chunks = session.exec(
        select(Chunk)
        .where(Chunk.version_id == version_id)
        .where(col(Chunk.ord) >= batch * EMBED_BATCH, col(Chunk.ord) < (batch + 1) * EMBED_BATCH)
        .order_by(col(Chunk.ord))
    ).all()
    counts = embed_chunks(
        session,
        tenant_id=version.tenant_id,
        chunks=[(c.id, c.text_hash, search_text(title_of(version), c.section_path, c.text)) for c in chunks],
        embedder=embedder,
    )
    return {"embedded": counts.embedded, "reused": counts.reused}


def mark_embedded(ctx: RunContext, version_id: uuid.UUID) -> None:
    version = _version(ctx, version_id)
    version.status = VersionStatus.embedded
    ctx.session.add(version)


def publish(ctx: RunContext, version_id: uuid.UUID) -> bool:
    return publish_version(ctx.session, version_id=version_id, model=content_of(ctx.services).embedder.name)


def mark_failed(ctx: RunContext, version_id: uuid.UUID, reason: str) -> None:
    version = _version(ctx, version_id)
    version.status = VersionStatus.failed
    version.status_reason = reason
    version.error_code = "ingest_failed"
    ctx.session.add(version)


def _parse_in_parts(ctx: RunContext, version_id: uuid.UUID) -> dict[str, object]:
    """Parse a version whole, or a long one a part at a time, each part a step of its own.

    A part's step holds no transaction while its child parses (`io=True`), so a 600-page
    document holds no database connection for minutes; a crash costs the part in progress.
    """
    plan = ctx.step("plan", plan_parsing, ctx, version_id, retry=PARSE_RETRY)
    if not plan.parts:
        return ctx.step("parse", parse_version, ctx, version_id, retry=PARSE_RETRY)
    environment = content_of(ctx.services)
    parts: list[ParsedPart] = []
    for unit, first, last in plan.parts:
        name = f"parse:{unit}:{first}-{last}"
        part = ctx.step(name, parse_part, environment, plan, (unit, first, last), retry=PARSE_RETRY, io=True)
        parts.append(part)
        ctx.emit(
            INGEST_PROGRESS, {"stage": "parse", "part": f"{unit} {first}-{last}", "parts": len(plan.parts)}
        )
        if part.document is None:
            break  # the file is broken there: the rest would not make a version
    return ctx.step("parse", write_parts, ctx, version_id, parts)


@program(PROGRAM, startable=False)
def ingest(ctx: RunContext, state: IngestState) -> IngestState:
    try:
        return _ingest(ctx, state)
    except StepFailed as failure:
        # A step ran out of attempts (a parser that crashes on every try, say): the run fails,
        # and the version says why instead of staying in the stage it reached.
        reason = f"ingestion stopped at its {failure.step!r} step: {failure.error}"
        ctx.step("fail", mark_failed, ctx, state.version_id, reason)
        raise


def _ingest(ctx: RunContext, state: IngestState) -> IngestState:
    version_id = state.version_id
    if ctx.patched("parse-in-parts"):
        parsed = _parse_in_parts(ctx, version_id)
    else:  # runs started before parts existed replay as they were recorded
        ctx.step("start", mark_parsing, ctx, version_id)
        parsed = ctx.step("parse", parse_version, ctx, version_id, retry=PARSE_RETRY)
    state.status = VersionStatus(str(parsed["status"]))
    ctx.emit(INGEST_PROGRESS, {"stage": "parse", **parsed})
    if state.status != VersionStatus.parsed:
        ctx.publish(state)
        return state
    state.elements = int(str(parsed.get("elements", 0)))

    state.chunks = ctx.step("chunk", chunk_version, ctx, version_id)
    ctx.emit(INGEST_PROGRESS, {"stage": "chunk", "chunks": state.chunks})
    batches = math.ceil(state.chunks / EMBED_BATCH)
    for batch in range(batches):
        counts = ctx.step(f"embed:{batch}", embed_batch, ctx, version_id, batch)
        state.embedded += counts["embedded"]
        state.reused += counts["reused"]
        ctx.emit(
            INGEST_PROGRESS,
            {"stage": "embed", "batch": batch + 1, "batches": batches, **counts},
        )
    ctx.step("embedded", mark_embedded, ctx, version_id)
    live = ctx.step("index", publish, ctx, version_id)
    state.status = VersionStatus.indexed
    ctx.emit(INGEST_PROGRESS, {"stage": "index", "searchable": live})
    for follow_up in content_of(ctx.services).after_index:
        ctx.start_child(follow_up, {"version_id": str(version_id)})
    ctx.publish(state)
    return state
