"""core/word_vectors.py: WordLlama's static token vectors, read from the installed package."""

from __future__ import annotations

import math

from quire.core.word_vectors import WORD_DIMENSIONS, word_vectors


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_a_text_becomes_one_unit_vector_and_the_same_text_the_same_one() -> None:
    words = word_vectors()
    first, again, other = words.embed(
        ["Book a flight to Paris", "Book a flight to Paris", "Bake a lemon cake"]
    )
    assert len(first) == WORD_DIMENSIONS == words.dim
    assert math.isclose(math.fsum(x * x for x in first), 1.0, rel_tol=1e-5)
    assert first == again and first != other


def test_texts_that_mean_alike_are_nearer_than_texts_that_do_not() -> None:
    flight, ticket, cake, forecast, rain = word_vectors().embed(
        [
            "book a flight to Paris",
            "reserve an airline ticket",
            "a recipe for lemon cake",
            "weather forecast for tomorrow",
            "will it rain this weekend",
        ]
    )
    assert _cosine(flight, ticket) > _cosine(flight, cake)
    assert _cosine(forecast, rain) > _cosine(forecast, cake)


def test_a_text_without_tokens_is_a_zero_vector_not_an_error() -> None:
    (empty,) = word_vectors().embed([""])
    assert empty == [0.0] * WORD_DIMENSIONS
    assert word_vectors().embed([]) == []
