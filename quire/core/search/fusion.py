"""Joining the two legs: each leg's scores (item -> score) become one ranking.

`blend` min-max normalises each leg over its own candidates; `blend_scaled` divides BM25 by the
best and keeps cosine similarity as it is; `reciprocal_rank_fusion` uses ranks only. `blend_sql`
is `blend` inside a statement, for a search that fuses before its rows leave the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fused:
    id: uuid.UUID
    score: float
    lexical: float | None
    dense: float | None


def _min_max(scores: dict[uuid.UUID, float]) -> dict[uuid.UUID, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {key: (value - low) / span if span > 0 else 1.0 for key, value in scores.items()}


def _mix(
    lexical: dict[uuid.UUID, float],
    dense: dict[uuid.UUID, float],
    lexical_scaled: dict[uuid.UUID, float],
    dense_scaled: dict[uuid.UUID, float],
    dense_weight: float,
) -> list[Fused]:
    """Every candidate of either leg, by the weighted sum of its scaled scores (a missing one: 0)."""
    fused = [
        Fused(
            id=key,
            score=(1 - dense_weight) * lexical_scaled.get(key, 0.0)
            + dense_weight * dense_scaled.get(key, 0.0),
            lexical=lexical.get(key),
            dense=dense.get(key),
        )
        for key in set(lexical) | set(dense)
    ]
    return sorted(fused, key=lambda f: (-f.score, str(f.id)))


def blend(
    lexical: dict[uuid.UUID, float], dense: dict[uuid.UUID, float], *, dense_weight: float
) -> list[Fused]:
    """Min-max normalise each leg over its candidates and mix them; missing legs count as 0."""
    return _mix(lexical, dense, _min_max(lexical), _min_max(dense), dense_weight)


def blend_scaled(
    lexical: dict[uuid.UUID, float], dense: dict[uuid.UUID, float], *, dense_weight: float
) -> list[Fused]:
    """Mix BM25 over the best BM25 among the candidates with the cosine similarity as it is.

    For legs that each score every candidate (content search completes each leg over the other's
    candidates, so a missing score means a real 0 in BM25). Cosine similarity already has a fixed
    scale, which min-max would stretch away over each query's candidates; BM25 has none, so it is
    divided by the best. On SciFact's train queries this beat min-max over the same complete
    legs (nDCG@10 0.749 vs 0.746; bench/retrieval.py).
    """
    best = max(lexical.values(), default=0.0)
    scaled = {key: value / best for key, value in lexical.items()} if best > 0 else {}
    return _mix(lexical, dense, scaled, dense, dense_weight)


def reciprocal_rank_fusion(
    lexical: dict[uuid.UUID, float], dense: dict[uuid.UUID, float], *, k: int = 60
) -> list[Fused]:
    scores: dict[uuid.UUID, float] = {}
    for leg in (lexical, dense):
        for rank, key in enumerate(sorted(leg, key=lambda item: -leg[item])):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank + 1)
    fused = [
        Fused(id=key, score=score, lexical=lexical.get(key), dense=dense.get(key))
        for key, score in scores.items()
    ]
    return sorted(fused, key=lambda f: (-f.score, str(f.id)))


def blend_sql(
    lexical: str,
    dense: str,
    *,
    dense_weight: str = ":dense_weight",
    group: str = "n",
    more: Sequence[tuple[str, str]] = (),
) -> str:
    """`blend` as a statement (`group, id, score`) over two legs' rows (`group, id, score`).

    Each leg is min-max normalised over the candidates of its group (one group per request a
    statement searches for), 1 when they are all equal; a missing leg counts 0. `more` are further
    legs as (statement, weight expression), each added with its weight on top of the two.
    """
    weight = f"CAST({dense_weight} AS float8)"
    legs = [(lexical, f"(1 - {weight})"), (dense, weight)]
    legs += [(statement, f"CAST({extra} AS float8)") for statement, extra in more]
    scaled = "coalesce((score - min(score) OVER w) / nullif(max(score) OVER w - min(score) OVER w, 0), 1)"
    parts = "\n        UNION ALL\n".join(
        f"        SELECT {group}, id, {leg_weight} * {scaled} AS part\n"
        f"        FROM ({statement}) AS leg{i} WINDOW w AS (PARTITION BY {group})"
        for i, (statement, leg_weight) in enumerate(legs)
    )
    return f"""
    SELECT {group}, id, sum(part) AS score FROM (
{parts}
    ) AS parts GROUP BY {group}, id
    """
