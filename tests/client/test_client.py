"""`quire.client` against a real Quire API, and against small local servers for what a real one
does not do on demand (throttle, drop a stream)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from quire.agent.service import AgentRunCreate, start_agent_run
from quire.client import AsyncQuire, Quire, QuireError, RetryPolicy
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.tenancy import Caller
from tests.factories import TenantFixture, make_key
from tests.harness import Harness
from tests.served import served_api


@pytest.fixture
def served(content: Harness, settings: Settings) -> Iterator[tuple[str, str]]:
    """The API's URL and an admin's key of the harness's tenant."""
    key = make_key(content.database, TenantFixture(id=content.tenant_id, name="client"), Role.admin)
    with served_api(content, settings) as url:
        yield url, key


def start_runs(content: Harness, count: int) -> list[str]:
    caller = Caller(principal_id=content.tenant_id, tenant_id=content.tenant_id, name="t", role=Role.admin)
    made = []
    with content.database.tenant_session(content.tenant_id) as session:
        for n in range(count):
            run_id, _ = start_agent_run(
                session,
                caller=caller,
                kicker=content.kicker,
                request=AgentRunCreate(question=f"question {n}?"),
                agent=content.services.agent,
            )
            made.append(str(run_id))
        session.commit()
    return made


def test_the_paginator_walks_every_page_by_cursor(content: Harness, served: tuple[str, str]) -> None:
    url, key = served
    made = start_runs(content, 3)
    seen: list[str] = []
    with Quire(url, key) as client:
        pages = client.agent_runs(limit=1)
        seen = [run.id for run in pages]
    assert sorted(seen) == sorted(made)  # every run once, over three pages of one

    async def walk() -> list[str]:
        async with AsyncQuire(url, key) as client:
            return [run.id async for run in client.agent_runs(limit=2)]

    assert sorted(anyio.run(walk)) == sorted(made)


def test_api_errors_carry_code_message_and_status(served: tuple[str, str]) -> None:
    url, key = served
    with Quire(url, key) as client, pytest.raises(QuireError) as unknown:
        client.agent_run("00000000-0000-0000-0000-000000000000")
    assert unknown.value.status == 404 and unknown.value.code == "run_not_found"
    assert unknown.value.message == "no run 00000000-0000-0000-0000-000000000000"

    with Quire(url, "qk_not-a-key") as client, pytest.raises(QuireError) as refused:
        client.search("holidays")
    assert refused.value.status == 401

    with Quire(url, key) as client, pytest.raises(QuireError) as invalid:
        client.search("holidays", mode="sideways")
    assert invalid.value.status == 422 and invalid.value.details is not None


def test_an_unreachable_server_is_one_error_naming_the_url() -> None:
    with Quire("http://127.0.0.1:1", "qk_x") as client, pytest.raises(QuireError) as error:
        client.search("x")
    assert error.value.code == "unreachable" and "http://127.0.0.1:1" in str(error.value)


def test_missing_configuration_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUIRE_URL", raising=False)
    monkeypatch.delenv("QUIRE_API_KEY", raising=False)
    with pytest.raises(QuireError, match="QUIRE_URL"):
        Quire()
    monkeypatch.setenv("QUIRE_URL", "http://127.0.0.1:1")
    with pytest.raises(QuireError, match="QUIRE_API_KEY"):
        Quire()
    monkeypatch.setenv("QUIRE_API_KEY", "qk_x")
    Quire().close()  # both from the environment


# Servers that misbehave on purpose.


class Script:
    """Answers given in turn to the requests a local server receives, and what they carried."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes, bool]]) -> None:
        self.answers = answers  # (status, headers, body, drop the connection after the body)
        self.requests: list[dict[str, str]] = []


@pytest.fixture
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no keep-alive: a body ends when the connection does

        def do_GET(self) -> None:
            script.requests.append({k.lower(): v for k, v in self.headers.items()})
            status, headers, body, _ = script.answers[min(len(script.requests), len(script.answers)) - 1]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()


SEARCH = json.dumps({"query": "x", "hits": [], "took_ms": 1.0}).encode()
THROTTLED = json.dumps({"error": {"code": "rate_limited", "message": "slow down", "details": None}}).encode()


def test_429_is_sent_again_after_its_retry_after(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.answers = [
        (429, {"Retry-After": "1", "Content-Type": "application/json"}, THROTTLED, False),
        (200, {"Content-Type": "application/json"}, SEARCH, False),
    ]
    waits: list[float] = []

    class Recording(RetryPolicy):
        def delay(self, response: Any, attempt: int) -> float | None:
            wait = super().delay(response, attempt)
            waits.append(wait if wait is not None else -1)
            return wait

    with Quire(url, "qk_x", retries=Recording()) as client:
        assert client.search("x").hits == []
    assert len(script.requests) == 2 and waits == [1.0]


def test_a_retry_after_beyond_the_bound_is_the_callers_error(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.answers = [(429, {"Retry-After": "3600", "Content-Type": "application/json"}, THROTTLED, False)]
    with Quire(url, "qk_x", retries=RetryPolicy(max_wait=5)) as client, pytest.raises(QuireError) as error:
        client.search("x")
    assert len(script.requests) == 1
    assert (error.value.status, error.value.code, error.value.message) == (429, "rate_limited", "slow down")

    script.requests.clear()
    script.answers = [(503, {"Retry-After": "0"}, b"busy", False)]
    with Quire(url, "qk_x", retries=RetryPolicy(attempts=3)) as client, pytest.raises(QuireError) as busy:
        client.search("x")
    assert len(script.requests) == 3 and busy.value.status == 503  # bounded


def event(n: int, kind: str) -> bytes:
    data = {"id": n, "type": kind, "data": {"n": n}, "created_at": "2026-01-01T00:00:00Z"}
    return f"id: {n}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def test_the_event_stream_resumes_after_a_drop_with_last_event_id(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    sse = {"Content-Type": "text/event-stream"}
    script.answers = [
        (200, sse, b": keep-alive\n\n" + event(1, "run_started") + event(2, "tool_call"), True),
        (200, sse, event(3, "answer") + b'event: end\ndata: {"run_id": "r"}\n\n', False),
    ]
    with Quire(url, "qk_x") as client:
        got = [(e.id, e.type) for e in client.events("r")]
    assert got == [(1, "run_started"), (2, "tool_call"), (3, "answer")]
    assert "last-event-id" not in script.requests[0]
    assert script.requests[1]["last-event-id"] == "2"

    script.requests.clear()

    async def follow() -> list[int]:
        async with AsyncQuire(url, "qk_x") as client:
            return [e.id async for e in client.events("r")]

    assert anyio.run(follow) == [1, 2, 3]
    assert script.requests[1]["last-event-id"] == "2"


def test_a_throttled_event_stream_is_opened_again_after_its_retry_after(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.answers = [
        (429, {"Retry-After": "0", "Content-Type": "application/json"}, THROTTLED, False),
        (200, {"Content-Type": "text/event-stream"}, event(1, "answer") + b"event: end\ndata: {}\n\n", False),
    ]
    with Quire(url, "qk_x") as client:
        assert [e.id for e in client.events("r")] == [1]
    assert len(script.requests) == 2

    script.requests.clear()
    script.answers = [
        (
            404,
            {"Content-Type": "application/json"},
            b'{"error": {"code": "run_not_found", "message": "no run r", "details": null}}',
            False,
        )
    ]
    with Quire(url, "qk_x") as client, pytest.raises(QuireError) as unknown:
        list(client.events("r"))
    assert unknown.value.code == "run_not_found" and len(script.requests) == 1


def test_importing_the_client_loads_no_server_module() -> None:
    code = (
        "import sys, quire.client; "
        "print([m for m in sys.modules if m.split('.')[0] in "
        "('sqlmodel', 'sqlalchemy', 'torch', 'psycopg', 'fastapi', 'sentence_transformers')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_citation_reads_as_the_api_sends_it() -> None:
    from quire.client.models import Citation

    passage = Citation.model_validate(
        {
            "n": 2,
            "kind": "document",
            "title": "Handbook",
            "version": 3,
            "section": ["A", "B"],
            "page": 4,
            "chunk_id": "c1",
        }
    )
    memory = Citation.model_validate({"n": 3, "kind": "memory", "title": "Holidays are 27 days"})
    assert (
        passage.label() == "Handbook (v3, A > B, p. 4)" and memory.label() == "memory: Holidays are 27 days"
    )
    assert passage.model_dump()["chunk_id"] == "c1"  # a field the client does not name is kept


def test_no_server_package_imports_the_client() -> None:
    # The client is for the outside (and the CLI in quire/app): the server must work without it.
    root = Path(__file__).resolve().parents[2] / "quire"
    importers = [
        str(path.relative_to(root))
        for package in ("core", "runtime", "content", "memory", "agent", "migrations")
        for path in (root / package).rglob("*.py")
        if "quire.client" in path.read_text()
    ]
    assert importers == []
