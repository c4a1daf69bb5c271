"""The dense leg's statement against cosine similarity computed in Python."""

from __future__ import annotations

import math
import random
import uuid

import pytest
from sqlalchemy import text

from quire.core.db import Database
from quire.core.search.corpus import Corpus
from quire.core.search.dense import nearest, use_hnsw, vector_literal
from tests.factories import TenantFixture


def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in values))
    return [x / norm for x in values]


def test_nearest_finds_the_closest_rows_the_corpus_lets_through(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    rng = random.Random(3)
    rows = {uuid.uuid4(): (_unit([rng.gauss(0, 1) for _ in range(8)]), i % 2 == 0) for i in range(40)}
    query = _unit([rng.gauss(0, 1) for _ in range(8)])
    with database.tenant_session(tenants["acme"].id) as session:
        session.execute(text("CREATE TEMPORARY TABLE points (id uuid, embedding vector(8), even bool)"))
        for row_id, (vector, even) in rows.items():
            session.execute(
                text("INSERT INTO points VALUES (:id, CAST(:v AS vector), :even)"),
                {"id": row_id, "v": vector_literal(vector), "even": even},
            )
        session.execute(text("INSERT INTO points VALUES (:id, NULL, true)"), {"id": uuid.uuid4()})
        use_hnsw(session, ef_search=50)
        assert session.execute(text("SHOW hnsw.ef_search")).scalar_one() == "50"
        even = Corpus(
            table="points p",
            id="p.id",
            embedding="p.embedding",
            where="p.even = :even",
            params={"even": True},
        )
        found = {
            row[0]: float(row[1])
            for row in session.execute(
                text(nearest(even)), {**even.params, "vector": vector_literal(query), "limit": 5}
            )
        }
    expected = sorted(
        (
            (row_id, sum(a * b for a, b in zip(vector, query, strict=True)))
            for row_id, (vector, e) in rows.items()
            if e
        ),
        key=lambda pair: -pair[1],
    )[:5]
    assert found == pytest.approx(dict(expected), abs=1e-5)


def test_a_corpus_without_a_vector_column_has_no_dense_leg() -> None:
    with pytest.raises(ValueError):
        nearest(Corpus(table="points p", id="p.id"))


def test_a_vector_literal_is_what_pgvector_reads(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    vector = [0.1, -2.5e-8, 3.0, 1 / 3]
    with database.tenant_session(tenants["acme"].id) as session:
        back = session.execute(
            text("SELECT CAST(CAST(:v AS vector) AS real[])"), {"v": vector_literal(vector)}
        ).scalar_one()
    assert back == pytest.approx(vector, rel=1e-6)
