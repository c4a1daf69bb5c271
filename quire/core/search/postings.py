"""The lexical index: each item's lexemes as postings, and each index's corpus statistics.

Items are indexed by PostgreSQL's own lexemes (`to_tsvector('english')`: stemmed, stop words
removed) as postings `(index, lexeme, item, tf, doc_len)`, with per-index counts of items and
tokens, so that scoring one query reads only the postings of its lexemes (see `lexical`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlmodel import Session

TEXT_CONFIG = "english"

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
