"""The tool catalog: every tool of a tenant (built-in, and imported from MCP servers), searchable
with the same hybrid search as documents (`catalog_search`), so an agent finds the few it needs
among hundreds.

A tool's searchable text is its name (split into words), summary, description, tags and example
requests. Syncing a source replaces that source's tools: new and changed ones are embedded and
indexed, removed ones leave the catalog.
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

INDEX_NAME = "tools"


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
        words = " ".join(re.findall(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+", self.name))
        example_text = [e if isinstance(e, str) else json.dumps(e) for e in self.examples]
        return "\n".join(
            part
            for part in (self.name, words, self.summary, self.description, " ".join(self.tags), *example_text)
            if part
        )

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


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
) -> SyncReport:
    """Make the catalog's tools from `source` exactly `tools`, embedding only what changed."""
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
        vectors = embedder.embed([d.search_text() for _, d in changed_rows])
        for (row, _), vector in zip(changed_rows, vectors, strict=True):
            row.embedding = vector
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
