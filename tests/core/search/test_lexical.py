"""BM25 in SQL against a reference computed in Python from the same lexemes."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import text

from quire.core.db import Database
from quire.core.search.corpus import Corpus
from quire.core.search.lexemes import query_lexemes
from quire.core.search.lexical import (
    K1,
    B,
    bm25,
    bm25_params,
    document_frequencies,
    lexeme_weights,
    lexical_scores,
    text_postings,
)
from quire.core.search.postings import index_items, unindex_items
from tests.factories import TenantFixture

CORPUS = [
    "Mitochondria are the powerhouse of the cell and make ATP.",
    "The cell membrane controls what enters and leaves the cell.",
    "Photosynthesis in plants converts light into chemical energy.",
    "ATP synthase turns a proton gradient into ATP in mitochondria.",
    "Refund requests must be approved by a manager within 30 days.",
]


def reference_bm25(session, docs: dict[uuid.UUID, str], query: str) -> dict[uuid.UUID, float]:  # type: ignore[no-untyped-def]
    tf: dict[uuid.UUID, dict[str, int]] = {}
    for doc_id, body in docs.items():
        rows = session.execute(
            text(
                "SELECT lexeme, coalesce(array_length(positions, 1), 1) "
                "FROM unnest(to_tsvector('english', :b))"
            ),
            {"b": body},
        ).all()
        tf[doc_id] = {lexeme: n for lexeme, n in rows}
    lengths = {d: sum(t.values()) for d, t in tf.items()}
    avgdl = sum(lengths.values()) / len(lengths)
    scores = {}
    for doc_id, terms in tf.items():
        score = 0.0
        for lexeme in query_lexemes(session, query):
            df = sum(1 for t in tf.values() if lexeme in t)
            if lexeme not in terms:
                continue
            idf = math.log(1 + (len(tf) - df + 0.5) / (df + 0.5))
            f = terms[lexeme]
            score += idf * f * (K1 + 1) / (f + K1 * (1 - B + B * lengths[doc_id] / avgdl))
        if score:
            scores[doc_id] = score
    return scores


def test_sql_bm25_matches_the_reference(database: Database, tenants: dict[str, TenantFixture]) -> None:
    docs = {uuid.uuid4(): body for body in CORPUS}
    with database.tenant_session(tenants["acme"].id) as session:
        index_items(session, tenant_id=tenants["acme"].id, index_name="test", items=docs.items())
        for query in ("ATP in mitochondria", "cell", "manager approval of refunds", "quantum gravity"):
            got = lexical_scores(session, index_name="test", query=query)
            expected = reference_bm25(session, docs, query)
            assert got.keys() == expected.keys(), query
            for doc_id, score in expected.items():
                assert got[doc_id] == pytest.approx(score, rel=1e-9), query


def test_unindexing_updates_statistics_and_other_tenants_are_separate(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    acme, globex = tenants["acme"].id, tenants["globex"].id
    acme_docs = {uuid.uuid4(): body for body in CORPUS}
    with database.tenant_session(acme) as session:
        index_items(session, tenant_id=acme, index_name="test", items=acme_docs.items())
        session.commit()
    with database.tenant_session(globex) as session:
        index_items(session, tenant_id=globex, index_name="test", items=[(uuid.uuid4(), "ATP ATP ATP")])
        session.commit()
        assert len(lexical_scores(session, index_name="test", query="ATP")) == 1
    with database.tenant_session(acme) as session:
        before = session.execute(
            text("SELECT docs, tokens FROM core_search_stats WHERE index_name='test'")
        ).one()
        assert before[0] == len(CORPUS)
        removed = [doc_id for doc_id, body in acme_docs.items() if "ATP" in body]
        unindex_items(session, index_name="test", item_ids=removed)
        after = session.execute(
            text("SELECT docs, tokens FROM core_search_stats WHERE index_name='test'")
        ).one()
        assert after[0] == len(CORPUS) - len(removed) and after[1] < before[1]
        assert lexical_scores(session, index_name="test", query="ATP") == {}
        remaining = {d: b for d, b in acme_docs.items() if d not in removed}
        got = lexical_scores(session, index_name="test", query="cell")
        assert got == pytest.approx(reference_bm25(session, remaining, "cell"))


def _scores(session, sql: str, params: dict[str, object]) -> dict[uuid.UUID, float]:  # type: ignore[no-untyped-def]
    return {row[0]: float(row[1]) for row in session.execute(text(sql), params)}


def test_given_frequencies_and_chosen_items_score_as_the_counted_statement_does(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    docs = {uuid.uuid4(): body for body in CORPUS}
    with database.tenant_session(tenants["acme"].id) as session:
        index_items(session, tenant_id=tenants["acme"].id, index_name="test", items=docs.items())
        lexemes = query_lexemes(session, "ATP in the cell membrane")
        counted = _scores(session, bm25(), bm25_params("test", lexemes))
        frequencies = document_frequencies(session, index_name="test", lexemes=lexemes)
        assert frequencies == {"atp": 2, "cell": 2, "membran": 1}
        chosen = sorted(counted)[:2]
        given = _scores(
            session,
            bm25(frequencies="CAST(:df AS float8[])", items="CAST(:ids AS uuid[])"),
            {**bm25_params("test", lexemes), "df": [frequencies.get(x, 0) for x in lexemes], "ids": chosen},
        )
        assert given == pytest.approx({item: counted[item] for item in chosen})
        with pytest.raises(ValueError):
            bm25(items="CAST(:ids AS uuid[])")  # a partial read cannot count frequencies
        with pytest.raises(ValueError):
            bm25(postings="SELECT id AS item_id, 'x' AS lexeme, 1 AS tf, 1 AS doc_len FROM t")


def test_a_corpus_filters_the_scored_items_and_idf_is_bm25s(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    docs = {uuid.uuid4(): body for body in CORPUS}
    with database.tenant_session(tenants["acme"].id) as session:
        index_items(session, tenant_id=tenants["acme"].id, index_name="test", items=docs.items())
        session.execute(text("CREATE TEMPORARY TABLE searched (id uuid, body text, shown bool)"))
        session.execute(
            text(
                "INSERT INTO searched SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:bodies AS text[]), "
                "CAST(:shown AS bool[]))"
            ),
            {"ids": list(docs), "bodies": list(docs.values()), "shown": ["cell" in b for b in docs.values()]},
        )
        shown = Corpus(table="searched s", id="s.id", where="s.shown = :shown", params={"shown": True})
        everything = lexical_scores(session, index_name="test", query="ATP cell")
        filtered = lexical_scores(session, index_name="test", query="ATP cell", corpus=shown)
        assert filtered == pytest.approx({d: s for d, s in everything.items() if "cell" in docs[d]})
        assert set(everything) - set(filtered)  # an ATP-only abstract was left out
        weights = lexeme_weights(session, index_name="test", lexemes=["atp", "refund", "nowher"])
        n = len(CORPUS)
        assert weights == pytest.approx(
            {"atp": math.log(1 + (n - 2 + 0.5) / 2.5), "refund": math.log(1 + (n - 1 + 0.5) / 1.5)}
        )


def test_rows_outside_the_index_score_from_their_text_as_if_indexed(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    docs = {uuid.uuid4(): body for body in CORPUS}
    with database.tenant_session(tenants["acme"].id) as session:
        index_items(session, tenant_id=tenants["acme"].id, index_name="test", items=docs.items())
        rows = Corpus(
            table="unnest(CAST(:ids AS uuid[]), CAST(:bodies AS text[])) AS r(id, body)",
            id="r.id",
            params={"ids": list(docs), "bodies": list(docs.values())},
        )
        query = "ATP made in the mitochondria of a cell"
        lexemes = query_lexemes(session, query)
        frequencies = document_frequencies(session, index_name="test", lexemes=lexemes)
        from_text = _scores(
            session,
            bm25(postings=text_postings(rows, "r.body"), frequencies="CAST(:df AS float8[])"),
            {**rows.params, **bm25_params("test", lexemes), "df": [frequencies.get(x, 0) for x in lexemes]},
        )
        assert from_text == pytest.approx(lexical_scores(session, index_name="test", query=query))
