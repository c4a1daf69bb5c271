"""Any text a caller sends makes lexemes that PostgreSQL accepts, matching or not."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from quire.core.db import Database
from quire.core.search.corpus import Corpus
from quire.core.search.lexemes import query_lexemes, searchable_text
from quire.core.search.lexical import bm25, bm25_params, lexical_scores, text_postings
from quire.core.search.postings import index_items
from tests.factories import TenantFixture

CORPUS_LINE = "Mitochondria are the powerhouse of the cell and make ATP."

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
def test_any_text_makes_a_query_that_postgresql_accepts_and_that_finds_the_text_itself(
    database: Database, tenants: dict[str, TenantFixture], query: str
) -> None:
    item = uuid.uuid4()
    with database.tenant_session(tenants["acme"].id) as session:
        lexemes = query_lexemes(session, query)
        assert "" not in lexemes
        # PostgreSQL is the judge: the lexemes, taken literally, find the text they came from,
        # indexed or scored from its text, and find nothing where there is nothing.
        assert lexical_scores(session, index_name="property", query=query) == {}
        index_items(
            session,
            tenant_id=tenants["acme"].id,
            index_name="property",
            items=[(item, searchable_text(query))],
        )
        found = lexical_scores(session, index_name="property", query=query)
        assert set(found) == ({item} if lexemes else set())
        row = Corpus(table="(SELECT CAST(:item AS uuid) AS id, CAST(:body AS text) AS body) AS r", id="r.id")
        from_text = session.execute(
            text(bm25(postings=text_postings(row, "r.body"), frequencies="CAST(:df AS float8[])")),
            {
                **bm25_params("property", lexemes),
                "item": item,
                "body": searchable_text(query),
                "df": [1] * len(lexemes),
            },
        ).all()
        assert [(r[0], pytest.approx(r[1])) for r in from_text] == list(found.items())
        # And the query that highlights a hit's snippet takes the text too.
        session.execute(text("SELECT websearch_to_tsquery('english', :q)"), {"q": searchable_text(query)})


def test_a_query_without_usable_terms_finds_nothing(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    with database.tenant_session(tenants["acme"].id) as session:
        index_items(
            session, tenant_id=tenants["acme"].id, index_name="test", items=[(uuid.uuid4(), CORPUS_LINE)]
        )
        for query in ("", "   ", "!!! ::: &|", "the and of", "\x00", "🙂"):
            assert query_lexemes(session, query) == []
            assert lexical_scores(session, index_name="test", query=query) == {}
