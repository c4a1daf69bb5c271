"""Recall: hybrid search over the memories in effect (at a moment), in the scopes a caller may read.

Only approved versions that were in effect at `as_of` (default: now) and valid then come back,
each with its evidence. A recall made for a run is recorded, version by version, so "which
memories influenced this answer" is one query.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.content.indexing import vector_literal
from quire.core.embeddings import Embedder
from quire.core.models import utcnow
from quire.core.search import BM25_CTE, blend, bm25_params, query_lexemes
from quire.memory.lifecycle import INDEX_NAME
from quire.memory.models import (
    Evidence,
    EvidencePublic,
    MemoryItem,
    MemoryVersion,
    RecallHit,
    RecallRecord,
    RecallResults,
)

CANDIDATES = 100


@dataclass(frozen=True)
class Reader:
    """Who recalls: the scopes their memories may come from."""

    principal_id: uuid.UUID | None
    agent: str | None = None
    collections: Sequence[str] = field(default_factory=tuple)  # empty: every collection


def _filters(reader: Reader, as_of: datetime) -> tuple[str, dict[str, Any]]:
    scopes = ["i.scope = 'tenant'"]
    params: dict[str, Any] = {"as_of": as_of}
    if reader.collections:
        scopes.append("(i.scope = 'collection' AND i.scope_ref = ANY(CAST(:collections AS text[])))")
        params["collections"] = list(reader.collections)
    else:
        scopes.append("i.scope = 'collection'")
    if reader.principal_id is not None:
        scopes.append("(i.scope = 'user' AND i.scope_ref = :principal)")
        params["principal"] = str(reader.principal_id)
    if reader.agent:
        scopes.append("(i.scope = 'agent' AND i.scope_ref = :agent)")
        params["agent"] = reader.agent
    where = (
        "v.approved_at IS NOT NULL AND v.approved_at <= :as_of "
        "AND (v.ended_at IS NULL OR v.ended_at > :as_of) "
        "AND (v.state = 'approved' OR v.ended_at IS NOT NULL) "
        "AND v.valid_from <= :as_of AND (v.valid_to IS NULL OR v.valid_to > :as_of) "
        f"AND ({' OR '.join(scopes)})"
    )
    return where, params


def recall(
    session: Session,
    *,
    query: str,
    reader: Reader,
    embedder: Embedder,
    k: int = 10,
    as_of: datetime | None = None,
    dense_weight: float = 0.5,
    run_id: uuid.UUID | None = None,
    step_seq: int | None = None,
) -> RecallResults:
    started = time.perf_counter()
    moment = as_of or utcnow()
    where, params = _filters(reader, moment)
    limit = max(CANDIDATES, k)
    lexical: dict[uuid.UUID, float] = {}
    lexemes = query_lexemes(session, query)
    if lexemes:
        rows = session.execute(
            text(
                f"SELECT v.id, bm25.score FROM ({BM25_CTE}) AS bm25 "
                "JOIN memory_version v ON v.id = bm25.item_id "
                f"JOIN memory_item i ON i.id = v.item_id WHERE {where} ORDER BY bm25.score DESC LIMIT :limit"
            ),
            {**bm25_params(INDEX_NAME, lexemes), **params, "limit": limit},
        )
        lexical = {row[0]: float(row[1]) for row in rows}
    dense: dict[uuid.UUID, float] = {}
    if query.strip():
        session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        rows = session.execute(
            text(
                "SELECT v.id, 1 - (v.embedding <=> CAST(:vector AS vector)) FROM memory_version v "
                f"JOIN memory_item i ON i.id = v.item_id WHERE {where} AND v.embedding IS NOT NULL "
                "ORDER BY v.embedding <=> CAST(:vector AS vector) LIMIT :limit"
            ),
            {**params, "vector": vector_literal(embedder.embed_one(query)), "limit": limit},
        )
        dense = {row[0]: float(row[1]) for row in rows}
    fused = blend(lexical, dense, dense_weight=dense_weight)[:k]
    hits = _hits(session, [f.id for f in fused], {f.id: f.score for f in fused})
    if run_id is not None:
        for rank, hit in enumerate(hits, 1):
            session.add(
                RecallRecord(
                    tenant_id=_tenant_of(session, hit.version_id),
                    run_id=run_id,
                    step_seq=step_seq,
                    query=query,
                    version_id=hit.version_id,
                    rank=rank,
                    score=hit.score,
                )
            )
        session.flush()
    return RecallResults(
        query=query, as_of=moment, hits=hits, took_ms=round((time.perf_counter() - started) * 1000, 2)
    )


def _tenant_of(session: Session, version_id: uuid.UUID) -> uuid.UUID:
    version = session.get(MemoryVersion, version_id)
    assert version is not None
    return version.tenant_id


def _hits(session: Session, ids: list[uuid.UUID], scores: dict[uuid.UUID, float]) -> list[RecallHit]:
    if not ids:
        return []
    rows = session.exec(
        select(MemoryVersion, MemoryItem)
        .join(MemoryItem, col(MemoryItem.id) == col(MemoryVersion.item_id))
        .where(col(MemoryVersion.id).in_(ids))
    ).all()
    evidence: dict[uuid.UUID, list[EvidencePublic]] = {}
    for piece in session.exec(select(Evidence).where(col(Evidence.version_id).in_(ids))):
        if piece.version_id is not None:
            evidence.setdefault(piece.version_id, []).append(EvidencePublic.model_validate(piece))
    by_id = {version.id: (version, item) for version, item in rows}
    hits = []
    for version_id in ids:
        version, item = by_id[version_id]
        hits.append(
            RecallHit(
                version_id=version.id,
                item_id=item.id,
                kind=item.kind,
                scope=item.scope,
                subject_key=item.subject_key,
                text=version.text,
                score=round(scores[version_id], 6),
                valid_from=version.valid_from,
                valid_to=version.valid_to,
                approved_at=version.approved_at,
                evidence=evidence.get(version.id, []),
            )
        )
    return hits


def recalled_for_run(session: Session, *, run_id: uuid.UUID) -> list[RecallRecord]:
    """Which memories a run was given: one query."""
    return list(
        session.exec(
            select(RecallRecord).where(RecallRecord.run_id == run_id).order_by(col(RecallRecord.id))
        ).all()
    )
