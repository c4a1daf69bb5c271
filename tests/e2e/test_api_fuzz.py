"""Schemathesis over the OpenAPI document, in-process through ASGI, with an admin's API key.

Every operation gets generated requests, valid and invalid, and each response must be no 5xx,
carry a status the document lists, and match the schema the document gives for it.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from quire.app.api import create_app
from quire.content.environment import ContentEnvironment
from quire.content.parsing import Parser
from quire.core.blobs import FileBlobStore
from quire.core.models import Role
from quire.core.settings import Settings
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness, make_harness

pytestmark = pytest.mark.e2e

MAX_UPLOAD = 2 * 1024 * 1024
EXAMPLES = int(__import__("os").environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# What a generated request may not do in a test process without workers or network.
UNREACHABLE_MCP_SERVER = "http://127.0.0.1:9/mcp"  # the discard port: refused at once


@pytest.fixture(scope="module")
def fuzzed(
    content_database_url: str, parser: Parser, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Harness, dict[str, str], Any]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    environment = ContentEnvironment(
        blobs=FileBlobStore(data_dir / "blobs"),
        embedding_model="all-MiniLM-L6-v2",
        max_upload_bytes=MAX_UPLOAD,
    )
    environment._parser = parser
    with make_harness(content_database_url) as harness:
        app = create_app(
            settings=Settings(data_dir=data_dir, max_upload_mb=MAX_UPLOAD / 2**20, rate_limit_per_minute=0),
            database=harness.database,
            services=harness.services,
        )
        app.state.kicker = harness.kicker
        key = make_key(harness.database, TenantFixture(id=harness.tenant_id, name="fuzz"), Role.admin)
        yield harness, auth(key), app


def prepare(case: schemathesis.Case) -> None:
    """Keep a generated request from what this process cannot do: wait for a worker, go online."""
    if not isinstance(case.body, dict):
        return
    if case.operation.label == "POST /v1/agent/ask":
        case.body["timeout_seconds"] = 0
    if case.operation.label == "POST /v1/tools/mcp-servers" and case.body.get("transport") == "http":
        case.body["url"] = UNREACHABLE_MCP_SERVER


def test_no_server_error_and_every_response_matches_the_document(
    fuzzed: tuple[Harness, dict[str, str], Any],
) -> None:
    _, headers, app = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    only = __import__("os").environ.get("FUZZ_ONLY")
    if only:
        schema = schema.include(path_regex=only)
    for result in schema.get_all_operations():
        operation = result.ok()
        inputs = operation.definition.raw.get("parameters") or operation.definition.raw.get("requestBody")
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if inputs else [GenerationMode.POSITIVE]
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: schemathesis.Case) -> None:
                prepare(case)
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                fuzz()
            except (Exception, FailureGroup) as error:  # every operation's failures, not the first only
                failures[f"{operation.label} ({mode.value})"] = "".join(traceback.format_exception(error))
    assert not failures, "\n\n".join(f"{label}: {error}" for label, error in failures.items())
