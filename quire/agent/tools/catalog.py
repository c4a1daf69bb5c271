"""The tool catalog: every tool of a tenant (built-in, and imported from MCP servers), searchable
with the same hybrid search as documents, so an agent finds the few it needs among hundreds.

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

from quire.content.indexing import vector_literal
from quire.core.embeddings import DIMENSIONS, Embedder
from quire.core.models import Role, TenantScoped, enum_column, timestamp_column, utcnow
from quire.core.search import (
    BM25_CTE,
    bm25_params,
    index_items,
    searchable_text,
    unindex_items,
)

INDEX_NAME = "tools"
DENSE_WEIGHT = 0.6  # tuned on MetaTool's tuning split (bench/tools.py)


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


class FoundTool(BaseModel):
    name: str
    summary: str
    source: str
    score: float


# A request that asks for two things ("the latest news about Tesla and how it moved the stock
# market") may match neither tool well as a whole while each part matches one: its parts are
# searched too, and a tool ranks by its best match, a part's counting PART_WEIGHT of the whole's
# so that a one-tool request keeps its best match first.
_PART_BOUNDARY = re.compile(
    r",?\s+(?:and then|and also|as well as|after that|and|then|also|plus|while)\s+|[,;.?!]\s+", re.IGNORECASE
)
PART_WEIGHT = 0.8
MIN_PART_WORDS = 3


def request_parts(query: str) -> list[str]:
    """The parts of a compound request, or [] when it is one request."""
    parts = [part.strip() for part in _PART_BOUNDARY.split(query) if len(part.split()) >= MIN_PART_WORDS]
    return parts if len(parts) >= 2 else []


def search_tools(
    session: Session,
    *,
    query: str,
    embedder: Embedder,
    k: int = 5,
    role: Role | None = None,
    dense_weight: float = DENSE_WEIGHT,
    candidates: int = 50,
    part_weight: float = PART_WEIGHT,
) -> list[FoundTool]:
    """The tools that best match a request (or any part of it), that `role` may use."""
    allowed = [r.value for r in Role if role is None or role.allows(r)]
    query = searchable_text(query)
    requests = [query, *request_parts(query)] if part_weight > 0 else [query]
    vectors = embedder.embed_with_parts(query, requests[1:])
    rows = session.execute(
        text(_SEARCH_SQL),
        {
            **bm25_params(INDEX_NAME),  # each request's lexemes come from the statement itself
            "requests": requests,
            "vectors": [vector_literal(v) for v in vectors],
            "roles": allowed,
            "limit": candidates,
            "dense_weight": dense_weight,
            "part_weight": part_weight,
            "k": k,
        },
    )
    return [
        FoundTool(name=name, summary=summary, source=source, score=round(score, 4))
        for name, summary, source, score in rows
    ]


# The whole search in one statement, so that only the k answers leave the database (fetching
# every candidate of every leg and fusing them in Python cost more than the search itself):
# - r: each request (the whole, then its parts) with its vector; lx: its lexemes;
# - lexical / dense: each request's best `limit` candidates by BM25 and by cosine similarity;
# - normalised: each leg's scores min-max normalised over that request's candidates (1 when
#   they are all equal), as `core.search.blend` does;
# - fused: per request and tool, the blend of its legs (a missing leg counts 0);
# - best: per tool, its best request, a part's counting `part_weight` of the whole's.
_SEARCH_SQL = """
WITH r AS (
    SELECT n, body, CAST(v AS vector) AS v
    FROM unnest(CAST(:requests AS text[]), CAST(:vectors AS text[])) WITH ORDINALITY AS u(body, v, n)
), lx AS (
    SELECT r.n, coalesce(array_agg(DISTINCT t.lexeme) FILTER (WHERE t.lexeme IS NOT NULL), '{}') AS lexemes
    FROM r LEFT JOIN LATERAL unnest(to_tsvector('english', r.body)) AS t ON true
    GROUP BY r.n
), lexical AS (
    SELECT lx.n, b.id, b.score FROM lx CROSS JOIN LATERAL (
        SELECT t.id, bm25.score FROM (__BM25__) AS bm25 JOIN agent_tool t ON t.id = bm25.item_id
        WHERE t.role = ANY(CAST(:roles AS text[]))
        ORDER BY bm25.score DESC LIMIT :limit
    ) AS b
), dense AS (
    SELECT r.n, d.id, d.score FROM r CROSS JOIN LATERAL (
        SELECT id, 1 - (embedding <=> r.v) AS score FROM agent_tool
        WHERE embedding IS NOT NULL AND role = ANY(CAST(:roles AS text[]))
        ORDER BY embedding <=> r.v LIMIT :limit
    ) AS d
), normalised AS (
    SELECT n, id, (1 - CAST(:dense_weight AS float8))
        * coalesce((score - min(score) OVER w) / nullif(max(score) OVER w - min(score) OVER w, 0), 1) AS part
    FROM lexical WINDOW w AS (PARTITION BY n)
    UNION ALL
    SELECT n, id, CAST(:dense_weight AS float8)
        * coalesce((score - min(score) OVER w) / nullif(max(score) OVER w - min(score) OVER w, 0), 1)
    FROM dense WINDOW w AS (PARTITION BY n)
), fused AS (
    SELECT n, id, sum(part) AS score FROM normalised GROUP BY n, id
), best AS (
    SELECT id, max(CASE WHEN n = 1 THEN CAST(1 AS float8) ELSE CAST(:part_weight AS float8) END * score)
        AS score
    FROM fused GROUP BY id
)
SELECT t.name, t.summary, t.source, best.score
FROM best JOIN agent_tool t ON t.id = best.id
ORDER BY best.score DESC, CAST(best.id AS text) COLLATE "C"
LIMIT :k
""".replace("__BM25__", BM25_CTE.replace("CAST(:lexemes AS text[])", "lx.lexemes"))


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
