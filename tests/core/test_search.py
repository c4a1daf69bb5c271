"""BM25 in SQL against a reference computed in Python from the same lexemes; fusion helpers."""

from __future__ import annotations

import math
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from quire.core.db import Database
from quire.core.search import (
    K1,
    B,
    any_lexeme,
    blend,
    blend_scaled,
    index_items,
    lexical_scores,
    query_lexemes,
    reciprocal_rank_fusion,
    searchable_text,
    unindex_items,
)
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


def test_blend_normalises_each_leg_and_rrf_rewards_agreement() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    lexical = {a: 12.0, b: 3.0}
    dense = {b: 0.9, c: 0.5}
    fused = blend(lexical, dense, dense_weight=0.5)
    assert next(f.id for f in fused) in (a, b)
    scores = {f.id: f.score for f in fused}
    assert scores[a] == pytest.approx(0.5) and scores[b] == pytest.approx(0.5) and scores[c] == 0.0
    assert next(f.id for f in blend(lexical, dense, dense_weight=1.0)) == b
    assert next(f.id for f in reciprocal_rank_fusion(lexical, dense)) == b


def test_blend_scaled_divides_bm25_by_the_best_and_keeps_cosine_as_it_is() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    lexical = {a: 8.0, b: 2.0}
    dense = {a: 0.3, b: 0.7, c: 0.6}
    scores = {f.id: f.score for f in blend_scaled(lexical, dense, dense_weight=0.5)}
    assert scores == pytest.approx({a: 0.5 * 1.0 + 0.5 * 0.3, b: 0.5 * 0.25 + 0.5 * 0.7, c: 0.5 * 0.6})
    assert [f.id for f in blend_scaled(lexical, dense, dense_weight=1.0)] == [b, c, a]
    assert [f.id for f in blend_scaled({}, dense, dense_weight=0.5)] == [b, c, a]  # no lexical match


# Queries a search must answer (with hits or without) rather than fail on.
HOSTILE_QUERIES = [
    "http://ex.com/a:b@c",
    "a:b & c | !d <-> 'e' \\ f:*",
    "it's \\' \\\\ '' ''' (((",
    "nul\x00byte",
    "🙂 emoji 🧪 only",
    "שלום עולם مرحبا",
    "!!! ::: &&& |||",
    "x" * 2000,
]

# Characters that mean something to tsquery's parser, or to PostgreSQL's text type, mixed with
# letters so that they end up inside lexemes too.
TSQUERY_TROUBLE = ":&|!'\\()<->*@/.,;\"\x00 \t\n-_aéß🙂אب中"
# PostgreSQL's parser keeps URLs, hosts and paths whole, punctuation and all, so those make
# lexemes that hold tsquery's operators.
urls = st.builds(
    lambda scheme, host, path: f"{scheme}{host}/{path}",
    st.sampled_from(["", "http://", "https://user:pw@"]),
    st.sampled_from(["ex.com", "www.ex.org", "a.b", "127.0.0.1:8000"]),
    st.text(st.sampled_from(":&|!'\\()*@-._~%=?a1é🙂\x00"), max_size=20),
)
queries = (
    st.text(st.characters(codec=None), max_size=200)  # any code point, lone surrogates too
    | st.text(st.sampled_from(TSQUERY_TROUBLE), max_size=200)
    | st.lists(urls | st.text(st.sampled_from(TSQUERY_TROUBLE), max_size=5), max_size=20).map(" ".join)
    | st.text(st.sampled_from(TSQUERY_TROUBLE), min_size=1500, max_size=2000)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries)
@example(query="http://ex.com/a:b@c")
def test_any_text_makes_a_query_that_postgresql_accepts(
    database: Database, tenants: dict[str, TenantFixture], query: str
) -> None:
    with database.tenant_session(tenants["acme"].id) as session:
        lexemes = query_lexemes(session, query)
        assert "" not in lexemes
        tsquery = any_lexeme(lexemes)
        # PostgreSQL's parser is the judge: the query parses, holds one node per lexeme (and the
        # ORs between them), and each lexeme alone matches it, taken literally.
        nodes, each_matches = session.execute(
            text(
                "SELECT numnode(CAST(:tsquery AS tsquery)), "
                "coalesce(bool_and(array_to_tsvector(ARRAY[l]) @@ CAST(:tsquery AS tsquery)), true) "
                "FROM unnest(CAST(:lexemes AS text[])) AS l"
            ),
            {"tsquery": tsquery, "lexemes": lexemes},
        ).one()
        assert nodes == max(0, 2 * len(lexemes) - 1)
        assert each_matches
        # The statements that search with it take it too, matching or not, and so does the
        # query that highlights a hit's snippet.
        lexical_scores(session, index_name="property", query=query)
        session.execute(text("SELECT websearch_to_tsquery('english', :q)"), {"q": searchable_text(query)})


def test_a_query_without_usable_terms_finds_nothing(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    with database.tenant_session(tenants["acme"].id) as session:
        index_items(
            session, tenant_id=tenants["acme"].id, index_name="test", items=[(uuid.uuid4(), CORPUS[0])]
        )
        for query in ("", "   ", "!!! ::: &|", "the and of", "\x00", "🙂"):
            assert query_lexemes(session, query) == []
            assert any_lexeme([]) == ""
            assert lexical_scores(session, index_name="test", query=query) == {}
