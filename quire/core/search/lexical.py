"""BM25 in plain SQL over the postings (see `postings`), the one lexical scorer of every search.

PostgreSQL's `ts_rank` with all-terms matching scores badly on real benchmarks and needs every
term present; this is Okapi BM25 with Robertson's IDF (never negative), over PostgreSQL's own
lexemes. A statement built here scores items; `within` keeps those of a corpus (a table, its
joins, its filter), and `best` the top few.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlmodel import Session

from quire.core.search.corpus import Corpus
from quire.core.search.lexemes import query_lexemes
from quire.core.search.postings import TEXT_CONFIG

K1 = 0.9
B = 0.4
LEXEMES = "CAST(:lexemes AS text[])"
# The postings (`item_id, lexeme, tf, doc_len`) a statement scores: by default the index's.
INDEX_POSTINGS = "SELECT item_id, lexeme, tf, doc_len FROM core_search_posting WHERE index_name = :index_name"

_STATS = """
    SELECT docs::float8 AS docs, greatest(tokens::float8 / docs, 1) AS avgdl
    FROM core_search_stats WHERE index_name = :index_name AND docs > 0
"""


def _idf(df: str) -> str:
    """Robertson's IDF of a lexeme held by `df` of the corpus's `st.docs` items."""
    return f"ln(1 + (st.docs - {df} + 0.5) / ({df} + 0.5))"


def bm25(
    *,
    lexemes: str = LEXEMES,
    frequencies: str | None = None,
    items: str | None = None,
    postings: str = INDEX_POSTINGS,
) -> str:
    """A statement (`item_id, score`): BM25 of each item of index `:index_name` holding any of `lexemes`.

    `lexemes` is an SQL expression of a text[] (a parameter, or a column of an outer query).
    Without `frequencies`, each lexeme's document frequency is counted over the postings the
    statement reads, which are all of that lexeme's: one index-only scan serves both the counts
    (a window over each lexeme's postings) and the scores, and the corpus statistics are one row
    read once. (A second scan for the counts, and the statistics joined per posting, cost two to
    three times as much: 3.1 -> 0.9 ms per request on the tool catalog.) With `frequencies` (a
    float8[] expression in the order of `lexemes`), the counts are given, and `items` (a uuid[]
    expression) may restrict the scoring to those items: a caller that reads only some
    postings of a lexeme cannot count it. `postings` may be rows' own text (`text_postings`),
    scored with the corpus statistics and the given frequencies of index `:index_name`.
    """
    if frequencies is None and (items is not None or postings != INDEX_POSTINGS):
        raise ValueError(
            "scoring chosen items, or rows outside the index, needs the index's frequencies given"
        )
    df = (
        "count(*) OVER (PARTITION BY lexeme)::float8"
        if frequencies is None
        else f"({frequencies})[array_position({lexemes}, lexeme)]"
    )
    only = "" if items is None else f" AND item_id = ANY({items})"
    return f"""
    SELECT p.item_id,
           sum(
               {_idf("p.df")}
               * p.tf * (:k1 + 1)
               / (p.tf + :k1 * (1 - :b + :b * p.doc_len / st.avgdl))
           ) AS score
    FROM (
        SELECT item_id, tf, doc_len, {df} AS df
        FROM ({postings}) AS postings
        WHERE lexeme = ANY({lexemes}){only}
    ) AS p
    CROSS JOIN ({_STATS}) AS st
    GROUP BY p.item_id
    """


def text_postings(corpus: Corpus, body: str) -> str:
    """Postings (`item_id, lexeme, tf, doc_len`) of the rows of `corpus` made from their text
    `body` as `postings.index_items` makes them, for rows that the index does not hold."""
    return f"""
    SELECT {corpus.id} AS item_id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf,
           (SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0) FROM unnest(tsv.v)) AS doc_len
    FROM {corpus.table} {corpus.joins}
    CROSS JOIN LATERAL to_tsvector('{TEXT_CONFIG}', {body}) AS tsv(v)
    CROSS JOIN LATERAL unnest(tsv.v) AS u
    WHERE {corpus.where}
    """


def bm25_params(index_name: str, lexemes: Sequence[str] | None = None) -> dict[str, object]:
    """The parameters of a `bm25` statement; without `lexemes` for one that supplies its own."""
    params: dict[str, object] = {"index_name": index_name, "k1": K1, "b": B}
    if lexemes is not None:
        params["lexemes"] = list(lexemes)
    return params


def within(scores: str, corpus: Corpus | None) -> str:
    """The scored items (`item_id, score`) that are rows of `corpus` (all of them for None)."""
    if corpus is None:
        return scores
    return (
        f"SELECT {corpus.id} AS item_id, scored.score FROM ({scores}) AS scored "
        f"JOIN {corpus.table} ON {corpus.id} = scored.item_id {corpus.joins} WHERE {corpus.where}"
    )


def best(scores: str, limit: str = ":limit") -> str:
    """The `limit` best of scored items (`item_id, score`), best first."""
    return f"SELECT item_id, score FROM ({scores}) AS scored ORDER BY score DESC LIMIT {limit}"


def document_frequencies(session: Session, *, index_name: str, lexemes: Sequence[str]) -> dict[str, int]:
    """How many items of the index hold each of `lexemes` (those that none holds are left out)."""
    rows = session.execute(
        text(
            "SELECT l.lexeme, (SELECT count(*) FROM core_search_posting p "
            "WHERE p.index_name = :index_name AND p.lexeme = l.lexeme) "
            "FROM unnest(CAST(:lexemes AS text[])) AS l(lexeme)"
        ),
        {"index_name": index_name, "lexemes": list(lexemes)},
    )
    return {row[0]: int(row[1]) for row in rows if row[1]}


def lexeme_weights(session: Session, *, index_name: str, lexemes: Sequence[str]) -> dict[str, float]:
    """BM25's IDF of each of `lexemes` in the index (those that no item holds are left out)."""
    rows = session.execute(
        text(
            f"SELECT df.lexeme, {_idf('df.n')} FROM ("
            "SELECT lexeme, count(*)::float8 AS n FROM core_search_posting "
            "WHERE index_name = :index_name AND lexeme = ANY(CAST(:lexemes AS text[])) GROUP BY lexeme"
            f") AS df CROSS JOIN ({_STATS}) AS st"
        ),
        {"index_name": index_name, "lexemes": list(lexemes)},
    )
    return {row[0]: float(row[1]) for row in rows}


def lexical_scores(
    session: Session, *, index_name: str, query: str, limit: int = 100, corpus: Corpus | None = None
) -> dict[uuid.UUID, float]:
    """BM25 scores of the best `limit` items of an index for `query`, among `corpus`'s rows if given."""
    lexemes = query_lexemes(session, query)
    if not lexemes:
        return {}
    params = {**(corpus.params if corpus else {}), **bm25_params(index_name, lexemes), "limit": limit}
    rows = session.execute(text(best(within(bm25(), corpus))), params).all()
    return {row[0]: float(row[1]) for row in rows}
