"""The blends and reciprocal rank fusion, and the blend inside a statement against the one in Python."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from quire.core.db import Database
from quire.core.search.fusion import blend, blend_scaled, blend_sql, reciprocal_rank_fusion
from tests.factories import TenantFixture


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


def test_the_blend_inside_a_statement_is_the_blend_in_python(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    lexical = {a: 12.0, b: 3.0, d: 3.0}
    dense = {b: 0.9, c: 0.5, d: 0.5}
    legs = {"lexical": lexical, "dense": dense}
    with database.tenant_session(tenants["acme"].id) as session:
        rows = {
            name: "SELECT 1 AS n, id, score FROM "
            f"unnest(CAST(:{name}_ids AS uuid[]), CAST(:{name}_scores AS float8[])) AS u(id, score)"
            for name in legs
        }
        params: dict[str, object] = {"dense_weight": 0.3}
        for name, leg in legs.items():
            params[f"{name}_ids"], params[f"{name}_scores"] = list(leg), list(leg.values())
        in_sql = {
            row[1]: float(row[2])
            for row in session.execute(text(blend_sql(rows["lexical"], rows["dense"])), params)
        }
    assert in_sql == pytest.approx({f.id: f.score for f in blend(lexical, dense, dense_weight=0.3)})
