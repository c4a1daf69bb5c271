"""The tool catalog: every tool of a tenant (built-in, and imported from MCP servers), searchable
with the same hybrid search as documents (`catalog_search`), so an agent finds the few it needs
among hundreds.

A tool's searchable text is its name (split into words), summary, description, its parameters'
names and descriptions, tags and example requests. Syncing a source replaces that source's tools:
new and changed ones are embedded and indexed, removed ones leave the catalog.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from pydantic import BaseModel, Field
from sqlalchemy import Column, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField
from sqlmodel import Session, select

from quire.core.embeddings import DIMENSIONS, Embedder
from quire.core.models import Role, TenantScoped, enum_column, timestamp_column, utcnow
from quire.core.search.postings import index_items, unindex_items
from quire.core.word_vectors import WORD_DIMENSIONS, word_vectors

INDEX_NAME = "tools"
INDEXED_AS = "pieces/2"  # bump when `search_text`, `pieces`, `tool_vectors` or the vectors' models change


class CatalogTool(TenantScoped, table=True):
    __tablename__ = "agent_tool"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_agent_tool_name"),)

    id: uuid.UUID = SQLField(default_factory=uuid.uuid4, primary_key=True)
    name: str = SQLField(max_length=200)
    source: str = SQLField(max_length=200, index=True)
    summary: str = SQLField(sa_column=Column(Text, nullable=False))
    description: str = SQLField(default="", sa_column=Column(Text, nullable=False))
    parameters: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    tags: list[str] = SQLField(default_factory=list, sa_column=Column(JSONB, nullable=False))
    role: Role = SQLField(default=Role.reader, sa_column=enum_column(Role))
    side_effects: bool = False
    requires_approval: bool = False
    examples: list[Any] = SQLField(default_factory=list, sa_column=Column(JSONB, nullable=False))
    content_hash: str = SQLField(max_length=64)
    embedding: list[float] | None = SQLField(
        default=None, sa_column=Column(Vector(DIMENSIONS), nullable=True)
    )
    # The same pieces by static word-piece vectors (core/word_vectors.py), find_tools' third leg.
    word_embedding: list[float] | None = SQLField(
        default=None, sa_column=Column(Vector(WORD_DIMENSIONS), nullable=True)
    )
    updated_at: datetime = SQLField(default_factory=utcnow, sa_column=timestamp_column())


class ToolDescription(BaseModel):
    """A tool as the catalog keeps it, whatever its source."""

    name: str
    summary: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    role: Role = Role.reader
    side_effects: bool = False
    requires_approval: bool = False
    examples: list[Any] = Field(default_factory=list)

    def search_text(self) -> str:
        """What the lexical index holds of the tool."""
        return "\n".join(part for part in (self.name, *self.pieces()) if part)

    def pieces(self) -> list[str]:
        """The tool's text in pieces that each say one thing: its name in words, each sentence of
        its summary and description, each parameter, its tags, each example request.

        The tool's vector is the mean of its pieces' vectors: a request usually asks for one of
        the things a tool does, which one sentence says better than the whole text. On MetaTool's
        tuning queries (bench/tools.py) that lifted recall@5 by 3 points over one vector of the
        whole text."""
        sentences = [
            sentence.strip()
            for part in (self.summary, self.description)
            for sentence in _SENTENCE_END.split(part)
            if sentence.strip()
        ]
        examples = [e if isinstance(e, str) else json.dumps(e) for e in self.examples]
        pieces = [name_words(self.name) or self.name, *sentences, *parameter_texts(self.parameters)]
        return [*pieces, *([" ".join(self.tags)] if self.tags else []), *examples]

    def digest(self) -> str:
        """Changes when the tool or the way the catalog indexes tools does, so a sync re-indexes it."""
        return hashlib.sha256((INDEXED_AS + self.model_dump_json()).encode()).hexdigest()


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def name_words(name: str) -> str:
    """A tool's name as words: `get_stockQuote` -> "get stock Quote"."""
    return " ".join(re.findall(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+", name))


def parameter_texts(schema: dict[str, Any]) -> list[str]:
    """Each parameter of a JSON schema (nested objects too) as "its name in words: its description"."""
    texts: list[str] = []
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, spec in properties.items():
            if not isinstance(spec, dict):
                continue
            description = spec.get("description")
            words = name_words(str(name)) or str(name)
            texts.append(f"{words}: {description}" if isinstance(description, str) and description else words)
            texts += parameter_texts(spec)
            items = spec.get("items")
            if isinstance(items, dict):
                texts += parameter_texts(items)
    definitions = schema.get("$defs")  # the nested models a pydantic schema refers to
    if isinstance(definitions, dict):
        for spec in definitions.values():
            if isinstance(spec, dict):
                texts += parameter_texts(spec)
    return texts


def tool_pieces(descriptions: Sequence[ToolDescription]) -> list[list[str]]:
    """Each tool's pieces, its name when it has none."""
    return [description.pieces() or [description.name] for description in descriptions]


def tool_vectors(embedder: Embedder, pieces: Sequence[Sequence[str]]) -> list[list[float]]:
    """Each tool's vector from its `tool_pieces`: the mean of its pieces' vectors, of unit length
    (one embedding call)."""
    vectors = embedder.embed([piece for tool in pieces for piece in tool])
    means, start = [], 0
    for tool in pieces:
        means.append(mean_vector(vectors[start : start + len(tool)]))
        start += len(tool)
    return means


def mean_vector(vectors: Sequence[Sequence[float]]) -> list[float]:
    total = [sum(values) for values in zip(*vectors, strict=True)]
    norm = sum(x * x for x in total) ** 0.5 or 1.0
    return [x / norm for x in total]


@dataclass(frozen=True)
class SyncReport:
    added: int
    changed: int
    removed: int
    unchanged: int


def sync_source(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    source: str,
    tools: Sequence[ToolDescription],
    embedder: Embedder,
    words: Embedder | None = None,
) -> SyncReport:
    """Make the catalog's tools from `source` exactly `tools`, embedding only what changed, by
    `embedder` and by `words` (static word-piece vectors, `word_vectors()` unless given).

    One sync of a tenant's catalog at a time, until the caller's transaction ends: two first runs
    starting together would otherwise both insert the same tools and one would fail on the
    unique name; the second now waits, then finds them unchanged."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"quire-tool-catalog:{tenant_id}"}
    )
    existing = {t.name: t for t in session.exec(select(CatalogTool).where(CatalogTool.source == source))}
    wanted = {t.name: t for t in tools}
    taken = {
        name
        for (name,) in session.execute(
            text(
                "SELECT name FROM agent_tool WHERE source <> :source AND name = ANY(CAST(:names AS text[]))"
            ),
            {"source": source, "names": list(wanted)},
        )
    }
    changed_rows: list[tuple[CatalogTool, ToolDescription]] = []
    added = changed = 0
    for name, description in wanted.items():
        if name in taken:
            continue  # another source has a tool of this name; first come, first kept
        digest = description.digest()
        row = existing.get(name)
        if row is not None and row.content_hash == digest:
            continue
        if row is None:
            row = CatalogTool(
                tenant_id=tenant_id, name=name, source=source, summary=description.summary, content_hash=""
            )
            added += 1
        else:
            changed += 1
        for field in (
            "summary",
            "description",
            "parameters",
            "tags",
            "role",
            "side_effects",
            "requires_approval",
            "examples",
        ):
            setattr(row, field, getattr(description, field))
        row.content_hash = digest
        row.updated_at = utcnow()
        changed_rows.append((row, description))
    removed_rows = [row for name, row in existing.items() if name not in wanted]
    if removed_rows:
        unindex_items(session, index_name=INDEX_NAME, item_ids=[r.id for r in removed_rows])
        for row in removed_rows:
            session.delete(row)
    if changed_rows:
        pieces = tool_pieces([description for _, description in changed_rows])
        vectors = tool_vectors(embedder, pieces)
        word_means = tool_vectors(words or word_vectors(), pieces)
        for (row, _), vector, word_mean in zip(changed_rows, vectors, word_means, strict=True):
            row.embedding = vector
            row.word_embedding = word_mean
            session.add(row)
        session.flush()
        unindex_items(session, index_name=INDEX_NAME, item_ids=[r.id for r, _ in changed_rows])
        index_items(
            session,
            tenant_id=tenant_id,
            index_name=INDEX_NAME,
            items=[(r.id, d.search_text()) for r, d in changed_rows],
        )
    session.flush()
    unchanged = len(wanted) - added - changed - len([n for n in wanted if n in taken])
    return SyncReport(added=added, changed=changed, removed=len(removed_rows), unchanged=unchanged)


def get_tool(session: Session, *, name: str) -> CatalogTool | None:
    return session.exec(select(CatalogTool).where(CatalogTool.name == name)).first()


def describe(tool: Any) -> ToolDescription:
    """A built-in Tool as the catalog keeps it."""
    return ToolDescription(
        name=tool.name,
        summary=tool.summary,
        description=tool.description,
        parameters=tool.schema(),
        tags=list(tool.tags),
        role=tool.role,
        side_effects=tool.side_effects,
        requires_approval=tool.requires_approval,
        examples=list(tool.examples),
    )
