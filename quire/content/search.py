"""Hybrid search over the searchable version of every live document, with exact citations.

Lexical: BM25 over the chunks' postings; dense: pgvector HNSW over the chunks' embeddings (both
built by quire.core.search). Each leg then scores the other's candidates too, and the two are
mixed (`blend_scaled`) with a weight tuned on training queries (`QUIRE_SEARCH_DENSE_WEIGHT`, see
bench/retrieval.py). A search inside one given version (not the searchable one) scans that
version's chunks exactly instead, scoring their text with the index's statistics.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

from quire.content.chunking import search_text
from quire.content.indexing import INDEX_NAME
from quire.content.models import Citation, SearchHit, SearchResults
from quire.core.embeddings import Embedder
from quire.core.search.corpus import Corpus
from quire.core.search.dense import nearest, similarity, use_hnsw, vector_literal
from quire.core.search.fusion import Fused, blend_scaled
from quire.core.search.lexemes import query_lexemes, searchable_text
from quire.core.search.lexical import best, bm25, bm25_params, document_frequencies, text_postings, within
from quire.core.settings import SEARCH_DENSE_WEIGHT

CANDIDATES = 100  # per leg, before fusion


@dataclass(frozen=True)
class Scope:
    collections: tuple[str, ...] = ()
    document_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None  # search this version instead of the searchable ones


def _corpus(scope: Scope) -> Corpus:
    """The chunks a search in `scope` reads."""
    clauses: list[str] = []
    params: dict[str, object] = {}
    if scope.version_id is not None:
        clauses.append("c.version_id = :version_id")
        params["version_id"] = scope.version_id
    else:
        clauses.append("c.live")
    if scope.collections:
        clauses.append("c.collection = ANY(CAST(:collections AS text[]))")
        params["collections"] = list(scope.collections)
    if scope.document_id is not None:
        clauses.append("c.document_id = :document_id")
        params["document_id"] = scope.document_id
    return Corpus(
        table="content_chunk c",
        id="c.id",
        embedding="c.embedding",
        where=" AND ".join(clauses),
        params=params,
    )


def _scored(session: Session, query: str, scope: Scope) -> tuple[str, dict[str, object]] | None:
    """A statement scoring every chunk in scope that matches the query (`item_id, score`), or None."""
    lexemes = query_lexemes(session, query)
    if not lexemes:
        return None
    corpus = _corpus(scope)
    if scope == Scope():
        # The index holds exactly the live chunks (publishing and withdrawing a version change
        # both in one transaction), so a search of everything needs no join: joining the scores
        # to every chunk for the `live` filter cost 14 of the leg's 20 ms on SciFact.
        return bm25(), bm25_params(INDEX_NAME, lexemes)
    if scope.version_id is None:
        return within(bm25(), corpus), {**corpus.params, **bm25_params(INDEX_NAME, lexemes)}
    # An older version is not in the index: its chunks' postings are made from their text (without
    # the title and headings the index adds), and scored against the index's statistics.
    frequencies = document_frequencies(session, index_name=INDEX_NAME, lexemes=lexemes)
    sql = bm25(postings=text_postings(corpus, "c.text"), frequencies="CAST(:frequencies AS float8[])")
    params = {
        **corpus.params,
        **bm25_params(INDEX_NAME, lexemes),
        "frequencies": [frequencies.get(lexeme, 0) for lexeme in lexemes],
    }
    return sql, params


def _nearest(session: Session, scope: Scope, ef_search: int) -> tuple[str, dict[str, object]]:
    """A statement for the `:limit` chunks in scope nearest to `:vector` (`item_id, similarity`).

    Sets the transaction's HNSW search parameters for it first."""
    corpus = _corpus(scope)
    if scope.version_id is None:
        use_hnsw(session, ef_search=ef_search)
    return nearest(corpus), dict(corpus.params)


def lexical_leg(session: Session, query: str, scope: Scope, limit: int) -> dict[uuid.UUID, float]:
    """BM25 scores of the best `limit` chunks."""
    scored = _scored(session, query, scope)
    if scored is None:
        return {}
    sql, params = scored
    rows = session.execute(text(best(sql)), {**params, "limit": limit})
    return {row[0]: float(row[1]) for row in rows}


def dense_leg(
    session: Session, vector: list[float], scope: Scope, limit: int, ef_search: int
) -> dict[uuid.UUID, float]:
    """Cosine similarities of the `limit` nearest chunks."""
    sql, params = _nearest(session, scope, ef_search)
    rows = session.execute(text(sql), {**params, "vector": vector_literal(vector), "limit": limit})
    return {row[0]: float(row[1]) for row in rows}


def hybrid_legs(
    session: Session, query: str, vector: list[float], scope: Scope, limit: int, ef_search: int
) -> tuple[dict[uuid.UUID, float], dict[uuid.UUID, float]]:
    """Both legs' candidates, each scored by both legs, in one statement.

    A chunk the dense leg found but BM25 ranked below its top `limit` still has a BM25 score, and
    the other way round; fusing with those real scores instead of a 0 for "not retrieved" lifted
    SciFact test nDCG@10 from 0.737 to 0.742 (bench/retrieval.py). The lexical dict leaves out
    the dense candidates that match none of the query's lexemes (a BM25 score of 0).
    """
    scored = _scored(session, query, scope)
    if scored is None:  # no lexeme to match: the dense leg alone
        return {}, dense_leg(session, vector, scope, limit, ef_search)
    scored_sql, scored_params = scored
    nearest_sql, params = _nearest(session, scope, ef_search)
    both = session.execute(
        text(
            f"WITH dense AS MATERIALIZED ({nearest_sql}), scored AS MATERIALIZED ({scored_sql}), "
            "lexical AS (SELECT item_id, score FROM scored ORDER BY score DESC LIMIT :limit) "
            "SELECT d.item_id, s.score, d.similarity FROM dense d LEFT JOIN scored s USING (item_id) "
            "UNION ALL "
            f"SELECT l.item_id, l.score, {similarity('c.embedding')} "
            "FROM lexical l JOIN content_chunk c ON c.id = l.item_id "
            "WHERE l.item_id NOT IN (SELECT item_id FROM dense)"
        ),
        {**params, **scored_params, "vector": vector_literal(vector), "limit": limit},
    ).all()
    lexical = {row[0]: float(row[1]) for row in both if row[1] is not None}
    dense = {row[0]: float(row[2]) for row in both if row[2] is not None}
    return lexical, dense


def _hits(session: Session, query: str, fused: Sequence[Fused]) -> list[SearchHit]:
    if not fused:
        return []
    rows = session.execute(
        text(
            "SELECT c.id, c.text, c.element_ids, c.pages, c.section_path, c.document_id, c.version_id, "
            "d.title, d.collection, v.number, "
            "ts_headline('english', c.text, websearch_to_tsquery('english', :query), "
            "'MaxWords=40, MinWords=15, MaxFragments=2, FragmentDelimiter=\" … \", StartSel=«, StopSel=»') "
            "AS snippet "
            "FROM content_chunk c JOIN content_document d ON d.id = c.document_id "
            "JOIN content_version v ON v.id = c.version_id WHERE c.id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": [f.id for f in fused], "query": query},
    ).all()
    by_id = {row[0]: row for row in rows}
    hits = []
    for f in fused:
        row = by_id.get(f.id)
        if row is None:
            continue
        hits.append(
            SearchHit(
                score=round(f.score, 6),
                lexical_score=f.lexical,
                dense_score=f.dense,
                text=row[1],
                citation=Citation(
                    document_id=row[5],
                    title=row[7],
                    collection=row[8],
                    version=row[9],
                    version_id=row[6],
                    chunk_id=row[0],
                    element_id=row[2][0] if row[2] else None,
                    element_ids=list(row[2]),
                    page=min(row[3]) if row[3] else None,
                    pages=list(row[3]),
                    section=list(row[4]),
                    snippet=row[10] or row[1][:300],
                ),
            )
        )
    return hits


def search(
    session: Session,
    *,
    query: str,
    embedder: Embedder,
    scope: Scope = Scope(),
    k: int = 10,
    mode: str = "hybrid",
    dense_weight: float = SEARCH_DENSE_WEIGHT,
    ef_search: int = 100,
) -> SearchResults:
    """The best `k` chunks for `query` (any text): `mode` is hybrid, lexical or dense."""
    started = time.perf_counter()
    query = searchable_text(query)
    limit = max(CANDIDATES, k)
    lexical: dict[uuid.UUID, float] = {}
    dense: dict[uuid.UUID, float] = {}
    if mode == "lexical" or not query.strip():
        lexical = lexical_leg(session, query, scope, limit)
    elif mode == "dense":
        dense = dense_leg(session, embedder.embed_one(query), scope, limit, ef_search)
    else:
        lexical, dense = hybrid_legs(session, query, embedder.embed_one(query), scope, limit, ef_search)
    weight = {"lexical": 0.0, "dense": 1.0}.get(mode, dense_weight)
    fused = blend_scaled(lexical, dense, dense_weight=weight)[:k]
    hits = _hits(session, query, fused)
    return SearchResults(query=query, hits=hits, took_ms=round((time.perf_counter() - started) * 1000, 2))


__all__ = ["Scope", "search", "search_text"]
