"""The dense leg: the rows nearest to a query's vector, by cosine distance (pgvector, HNSW)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlmodel import Session

from quire.core.search.corpus import Corpus

VECTOR = "CAST(:vector AS vector)"


def vector_literal(vector: Sequence[float]) -> str:
    """A vector as pgvector's text form, for `CAST(:vector AS vector)`."""
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def similarity(embedding: str, vector: str = VECTOR) -> str:
    """The SQL expression of the cosine similarity of a vector column to `vector`."""
    return f"1 - ({embedding} <=> {vector})"


def nearest(corpus: Corpus, *, vector: str = VECTOR, limit: str = ":limit") -> str:
    """A statement (`item_id, similarity`) for the `limit` rows of `corpus` nearest to `vector`.

    Ordered by the distance operator itself, so that an HNSW index on the column serves it.
    """
    if not corpus.embedding:
        raise ValueError(f"{corpus.table} has no vector column to search")
    return (
        f"SELECT {corpus.id} AS item_id, {similarity(corpus.embedding, vector)} AS similarity "
        f"{corpus.rows()} AND {corpus.embedding} IS NOT NULL "
        f"ORDER BY {corpus.embedding} <=> {vector} LIMIT {limit}"
    )


def use_hnsw(session: Session, *, ef_search: int | None = None) -> None:
    """HNSW settings for the rest of the transaction: an iterative scan, so that a filter (tenant,
    live, collection, role) still lets `limit` rows through, and `ef_search` candidates if given."""
    settings = "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
    if ef_search is None:
        session.execute(text(f"SELECT {settings}"))
    else:
        session.execute(
            text(f"SELECT {settings}, set_config('hnsw.ef_search', :ef, true)"), {"ef": str(int(ef_search))}
        )
