"""Governed memory: items, their immutable versions, evidence, the audit chain, recall records."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, Literal

from pgvector.sqlalchemy import Vector
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import BigInteger, Column, Identity, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from quire.core.accepted import Accepted
from quire.core.embeddings import DIMENSIONS
from quire.core.models import TenantScoped, enum_column, timestamp_column, utcnow
from quire.core.pages import ListPage


class MemoryKind(enum.StrEnum):
    fact = "fact"
    procedure = "procedure"
    preference = "preference"
    episode = "episode"


class MemoryScope(enum.StrEnum):
    tenant = "tenant"  # everyone in the tenant
    collection = "collection"  # those who read a collection (scope_ref: its name)
    user = "user"  # one principal (scope_ref: the principal id)
    agent = "agent"  # one agent (scope_ref: the agent's name)


class VersionState(enum.StrEnum):
    """Where a memory version is in its lifecycle (the states of the memory-review process)."""

    proposed = "proposed"
    checked = "checked"
    in_review = "in_review"
    approved = "approved"
    rejected = "rejected"
    merged = "merged"  # its evidence went to an existing memory
    edited = "edited"  # a reviewer approved an edited copy instead
    superseded = "superseded"
    needs_recertification = "needs_recertification"
    expired = "expired"
    retracted = "retracted"  # its source went away; it goes back to review
    withdrawn = "withdrawn"  # a reviewer took it back

    @property
    def in_effect(self) -> bool:
        return self == VersionState.approved


class MemoryItem(TenantScoped, table=True):
    """A slot of knowledge: its versions follow one another, one at most in effect."""

    __tablename__ = "memory_item"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: MemoryKind = Field(sa_column=enum_column(MemoryKind))
    scope: MemoryScope = Field(sa_column=enum_column(MemoryScope))
    scope_ref: str | None = Field(default=None, max_length=300)
    subject_key: str | None = Field(default=None, max_length=300, index=True)
    current_version_id: uuid.UUID | None = None  # the newest version
    approved_version_id: uuid.UUID | None = None  # the version in effect, if any
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class MemoryVersion(TenantScoped, table=True):
    __tablename__ = "memory_version"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    item_id: uuid.UUID = Field(foreign_key="memory_item.id", index=True, ondelete="CASCADE")
    number: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    embedding: list[float] | None = Field(default=None, sa_column=Column(Vector(DIMENSIONS), nullable=True))
    valid_from: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    valid_to: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    confidence: float = 1.0
    extractor: str = Field(max_length=100)
    extractor_version: str = Field(max_length=40)
    content_hash: str = Field(max_length=64, index=True)
    state: VersionState = Field(
        default=VersionState.proposed, sa_column=enum_column(VersionState, index=True)
    )
    state_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    findings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    run_id: uuid.UUID | None = Field(default=None, foreign_key="runtime_run.id")  # its review process
    proposed_by: str = Field(max_length=200)  # principal id, "run:<id>" or "extractor:<name>"
    approved_by: uuid.UUID | None = None
    approved_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    ended_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    recertify_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Evidence(TenantScoped, table=True):
    """Where a memory version comes from: an exact span of a document version, or a run's step."""

    __tablename__ = "memory_evidence"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Set when the evidence is attached to its version (None only before that).
    version_id: uuid.UUID | None = Field(
        default=None, foreign_key="memory_version.id", index=True, ondelete="CASCADE", nullable=False
    )
    document_id: uuid.UUID | None = Field(default=None, foreign_key="content_document.id", index=True)
    document_version_id: uuid.UUID | None = Field(default=None, foreign_key="content_version.id", index=True)
    element_id: uuid.UUID | None = None
    char_start: int | None = None
    char_end: int | None = None
    quote: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    run_id: uuid.UUID | None = Field(default=None, foreign_key="runtime_run.id")
    step_seq: int | None = None
    note: str | None = Field(default=None, max_length=1000)
    added_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class MemoryEvent(TenantScoped, table=True):
    """The audit log: append-only and hash-chained per tenant (each row seals the one before)."""

    __tablename__ = "memory_event"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    item_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None
    type: str = Field(max_length=60)
    actor: str = Field(max_length=200)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class RecallRecord(TenantScoped, table=True):
    """Which memory versions a run was given, at which rank and score."""

    __tablename__ = "memory_recall"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    run_id: uuid.UUID | None = Field(default=None, foreign_key="runtime_run.id", index=True)
    step_seq: int | None = None
    query: str = Field(sa_column=Column(Text, nullable=False))
    version_id: uuid.UUID = Field(foreign_key="memory_version.id", index=True)
    rank: int
    score: float
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


# What crosses the API.


class EvidenceIn(BaseModel):
    """Evidence for a proposal: a document span (quote required) or a run step."""

    document_id: uuid.UUID | None = None
    version_number: int | None = PydanticField(default=None, description="Latest version if omitted.")
    element_id: uuid.UUID | None = None
    quote: str | None = PydanticField(default=None, max_length=5000)
    run_id: uuid.UUID | None = None
    step_seq: int | None = None
    note: str | None = PydanticField(default=None, max_length=1000)


class MemoryProposal(BaseModel):
    text: str = PydanticField(min_length=1, max_length=5000)
    kind: MemoryKind = MemoryKind.fact
    scope: MemoryScope = MemoryScope.tenant
    scope_ref: str | None = PydanticField(default=None, max_length=300)
    subject_key: str | None = PydanticField(default=None, max_length=300)
    data: dict[str, Any] = PydanticField(default_factory=dict)
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    confidence: float = PydanticField(default=1.0, ge=0, le=1)
    evidence: list[EvidenceIn] = PydanticField(default_factory=list)
    item_id: uuid.UUID | None = PydanticField(default=None, description="Propose a new version of this item.")


class EvidencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    document_id: uuid.UUID | None
    document_version_id: uuid.UUID | None
    element_id: uuid.UUID | None
    char_start: int | None
    char_end: int | None
    quote: str | None
    run_id: uuid.UUID | None
    step_seq: int | None
    note: str | None


class MemoryVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    item_id: uuid.UUID
    number: int
    text: str
    data: dict[str, Any]
    valid_from: datetime
    valid_to: datetime | None
    confidence: float
    extractor: str
    extractor_version: str
    content_hash: str
    state: VersionState
    state_reason: str | None
    findings: dict[str, Any]
    run_id: uuid.UUID | None
    proposed_by: str
    approved_by: uuid.UUID | None
    approved_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    evidence: list[EvidencePublic] = []
    review_error: str | None = PydanticField(
        default=None,
        description="Why its last decision could not be applied; it is back in review, decidable again.",
    )


class EventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    item_id: uuid.UUID | None
    version_id: uuid.UUID | None
    type: str
    actor: str
    reason: str | None
    data: dict[str, Any]
    created_at: datetime
    hash: str


class MemoryPublic(BaseModel):
    id: uuid.UUID
    kind: MemoryKind
    scope: MemoryScope
    scope_ref: str | None
    subject_key: str | None
    approved_version_id: uuid.UUID | None
    current_version_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    latest: MemoryVersionPublic | None = None


class MemoryDetail(MemoryPublic):
    versions: list[MemoryVersionPublic]
    events: list[EventPublic]


class DecisionOptions(BaseModel):
    """What a reviewer chooses between for a version in review."""

    slot: list[MemoryVersionPublic] = PydanticField(
        default_factory=list, description="Approved memories of its slot: supersede one, or keep both."
    )
    merge_into: list[MemoryVersionPublic] = PydanticField(
        default_factory=list, description="Approved duplicates of the same scope and collection."
    )


class MemoriesPublic(ListPage):
    data: list[MemoryPublic]


class ReviewDecision(BaseModel):
    decision: str = PydanticField(
        pattern="^(approve|reject|edit|merge|supersede|keep_both|recertify|withdraw)$",
        description=(
            "approve (refused with `slot_has_approved_memory` when another memory of the slot is "
            "approved), supersede (approve and retire `supersedes`), keep_both (approve beside the "
            "slot's approved memory), reject, edit, merge, recertify, withdraw."
        ),
    )
    reason: str | None = PydanticField(default=None, max_length=2000)
    text: str | None = PydanticField(
        default=None, max_length=5000, description="For edit (and merge with keep=edit): the text to approve."
    )
    into: uuid.UUID | None = PydanticField(
        default=None, description="For merge: the approved memory (item) that absorbs it."
    )
    keep: Literal["target", "proposal", "edit"] = PydanticField(
        default="target",
        description=(
            "For merge: which text the merged memory keeps: the target's, the proposal's, or `text` "
            "(an edit). The proposal's evidence joins it unless the target's text is kept and differs."
        ),
    )
    supersedes: uuid.UUID | None = PydanticField(
        default=None, description="For supersede: the approved memory (item) of the same slot it retires."
    )
    version_id: uuid.UUID | None = PydanticField(
        default=None, description="Default: the item's newest version."
    )
    override: str | None = PydanticField(
        default=None,
        max_length=2000,
        description="For edit: why to approve text that the evidence does not support (audited).",
    )


class WithdrawalAccepted(Accepted):
    """A withdrawal recorded: the memory leaves recall once its review process applies it."""

    memory_id: uuid.UUID
    version_id: uuid.UUID = PydanticField(description="The version withdrawn.")


class BulkReject(BaseModel):
    items: list[uuid.UUID] = PydanticField(min_length=1, max_length=200, description="Memories (item ids).")
    reason: str = PydanticField(min_length=1, max_length=2000, description="One reason, for every one.")


class RefusedItem(BaseModel):
    item_id: uuid.UUID
    reason: str


class BulkRejection(BaseModel):
    """Rejections recorded (each memory moves to rejected a moment later) and those refused."""

    rejected: list[uuid.UUID]
    refused: list[RefusedItem]


class RecallHit(BaseModel):
    version_id: uuid.UUID
    item_id: uuid.UUID
    kind: MemoryKind
    scope: MemoryScope
    subject_key: str | None
    text: str
    title: str = PydanticField(description="The statement, short enough to cite by (memory/titles.py).")
    score: float
    valid_from: datetime
    valid_to: datetime | None
    approved_at: datetime | None
    evidence: list[EvidencePublic]


class RecallResults(BaseModel):
    query: str
    as_of: datetime
    hits: list[RecallHit]
    took_ms: float


class AuditReport(ListPage):
    """A page of the memory event log, and whether the whole hash chain verifies."""

    data: list[EventPublic]
    verified: bool
    broken_at: int | None = None
    message: str
