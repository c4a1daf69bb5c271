"""find_tools' search: the catalog's tools that best match a request, by the hybrid search of
quire.core.search over the tools' postings and vectors.

A request that asks for two things ("the latest news about Tesla and how it moved the stock
market") may match neither tool well as a whole while each part matches one: its parts are
searched too, and a tool ranks by its best match, a part's counting `PART_WEIGHT` of the whole's
so that a one-tool request keeps its best match first. A request longer than `REQUEST_LIMIT` is
cut to its informative part: the pieces whose words are rarest among the tools.
"""

from __future__ import annotations

import functools
import re

from pydantic import BaseModel
from sqlalchemy import text
from sqlmodel import Session

from quire.agent.tools.catalog import INDEX_NAME
from quire.core.embeddings import Embedder
from quire.core.models import Role
from quire.core.search.corpus import Corpus
from quire.core.search.dense import nearest, vector_literal
from quire.core.search.fusion import blend_sql
from quire.core.search.lexemes import searchable_text
from quire.core.search.lexical import best, bm25, bm25_params, lexeme_weights, within
from quire.core.settings import TOOL_SEARCH_DENSE_WEIGHT, TOOL_SEARCH_WORD_WEIGHT
from quire.core.word_vectors import word_vectors

PART_WEIGHT = 0.8
MIN_PART_WORDS = 3
REQUEST_LIMIT = 500  # characters of a request that are searched (find_tools' argument limit)
_PART_BOUNDARY = re.compile(
    r",?\s+(?:and then|and also|as well as|after that|and|then|also|plus|while)\s+|[,;.?!]\s+", re.IGNORECASE
)
_PIECE_BOUNDARY = re.compile(r"(?<=[,;:.?!])\s+|\n+")


class FoundTool(BaseModel):
    name: str
    summary: str
    source: str
    score: float


def request_parts(query: str) -> list[str]:
    """The parts of a compound request, or [] when it is one request."""
    parts = [part.strip() for part in _PART_BOUNDARY.split(query) if len(part.split()) >= MIN_PART_WORDS]
    return parts if len(parts) >= 2 else []


def informative_part(session: Session, query: str, limit: int = REQUEST_LIMIT) -> str:
    """`query` cut to at most `limit` characters: its most informative pieces, in their order.

    A piece (a sentence or clause) is worth the IDF, among the catalog's tools, of the lexemes it
    holds; greetings, politeness and a pasted document's filler hold common words or none the
    catalog knows, and go first. A piece longer than `limit` keeps its first words.
    """
    if len(query) <= limit:
        return query
    pieces = [piece.strip() for piece in _PIECE_BOUNDARY.split(query) if piece.strip()]
    rows = session.execute(
        text(
            "SELECT p.n, coalesce(array_agg(DISTINCT t.lexeme) FILTER (WHERE t.lexeme IS NOT NULL), '{}') "
            "FROM unnest(CAST(:pieces AS text[])) WITH ORDINALITY AS p(body, n) "
            "LEFT JOIN LATERAL unnest(to_tsvector('english', p.body)) AS t ON true GROUP BY p.n"
        ),
        {"pieces": pieces},
    ).all()
    lexemes = {int(n) - 1: list(found) for n, found in rows}
    weights = lexeme_weights(
        session, index_name=INDEX_NAME, lexemes=sorted({x for found in lexemes.values() for x in found})
    )
    worth = {i: sum(weights.get(x, 0.0) for x in lexemes.get(i, [])) for i in range(len(pieces))}
    kept: set[int] = set()
    used = 0
    for i in sorted(worth, key=lambda i: (-worth[i], i)):
        cost = len(pieces[i]) + (1 if kept else 0)  # and the space that joins it
        if used + cost <= limit:
            kept.add(i)
            used += cost
    if kept:
        return " ".join(pieces[i] for i in sorted(kept))
    if not pieces:
        return query[:limit]
    head = pieces[max(worth, key=lambda i: (worth[i], -i))][:limit]  # too long alone: its first words
    return head.rsplit(" ", 1)[0] if " " in head else head


# The tools a caller may use; their postings are the index's, their vectors agent_tool.embedding
# (all-MiniLM-L6-v2) and agent_tool.word_embedding (static word-piece vectors).
_ALLOWED = "t.role = ANY(CAST(:roles AS text[]))"
_TOOLS = Corpus(table="agent_tool t", id="t.id", embedding="t.embedding", where=_ALLOWED)
_TOOL_WORDS = Corpus(table="agent_tool t", id="t.id", embedding="t.word_embedding", where=_ALLOWED)


# The whole search in one statement, so that only the k answers leave the database (fetching
# every candidate of every leg and fusing them in Python cost more than the search itself):
# - r: each request (the whole, then its parts) with its vectors; lx: its lexemes;
# - lexical / dense / words: each request's best `limit` candidates by BM25, by cosine similarity
#   of the transformer's vectors and of the static word-piece vectors (left out at weight 0);
# - fused: per request and tool, `blend` of its legs (min-max over that request's candidates),
#   the word leg's weight added on top of the other two's;
# - best: per tool, its best request, a part's counting `part_weight` of the whole's.
@functools.cache
def _search_sql(words: bool) -> str:
    word_vector = ", CAST(wv AS vector) AS wv" if words else ""
    word_array = ", CAST(:word_vectors AS text[])" if words else ""
    word_leg = (
        f"""), words AS (
    SELECT r.n, d.item_id AS id, d.similarity AS score
    FROM r CROSS JOIN LATERAL ({nearest(_TOOL_WORDS, vector="r.wv")}) AS d
"""
        if words
        else ""
    )
    more = [("SELECT n, id, score FROM words", ":word_weight")] if words else []
    fused = blend_sql("SELECT n, id, score FROM lexical", "SELECT n, id, score FROM dense", more=more)
    return f"""
WITH r AS (
    SELECT n, body, CAST(v AS vector) AS v{word_vector}
    FROM unnest(CAST(:requests AS text[]), CAST(:vectors AS text[]){word_array})
        WITH ORDINALITY AS u(body, v, {"wv, " if words else ""}n)
), lx AS (
    SELECT r.n, coalesce(array_agg(DISTINCT t.lexeme) FILTER (WHERE t.lexeme IS NOT NULL), '{{}}') AS lexemes
    FROM r LEFT JOIN LATERAL unnest(to_tsvector('english', r.body)) AS t ON true
    GROUP BY r.n
), lexical AS (
    SELECT lx.n, b.item_id AS id, b.score
    FROM lx CROSS JOIN LATERAL ({best(within(bm25(lexemes="lx.lexemes"), _TOOLS))}) AS b
), dense AS (
    SELECT r.n, d.item_id AS id, d.similarity AS score
    FROM r CROSS JOIN LATERAL ({nearest(_TOOLS, vector="r.v")}) AS d
{word_leg}), fused AS ({fused}
), best AS (
    SELECT id, max(CASE WHEN n = 1 THEN CAST(1 AS float8) ELSE CAST(:part_weight AS float8) END * score)
        AS score
    FROM fused GROUP BY id
)
SELECT t.name, t.summary, t.source, best.score
FROM best JOIN agent_tool t ON t.id = best.id
ORDER BY best.score DESC, CAST(best.id AS text) COLLATE "C"
LIMIT :k
"""


def search_tools(
    session: Session,
    *,
    query: str,
    embedder: Embedder,
    k: int = 5,
    role: Role | None = None,
    dense_weight: float = TOOL_SEARCH_DENSE_WEIGHT,
    word_weight: float = TOOL_SEARCH_WORD_WEIGHT,
    candidates: int = 50,
    part_weight: float = PART_WEIGHT,
) -> list[FoundTool]:
    """The tools that best match a request (or any part of it), that `role` may use.

    `dense_weight` splits one between BM25 and the transformer's vectors; the static word-piece
    vectors add `word_weight` on top (0 leaves them out)."""
    allowed = [r.value for r in Role if role is None or role.allows(r)]
    query = informative_part(session, searchable_text(query))
    requests = [query, *request_parts(query)] if part_weight > 0 else [query]
    vectors = embedder.embed_with_parts(query, requests[1:])
    words = word_weight > 0
    word_vectors_of = [vector_literal(v) for v in word_vectors().embed(requests)] if words else []
    rows = session.execute(
        text(_search_sql(words)),
        {
            **bm25_params(INDEX_NAME),  # each request's lexemes come from the statement itself
            "requests": requests,
            "vectors": [vector_literal(v) for v in vectors],
            **({"word_vectors": word_vectors_of} if words else {}),
            "word_weight": word_weight,
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
