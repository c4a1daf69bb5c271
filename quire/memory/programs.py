"""Programs that connect documents to memory.

- `memory.on-version` runs after a document version is indexed: it sends back to review the
  memories whose quoted passage is no longer in the document, then proposes candidates from the
  version's new and changed elements.
- `memory.on-delete` runs when a document is deleted: its memories go back to review.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlmodel import Session, col, select

from quire.content import service as content_service
from quire.content.environment import content_of
from quire.content.models import Document, Element
from quire.content.models import Version as DocumentVersion
from quire.content.transcripts import TURN
from quire.core.embeddings import Embedder
from quire.memory.conversations import propose_episodes
from quire.memory.extraction import Passage, active_extractor
from quire.memory.follow_ups import ON_DOCUMENT_DELETED, ON_VERSION
from quire.memory.models import Evidence, EvidenceIn, MemoryProposal, MemoryVersion, VersionState
from quire.memory.proposals import propose
from quire.memory.quotes import find_quote
from quire.memory.rechecks import after_document_version
from quire.runtime.context import RunContext
from quire.runtime.process import Event
from quire.runtime.programs import program
from quire.runtime.signals import deliver_signal

LIVE_STATES = [VersionState.approved, VersionState.needs_recertification]


class OnVersion(BaseModel):
    version_id: uuid.UUID
    sent_back: int = 0
    proposed: int = 0


class OnDelete(BaseModel):
    document_id: uuid.UUID
    sent_back: int = 0


def _send_back(ctx: RunContext, versions: list[MemoryVersion], reason: str) -> int:
    count = 0
    for version in versions:
        if version.run_id is None:
            continue
        deliver_signal(
            ctx.session,
            run_id=version.run_id,
            name="event",
            key=f"source-lost:{ctx.run_id}",
            payload=Event(name="source_lost", actor="system", data={"reason": reason}).model_dump(
                mode="json"
            ),
            kicker=ctx.executor.kicker,
        )
        count += 1
    return count


def _live_versions_citing(session: Session, document_id: uuid.UUID) -> list[tuple[MemoryVersion, Evidence]]:
    return list(
        session.exec(
            select(MemoryVersion, Evidence)
            .join(Evidence, col(Evidence.version_id) == col(MemoryVersion.id))
            .where(Evidence.document_id == document_id, col(MemoryVersion.state).in_(LIVE_STATES))
        ).all()
    )


def verify_sources(ctx: RunContext, version_id: uuid.UUID) -> int:
    session = ctx.session
    version = session.get(DocumentVersion, version_id)
    assert version is not None
    citing = [
        (memory, evidence)
        for memory, evidence in _live_versions_citing(session, version.document_id)
        if evidence.document_version_id != version_id and evidence.quote
    ]
    # The version's texts only when a live memory quotes the document: a new document (most
    # versions an ingestion makes) has none, and its elements need not be read at all.
    texts = list(session.exec(select(Element.text).where(Element.version_id == version_id))) if citing else []
    gone = {}
    for memory, evidence in citing:
        assert evidence.quote is not None
        if not any(find_quote(text, evidence.quote) for text in texts):
            gone[memory.id] = memory
    sent_back = _send_back(
        ctx, list(gone.values()), f"the quoted passage is not in version {version.number} of its document"
    )
    flag_pending(ctx, version.document_id, version.number)
    return sent_back


def flag_pending(ctx: RunContext, document_id: uuid.UUID, number: int) -> int:
    """Proposals still open that quote the document are checked again: those that quote what the
    document no longer says get a `source_changed` finding (with the passage that says what it
    says now), so the reviewer sees it. Returns how many changed."""
    return len(after_document_version(ctx.session, document_id=document_id, number=number))


def extract(ctx: RunContext, version_id: uuid.UUID) -> int:
    session = ctx.session
    version = session.get(DocumentVersion, version_id)
    assert version is not None
    document = session.get(Document, version.document_id)
    assert document is not None
    known = content_service.hashes_seen_before(session, version)
    elements = session.exec(
        select(Element).where(Element.version_id == version_id).order_by(col(Element.ord))
    ).all()
    passages = [
        Passage(e.element_id, e.type, e.text, tuple(e.section_path))
        for e in elements
        if e.content_hash not in known and e.type != TURN  # turns become episodes instead
    ]
    extractor = active_extractor()
    proposed: list[MemoryVersion] = []
    for candidate in extractor.extract(title=document.title, passages=passages):
        _, memory = propose(
            session,
            tenant_id=version.tenant_id,
            proposal=MemoryProposal(
                text=candidate.text,
                kind=candidate.kind,
                subject_key=candidate.subject_key,
                confidence=candidate.confidence,
                evidence=[
                    EvidenceIn(
                        document_id=document.id,
                        version_number=version.number,
                        element_id=candidate.element_id,
                        quote=candidate.quote,
                    )
                ],
            ),
            proposed_by=f"extractor:{extractor.name}",
            kicker=ctx.executor.kicker,
            extractor=extractor.name,
            extractor_version=extractor.version,
        )
        proposed.append(memory)
    embed_together(proposed, content_of(ctx.services).embedder)
    return len(proposed)


def embed_together(memories: list[MemoryVersion], embedder: Embedder) -> None:
    """Embed a version's proposals in one batch: each review's check embeds only what is missing."""
    if not memories:
        return
    vectors = embedder.embed([m.text for m in memories])
    for memory, vector in zip(memories, vectors, strict=True):
        memory.embedding = vector


def propose_conversation_episodes(ctx: RunContext, version_id: uuid.UUID) -> int:
    embedder = content_of(ctx.services).embedder
    episodes = propose_episodes(
        ctx.session, version_id=version_id, kicker=ctx.executor.kicker, embedder=embedder
    )
    return len(episodes)


@program(ON_VERSION, background=True, startable=False)
def on_version(ctx: RunContext, state: OnVersion) -> OnVersion:
    state.sent_back = ctx.step("verify-sources", verify_sources, ctx, state.version_id)
    state.proposed = ctx.step("extract", extract, ctx, state.version_id)
    state.proposed += ctx.step("propose-episodes", propose_conversation_episodes, ctx, state.version_id)
    return state


def retract_document(ctx: RunContext, document_id: uuid.UUID) -> int:
    versions = {m.id: m for m, _ in _live_versions_citing(ctx.session, document_id)}
    return _send_back(ctx, list(versions.values()), "its source document was deleted")


@program(ON_DOCUMENT_DELETED, background=True, startable=False)
def on_delete(ctx: RunContext, state: OnDelete) -> OnDelete:
    state.sent_back = ctx.step("send-back", retract_document, ctx, state.document_id)
    return state
