"""Runtime tests run programs on committed rows, in a database of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quire.core.embedded import EmbeddedPostgres
from tests.conftest import create_database
from tests.harness import Harness, make_harness


@pytest.fixture(scope="session")
def runtime_database_url(postgres: EmbeddedPostgres) -> str:
    status = postgres.status()
    assert status.url is not None
    return create_database(status.url, "quire_runtime_test")


@pytest.fixture
def harness(runtime_database_url: str) -> Iterator[Harness]:
    with make_harness(runtime_database_url) as made:
        yield made
