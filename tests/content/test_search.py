"""Hybrid search: each leg scores the other leg's candidates before the two are fused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from quire.content.environment import ContentEnvironment
from quire.content.search import Scope, dense_leg, hybrid_legs, lexical_leg
from quire.core.models import Role
from tests.content.test_ingestion import keys, upload
from tests.core.search.test_lexemes import HOSTILE_QUERIES
from tests.harness import Harness

LODGING = b"Accommodation for staff on business trips is reimbursed up to 150 euros per night.\n"
GLOSSARY = b"Hotel, cost, night: words that appear in this glossary of the style guide, in order.\n"
QUERY = "how much may a hotel night cost"


def test_each_leg_scores_the_other_legs_candidates(
    api: TestClient, content: Harness, environment: ContentEnvironment
) -> None:
    key = keys(content)
    for name, data in (("lodging.txt", LODGING), ("glossary.txt", GLOSSARY)):
        assert upload(api, key[Role.contributor], name, data).status_code == 202
    content.drive()
    vector = environment.embedder.embed_one(QUERY)
    with content.database.tenant_session(content.tenant_id) as session:
        lexical_all = lexical_leg(session, QUERY, Scope(), 100)
        dense_all = dense_leg(session, vector, Scope(), 100, 100)
        best_lexical = lexical_leg(session, QUERY, Scope(), 1)
        best_dense = dense_leg(session, vector, Scope(), 1, 100)
        # The glossary has every word of the query and says nothing about it; the lodging rule
        # answers it in other words: each leg's best is the other's second.
        assert best_lexical.keys() != best_dense.keys()

        lexical, dense = hybrid_legs(session, QUERY, vector, Scope(), 1, 100)

    both = best_lexical.keys() | best_dense.keys()
    assert dense.keys() == both and lexical.keys() == both  # the lodging rule matches "night"
    assert lexical == pytest.approx({chunk: lexical_all[chunk] for chunk in both})
    assert dense == pytest.approx({chunk: dense_all[chunk] for chunk in both})


@pytest.mark.parametrize("version", [None, 1])
def test_any_query_text_searches_a_document_without_an_error(
    api: TestClient, content: Harness, version: int | None
) -> None:
    key = keys(content)
    response = upload(api, key[Role.contributor], "lodging.txt", LODGING + b"See http://ex.com/a:b@c.\n")
    assert response.status_code == 202, response.text
    content.drive()
    document_id = response.json()["document_id"]
    for query in HOSTILE_QUERIES:
        params: dict[str, str | int] = {"q": query, "document_id": document_id}
        if version is not None:
            params["version"] = version
        found = api.get("/v1/search", params=params, headers=key[Role.reader])
        assert found.status_code == 200, (query, found.text)
    params = {"q": "http://ex.com/a:b@c", "document_id": document_id, "mode": "lexical"}
    if version is not None:
        params["version"] = version
    hits = api.get("/v1/search", params=params, headers=key[Role.reader]).json()["hits"]
    assert hits and "ex.com" in hits[0]["text"]
