"""A query's text as PostgreSQL and the embedder can take it, and the lexemes it searches for."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from quire.core.search.postings import TEXT_CONFIG


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
