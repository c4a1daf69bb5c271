"""What a message shows of a connection URL: what was written, without the password."""

from __future__ import annotations

import pytest

from quire.core.urls import without_password


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        (
            "postgres://ana:s3cret@db:5432/quire?sslmode=require",
            "postgres://ana:***@db:5432/quire?sslmode=require",
        ),
        ("postgresql://ana@db/quire", "postgresql://ana@db/quire"),
        (
            "postgresql+psycopg://postgres@/quire?host=/tmp/pg",
            "postgresql+psycopg://postgres@/quire?host=/tmp/pg",
        ),
        ("redis://:p@ss@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqps://guest:guest@mq", "amqps://guest:***@mq"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("not a url", "not a url"),
    ],
)
def test_only_the_password_is_masked(written: str, shown: str) -> None:
    assert without_password(written) == shown
