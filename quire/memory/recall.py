"""Recall: hybrid search over the memories in effect (at a moment), in the scopes a caller may read.

Only approved versions that were in effect at `as_of` (default: now) and valid then come back,
each with its evidence. A recall made for a run is recorded, version by version, so "which
memories influenced this answer" is one query.

Ranking: BM25 over the memories' postings and HNSW over their embeddings (both built by
quire.core.search) each bring their best candidates, blended after min-max normalisation with the
dense weight `QUIRE_RECALL_DENSE_WEIGHT`. Conversation episodes (see `conversations`)
then gain from their neighbours' scores, and from the query naming their speaker.

The lexical leg finds its candidates through the query's rarest lexemes, reading about
`POSTINGS_BUDGET` postings at most; commoner lexemes only add to those candidates' scores. Over a
few thousand memories that is plain BM25; over a hundred thousand it keeps a query fast however
common its words are (every dated episode holds its year, every turn a speaker's name).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.core.embeddings import Embedder
from quire.core.models import utcnow
from quire.core.search.corpus import Corpus
from quire.core.search.dense import nearest, use_hnsw, vector_literal
from quire.core.search.fusion import blend
from quire.core.search.lexemes import query_lexemes, searchable_text
from quire.core.search.lexical import best, bm25, bm25_params, document_frequencies, within
from quire.core.settings import RECALL_DENSE_WEIGHT
from quire.memory.conversations import Episode, episodes_among, favour_named_speaker, lift_neighbours
from quire.memory.models import (
    Evidence,
    EvidencePublic,
    MemoryItem,
    MemoryVersion,
    RecallHit,
    RecallRecord,
    RecallResults,
)
from quire.memory.review_actions import INDEX_NAME
from quire.memory.titles import title

CANDIDATES = 100
POSTINGS_BUDGET = 5000
# Tuned on two LoCoMo conversations, reported on three others (bench/memory.py). They change
# nothing for memories that are not conversation episodes.
NEIGHBOUR_WEIGHT = 0.3
SPEAKER_BOOST = 0.2


@dataclass(frozen=True)
class Reader:
    """Who recalls: the scopes their memories may come from."""

    principal_id: uuid.UUID | None
    agent: str | None = None
    collections: Sequence[str] = field(default_factory=tuple)  # empty: every collection


def _corpus(reader: Reader, as_of: datetime) -> Corpus:
    """The memory versions `reader` may recall at `as_of`."""
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
    return Corpus(
        table="memory_version v",
        id="v.id",
        embedding="v.embedding",
        joins="JOIN memory_item i ON i.id = v.item_id",
        where=where,
        params=params,
    )


# Each pass gives the document frequencies it counted beforehand (the budget needs them anyway),
# so that its statement reads exactly the postings it scores, which the planner then sees.
LEADING = bm25(lexemes="CAST(:leading AS text[])", frequencies="CAST(:leading_df AS float8[])")
OTHERS = bm25(
    lexemes="CAST(:others AS text[])",
    frequencies="CAST(:others_df AS float8[])",
    items="CAST(:ids AS uuid[])",
)


def _lexical_leg(session: Session, lexemes: list[str], corpus: Corpus, limit: int) -> dict[uuid.UUID, float]:
    """BM25 of the best `limit` memories of `corpus`, led by the query's rarest lexemes."""
    if not lexemes:
        return {}
    counts = document_frequencies(session, index_name=INDEX_NAME, lexemes=lexemes)
    if not counts:
        return {}
    leading: list[str] = []
    read = 0
    for lexeme in sorted(counts, key=lambda lexeme: counts[lexeme]):
        if leading and read + counts[lexeme] > POSTINGS_BUDGET:
            break
        leading.append(lexeme)
        read += counts[lexeme]
    others = [lexeme for lexeme in counts if lexeme not in leading]
    # Past the budget, the candidates come by the rarer lexemes only: fetch more of them.
    wanted = limit * 3 if others else limit
    arguments = {
        **bm25_params(INDEX_NAME),
        **corpus.params,
        "leading": leading,
        "leading_df": [counts[lexeme] for lexeme in leading],
        "wanted": wanted,
    }
    # Most readers may see most memories: filter the best few first, which is exact when enough
    # of them pass; otherwise (a reader of one collection among many) filter them all.
    scores: dict[uuid.UUID, float] = {}
    for first in (wanted * 2, None):
        scored = LEADING if first is None else best(LEADING, ":first")
        rows = session.execute(
            text(best(within(scored, corpus), ":wanted")), {**arguments, "first": first}
        ).all()
        scores = {row[0]: float(row[1]) for row in rows}
        if len(scores) == wanted:
            break
    if others and scores:
        for version_id, added in session.execute(
            text(OTHERS),
            {
                **bm25_params(INDEX_NAME),
                "others": others,
                "others_df": [counts[lexeme] for lexeme in others],
                "ids": list(scores),
            },
        ):
            scores[version_id] += float(added)
    return dict(sorted(scores.items(), key=lambda item: (-item[1], str(item[0])))[:limit])


@dataclass(frozen=True)
class Candidates:
    """What each leg found for a query, and which of the found memories are conversation episodes."""

    lexical: dict[uuid.UUID, float]
    dense: dict[uuid.UUID, float]
    episodes: dict[uuid.UUID, Episode]


def find_candidates(
    session: Session,
    *,
    query: str,
    reader: Reader,
    embedder: Embedder,
    as_of: datetime,
    limit: int = CANDIDATES,
) -> Candidates:
    """The best `limit` memories of each leg that the reader may see at `as_of`."""
    corpus = _corpus(reader, as_of)
    query = searchable_text(query)
    vector = embedder.embed_one(query) if query.strip() else None
    with _serial_plans(session):
        lexical = _lexical_leg(session, query_lexemes(session, query), corpus, limit)
        dense = _dense_leg(session, vector, corpus, limit) if vector is not None else {}
        episodes = episodes_among(session, [*lexical, *(set(dense) - set(lexical))])
    return Candidates(lexical, dense, episodes)


def _dense_leg(session: Session, vector: list[float], corpus: Corpus, limit: int) -> dict[uuid.UUID, float]:
    use_hnsw(session)
    rows = session.execute(
        text(nearest(corpus)), {**corpus.params, "vector": vector_literal(vector), "limit": limit}
    )
    return {row[0]: float(row[1]) for row in rows}


@contextmanager
def _serial_plans(session: Session) -> Iterator[None]:
    """No parallel workers for recall's queries, then the caller's setting back.

    They read a few thousand rows at most. For a reader of one collection among a hundred
    thousand memories the planner chose a parallel scan of every item over an index scan of the
    reader's few, several times slower (and slower still on a busy machine).
    """
    previous = session.execute(
        text(
            "SELECT current_setting('max_parallel_workers_per_gather'), "
            "set_config('max_parallel_workers_per_gather', '0', true)"
        )
    ).scalar_one()
    yield
    # (After an error the transaction is aborted, and its rollback undoes the setting anyway.)
    session.execute(
        text("SELECT set_config('max_parallel_workers_per_gather', :previous, true)"), {"previous": previous}
    )


def rank(
    candidates: Candidates,
    *,
    query: str,
    dense_weight: float = RECALL_DENSE_WEIGHT,
    neighbour_weight: float = NEIGHBOUR_WEIGHT,
    speaker_boost: float = SPEAKER_BOOST,
) -> list[tuple[uuid.UUID, float]]:
    """Every candidate with its final score, best first."""
    scores = {f.id: f.score for f in blend(candidates.lexical, candidates.dense, dense_weight=dense_weight)}
    scores = lift_neighbours(scores, candidates.episodes, weight=neighbour_weight)
    scores = favour_named_speaker(scores, candidates.episodes, query=query, boost=speaker_boost)
    return sorted(scores.items(), key=lambda item: (-item[1], str(item[0])))


def recall(
    session: Session,
    *,
    query: str,
    reader: Reader,
    embedder: Embedder,
    k: int = 10,
    as_of: datetime | None = None,
    dense_weight: float = RECALL_DENSE_WEIGHT,
    run_id: uuid.UUID | None = None,
    step_seq: int | None = None,
    neighbour_weight: float = NEIGHBOUR_WEIGHT,
    speaker_boost: float = SPEAKER_BOOST,
) -> RecallResults:
    started = time.perf_counter()
    query = searchable_text(query)  # any text may be asked, and it is stored with the run's recall
    moment = as_of or utcnow()
    candidates = find_candidates(
        session, query=query, reader=reader, embedder=embedder, as_of=moment, limit=max(CANDIDATES, k)
    )
    ranked = rank(
        candidates,
        query=query,
        dense_weight=dense_weight,
        neighbour_weight=neighbour_weight,
        speaker_boost=speaker_boost,
    )[:k]
    hits = _hits(session, [version_id for version_id, _ in ranked], dict(ranked))
    if run_id is not None:
        for position, hit in enumerate(hits, 1):
            session.add(
                RecallRecord(
                    tenant_id=_tenant_of(session, hit.version_id),
                    run_id=run_id,
                    step_seq=step_seq,
                    query=query,
                    version_id=hit.version_id,
                    rank=position,
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
                title=title(version.text),
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
