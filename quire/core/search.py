"""Hybrid search primitives shared by content, memory and the tool catalog.

The lexical leg is BM25 in plain SQL over PostgreSQL's own lexemes (`to_tsvector('english')`:
stemmed, stop words removed). Each indexed item's lexemes are kept as postings
`(index, lexeme, item, tf, doc_len)` with per-index corpus statistics, so scoring one query reads
only the postings of its lexemes. (PostgreSQL's `ts_rank` with all-terms matching scores badly
on real benchmarks, and needs every term present.) The dense leg stays with each domain's table
(pgvector HNSW); `blend` and `reciprocal_rank_fusion` join the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

TEXT_CONFIG = "english"
K1 = 0.9
B = 0.4

INDEX_ITEMS_SQL = text(
    f"""
    WITH items AS (
        SELECT i.item_id, to_tsvector('{TEXT_CONFIG}', i.body) AS tsv
        FROM unnest(CAST(:ids AS uuid[]), CAST(:bodies AS text[])) AS i(item_id, body)
    ), sized AS MATERIALIZED (  -- else the planner inlines it and counts once per posting
        SELECT item_id, tsv,
               (SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)
                FROM unnest(tsv)) AS doc_len
        FROM items
    ), postings AS (
        INSERT INTO core_search_posting (tenant_id, index_name, lexeme, item_id, tf, doc_len)
        SELECT :tenant_id, :index_name, u.lexeme, s.item_id,
               coalesce(array_length(u.positions, 1), 1), s.doc_len
        FROM sized s, unnest(s.tsv) AS u
        ON CONFLICT DO NOTHING
        RETURNING item_id, doc_len
    ), added AS (
        SELECT count(*) AS docs, coalesce(sum(doc_len), 0) AS tokens
        FROM (SELECT DISTINCT item_id, doc_len FROM postings) AS items
    )
    INSERT INTO core_search_stats (tenant_id, index_name, docs, tokens)
    SELECT :tenant_id, :index_name, docs, tokens FROM added
    ON CONFLICT (tenant_id, index_name) DO UPDATE
        SET docs = core_search_stats.docs + EXCLUDED.docs,
            tokens = core_search_stats.tokens + EXCLUDED.tokens
    """
)

UNINDEX_ITEMS_SQL = text(
    """
    WITH gone AS (
        DELETE FROM core_search_posting
        WHERE index_name = :index_name AND item_id = ANY(CAST(:ids AS uuid[]))
        RETURNING tenant_id, item_id, doc_len
    ), removed AS (
        SELECT tenant_id, count(*) AS docs, sum(doc_len) AS tokens
        FROM (SELECT DISTINCT tenant_id, item_id, doc_len FROM gone) AS items
        GROUP BY tenant_id
    )
    UPDATE core_search_stats AS s
    SET docs = greatest(s.docs - r.docs, 0), tokens = greatest(s.tokens - r.tokens, 0)
    FROM removed AS r
    WHERE s.tenant_id = r.tenant_id AND s.index_name = :index_name
    """
)

# Scores every item of `index_name` that holds at least one of `lexemes`, with BM25 (Robertson
# IDF, never negative). Domains join the result to their own tables for filters and ranking.
# One index-only scan of the query's postings serves both the document frequencies (a window
# over each lexeme's postings) and the scores; the corpus statistics are one row read once.
# (Counting document frequencies in a second scan of the same postings, and joining the
# statistics per posting, cost two to three times as much: 3.1 -> 0.9 ms per request on the
# tool catalog.)
BM25_CTE = """
    SELECT p.item_id,
           sum(
               ln(1 + (st.docs - p.df + 0.5) / (p.df + 0.5))
               * p.tf * (:k1 + 1)
               / (p.tf + :k1 * (1 - :b + :b * p.doc_len / st.avgdl))
           ) AS score
    FROM (
        SELECT item_id, tf, doc_len, count(*) OVER (PARTITION BY lexeme)::float8 AS df
        FROM core_search_posting
        WHERE index_name = :index_name AND lexeme = ANY(CAST(:lexemes AS text[]))
    ) AS p
    CROSS JOIN (
        SELECT docs::float8 AS docs, greatest(tokens::float8 / docs, 1) AS avgdl
        FROM core_search_stats WHERE index_name = :index_name AND docs > 0
    ) AS st
    GROUP BY p.item_id
"""


def bm25_params(index_name: str, lexemes: Sequence[str] | None = None) -> dict[str, object]:
    """BM25_CTE's parameters; without `lexemes` for a statement that supplies its own."""
    params: dict[str, object] = {"index_name": index_name, "k1": K1, "b": B}
    if lexemes is not None:
        params["lexemes"] = list(lexemes)
    return params


def index_items(
    session: Session, *, tenant_id: uuid.UUID, index_name: str, items: Iterable[tuple[uuid.UUID, str]]
) -> None:
    """Add items (id, text) to the lexical index `index_name`, in the caller's transaction."""
    pairs = list(items)
    if not pairs:
        return
    session.execute(
        INDEX_ITEMS_SQL,
        {
            "tenant_id": tenant_id,
            "index_name": index_name,
            "ids": [item_id for item_id, _ in pairs],
            "bodies": [body for _, body in pairs],
        },
    )


def unindex_items(session: Session, *, index_name: str, item_ids: Sequence[uuid.UUID]) -> None:
    """Remove items from the lexical index, in the caller's transaction."""
    if item_ids:
        session.execute(UNINDEX_ITEMS_SQL, {"index_name": index_name, "ids": list(item_ids)})


def searchable_text(query: str) -> str:
    """`query` as PostgreSQL's text type and the embedder can take it, whatever a caller sent.

    A NUL byte cannot be sent as text, and an unpaired surrogate (which JSON may carry) cannot
    be encoded: each becomes a space or a question mark, neither of which makes a lexeme.
    """
    return query.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")


def query_lexemes(session: Session, query: str) -> list[str]:
    """The query's lexemes, as PostgreSQL makes them for indexed text; [] when it has none."""
    rows = session.execute(
        text(f"SELECT DISTINCT lexeme FROM unnest(to_tsvector('{TEXT_CONFIG}', :q))"),
        {"q": searchable_text(query)},
    ).all()
    return [row[0] for row in rows]


def any_lexeme(lexemes: Sequence[str]) -> str:
    """A tsquery, as text for `CAST(... AS tsquery)`, that matches text holding any of `lexemes`.

    Each lexeme is quoted, so that nothing in it (`:`, `&`, `|`, `!`, a quote, a backslash) is
    read as an operator, and cast rather than passed to `to_tsquery`, which would stem the stems
    again. No lexemes make an empty query, which matches nothing.
    """
    return " | ".join("'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'" for lexeme in lexemes)


def lexical_scores(
    session: Session, *, index_name: str, query: str, limit: int = 100
) -> dict[uuid.UUID, float]:
    """BM25 scores of the best `limit` items of an index for `query` (no other filter)."""
    lexemes = query_lexemes(session, query)
    if not lexemes:
        return {}
    rows = session.execute(
        text(f"SELECT item_id, score FROM ({BM25_CTE}) AS bm25 ORDER BY score DESC LIMIT :limit"),
        {**bm25_params(index_name, lexemes), "limit": limit},
    ).all()
    return {row[0]: float(row[1]) for row in rows}


@dataclass(frozen=True)
class Fused:
    id: uuid.UUID
    score: float
    lexical: float | None
    dense: float | None


def _min_max(scores: dict[uuid.UUID, float]) -> dict[uuid.UUID, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {key: (value - low) / span if span > 0 else 1.0 for key, value in scores.items()}


def _mix(
    lexical: dict[uuid.UUID, float],
    dense: dict[uuid.UUID, float],
    lexical_scaled: dict[uuid.UUID, float],
    dense_scaled: dict[uuid.UUID, float],
    dense_weight: float,
) -> list[Fused]:
    """Every candidate of either leg, by the weighted sum of its scaled scores (a missing one: 0)."""
    fused = [
        Fused(
            id=key,
            score=(1 - dense_weight) * lexical_scaled.get(key, 0.0)
            + dense_weight * dense_scaled.get(key, 0.0),
            lexical=lexical.get(key),
            dense=dense.get(key),
        )
        for key in set(lexical) | set(dense)
    ]
    return sorted(fused, key=lambda f: (-f.score, str(f.id)))


def blend(
    lexical: dict[uuid.UUID, float], dense: dict[uuid.UUID, float], *, dense_weight: float
) -> list[Fused]:
    """Min-max normalise each leg over its candidates and mix them; missing legs count as 0."""
    return _mix(lexical, dense, _min_max(lexical), _min_max(dense), dense_weight)


def blend_scaled(
    lexical: dict[uuid.UUID, float], dense: dict[uuid.UUID, float], *, dense_weight: float
) -> list[Fused]:
    """Mix BM25 over the best BM25 among the candidates with the cosine similarity as it is.

    For legs that each score every candidate (content search completes each leg over the other's
    candidates, so a missing score means a real 0 in BM25). Cosine similarity already has a fixed
    scale, which min-max would stretch away over each query's candidates; BM25 has none, so it is
    divided by the best. On SciFact's train queries this beat min-max over the same complete
    legs (nDCG@10 0.749 vs 0.746; bench/retrieval.py).
    """
    best = max(lexical.values(), default=0.0)
    scaled = {key: value / best for key, value in lexical.items()} if best > 0 else {}
    return _mix(lexical, dense, scaled, dense, dense_weight)


def reciprocal_rank_fusion(
    lexical: dict[uuid.UUID, float], dense: dict[uuid.UUID, float], *, k: int = 60
) -> list[Fused]:
    scores: dict[uuid.UUID, float] = {}
    for leg in (lexical, dense):
        for rank, key in enumerate(sorted(leg, key=lambda item: -leg[item])):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank + 1)
    fused = [
        Fused(id=key, score=score, lexical=lexical.get(key), dense=dense.get(key))
        for key, score in scores.items()
    ]
    return sorted(fused, key=lambda f: (-f.score, str(f.id)))
