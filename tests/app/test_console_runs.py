"""The run inspector and the operations page through a TestClient: roles, the timeline of an agent
run, generic runs, escaping, counts, queue depth, failures, spend and charts."""

from __future__ import annotations

import html as html_module
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import text

from quire.app.console.charts import dollars
from quire.content.environment import ContentEnvironment
from quire.core.db import Database
from quire.core.models import Role
from quire.core.pgqueue import enqueue_in
from quire.core.settings import Settings
from quire.runtime.kicks import BACKGROUND_QUEUE
from quire.runtime.local import LocalKicker
from quire.runtime.programs import registry
from tests.app.console_runs import (
    ANSWER,
    ASKED,
    FLAKY_ERROR,
    QUESTION,
    SEARCH,
    AgentRunMade,
    FlakyState,
    make_agent_run,
    scripted_models,
)
from tests.app.test_console import console_app, log_in
from tests.conftest import MAX_UPLOAD
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness


@pytest.fixture
def inspecting(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[TestClient]:
    """The console and the API on committed data, with runs driven in-process."""
    app = console_app(
        settings.model_copy(update={"max_upload_mb": MAX_UPLOAD / 2**20}), content.database, content.services
    )
    app.state.kicker = content.kicker
    with TestClient(app) as client:
        yield client


@pytest.fixture
def agent_run(inspecting: TestClient, content: Harness) -> AgentRunMade:
    with scripted_models(content):
        return make_agent_run(inspecting, content)


def model_steps(client: TestClient, made: AgentRunMade) -> list[dict[str, Any]]:
    run = client.get(f"/v1/agent/runs/{made.run_id}", headers=auth(made.keys[Role.reader])).json()
    return [step for step in run["steps"] if step["name"].startswith("model:")]


def entry(html: str, anchor: str) -> str:
    """The HTML of one timeline entry, by its id."""
    pattern = rf'<li class="entry [^"]*" id="{re.escape(anchor)}">(.*?)</li>\s*(?=<li class="entry|</ol>)'
    found = re.search(pattern, html, re.S)
    assert found, f"no timeline entry {anchor}"
    return found.group(1)


# The run list and the inspector.


def test_a_reader_sees_the_run_list_filtered_newest_first(
    inspecting: TestClient, content: Harness, agent_run: AgentRunMade
) -> None:
    assert log_in(inspecting, agent_run.keys[Role.reader], next="/console/runs").status_code == 303
    page = inspecting.get("/console/runs")
    assert page.status_code == 200, page.text
    assert "Content-Security-Policy" in page.headers
    rows = re.findall(r'<a href="/console/runs/([0-9a-f-]{36})" class="open">', page.text)
    # A reader sees their own runs only: their question, not the contributor's upload.
    assert rows == [agent_run.run_id]
    cost = sum(step["result"]["cost_usd"] for step in model_steps(inspecting, agent_run))
    assert cost > 0 and dollars(cost) in page.text
    assert "agent.answer" in page.text and "content.ingest" not in page.text
    assert str(escape(QUESTION))[:60] in page.text and "<script>alert" not in page.text
    # The nav offers what the role may open: no memory queue, no operations page for a reader.
    assert 'href="/console/runs">Runs' in page.text
    assert 'href="/console/memory">Memory' not in page.text and "/console/operations" not in page.text

    agents = inspecting.get("/console/runs", params={"program": "agent.answer", "status": "completed"})
    assert re.findall(r'href="/console/runs/([0-9a-f-]{36})" class="open"', agents.text) == [agent_run.run_id]
    assert 'value="agent.answer" selected' in agents.text
    failed = inspecting.get("/console/runs", params={"status": "failed"})
    assert 'id="empty"' in failed.text
    # Unknown filter values are dropped rather than failing.
    assert inspecting.get("/console/runs", params={"status": "<nope>", "offset": "x"}).status_code == 200


def test_the_inspector_shows_an_agent_runs_timeline(
    inspecting: TestClient, content: Harness, agent_run: AgentRunMade
) -> None:
    assert log_in(inspecting, agent_run.keys[Role.reader]).status_code == 303
    page = inspecting.get(f"/console/runs/{agent_run.run_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Content-Security-Policy" in page.headers

    # The question (escaped), the answer and its numbered source.
    assert str(escape(QUESTION)) in html
    assert ANSWER in html
    citations = re.search(r'<ol class="citations" id="citations">(.*?)</ol>', html, re.S)
    assert citations and "[1]" in citations.group(1) and "Holidays" in citations.group(1)
    assert "27 days of paid holiday" in citations.group(1)

    # Totals: tokens and cost over the model calls.
    steps = model_steps(inspecting, agent_run)
    assert [s["name"] for s in steps] == ["model:0", "model:1", "model:2"]
    total = sum(s["result"]["cost_usd"] for s in steps)
    usage = re.search(r'<section class="agent" id="agent">(.*?)</section>', html, re.S)
    assert usage and f"<dd>{dollars(total)}</dd>" in usage.group(1) and "<dd>3</dd>" in usage.group(1)

    # A model call: target, tokens, cost, latency, the assistant's text and the calls it asked for.
    first = steps[0]["result"]
    model = entry(html, f"step-{steps[0]['seq']}")
    assert "Model call, turn 0: asked for 2 tool calls" in model
    assert "<dd>backup</dd>" in model and "<dd>m-backup</dd>" in model
    assert f"<dd>{first['completion']['usage']['input_tokens']:,}</dd>" in model
    assert f"<dd>{dollars(first['cost_usd'])}</dd>" in model
    assert "Let me look that up." in model and 'href="#call-call_search"' in model

    # The fallback before it, with the Retry-After the first target asked for.
    assert "Fallback: primary rate limited, tried the next target" in html
    assert "primary is over its rate limit" in html and "<dd>7.0 s</dd>" in html

    # Tool calls: arguments and results.
    search = entry(html, "call-call_search")
    assert "Tool call: search_content" in search
    arguments = re.search(r'<pre class="arguments">(.*?)</pre>', search, re.S)
    assert arguments and json.loads(html_module.unescape(arguments.group(1))) == SEARCH
    assert "27 days of paid holiday" in search and "<dd>[1]" in search
    # A call the model made of a tool this reader's run is not offered: not run, and said so.
    refused = entry(html, "call-call_collections")
    assert "Tool call not run: list_collections" in refused and "the error went back to the model" in refused

    # The throttled second turn, parked for its Retry-After, then the person's question and answer.
    assert "Throttled: model:1 parked until the provider allows calls again" in html
    assert "Retry-After" in html
    assert "Tool call: ask_human" in html
    assert f"Human task opened: {escape(ASKED)}" in html
    assert "Waiting for a person&#39;s decision" in html
    assert "Decided: answer" in html and "Oslo &lt;i&gt;office&lt;/i&gt;" in html
    assert "<dd>reader-ann (reader)</dd>" in html
    assert "Resumed with the person&#39;s decision" in html
    assert "Answered" in html and "Completed" in html

    # The order in which it happened.
    order = [
        "Created: agent.answer",
        "Fallback: primary",
        "Model call, turn 0",
        "Tool call: search_content",
        "Throttled: model:1",
        "Model call, turn 1",
        "Human task opened",
        "Decided: answer",
        "Resumed with the person",
        "Model call, turn 2: answered",
        "Completed",
    ]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)

    # Nothing the question, the person or the document said became markup.
    for raw in ("<script>alert", "<b>bold</b>", "<i>office</i>"):
        assert raw not in html


def test_other_programs_show_their_steps_and_events(
    inspecting: TestClient, content: Harness, agent_run: AgentRunMade
) -> None:
    assert log_in(inspecting, agent_run.keys[Role.contributor]).status_code == 303  # the uploader
    listed = inspecting.get("/console/runs", params={"program": "content.ingest"}).text
    ingest_id = re.findall(r'href="/console/runs/([0-9a-f-]{36})" class="open"', listed)[0]
    page = inspecting.get(f"/console/runs/{ingest_id}").text
    assert "Created: content.ingest" in page and "Completed" in page
    assert page.count("Step: ") >= 2
    assert 'id="agent"' not in page  # no question or answer for a program that is not the agent

    # A failing program: its retry, its failed step and the reason, escaped (an administrator
    # sees runs that belong to nobody).
    assert log_in(inspecting, agent_run.keys[Role.admin]).status_code == 303
    run_id = content.start("test.console-flaky", FlakyState())
    content.drive(until=3)
    assert content.run(run_id).status == "failed"
    failed = inspecting.get(f"/console/runs/{run_id}").text
    assert "Retry: post-to-ledger failed on attempt 1" in failed
    assert "RuntimeError: the ledger timed out" in failed
    assert "Step: post-to-ledger failed" in failed and "Failed" in failed
    assert str(escape(FLAKY_ERROR)) in failed and "<script>alert" not in failed

    missing = inspecting.get(f"/console/runs/{uuid.uuid4()}")
    assert missing.status_code == 404 and "no run" in missing.text


def test_the_inspector_needs_a_login_and_sees_only_the_tenants_runs(
    inspecting: TestClient, content: Harness, agent_run: AgentRunMade
) -> None:
    response = inspecting.get(f"/console/runs/{agent_run.run_id}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/console/login?next=")
    # A key of another tenant finds no such run.
    other = content.database
    tenant_id = uuid.uuid4()
    try:
        with other.system_session() as session:
            session.execute(
                text("INSERT INTO core_tenant (id, name, created_at) VALUES (:id, :name, now())"),
                {"id": tenant_id, "name": f"other-{tenant_id.hex[:8]}"},
            )
            session.commit()
        stranger = make_key(other, TenantFixture(id=tenant_id, name="other"), Role.admin)
        assert log_in(inspecting, stranger).status_code == 303
        assert inspecting.get(f"/console/runs/{agent_run.run_id}").status_code == 404
        assert agent_run.run_id not in inspecting.get("/console/runs").text
    finally:
        with other.system_session() as session:
            session.execute(text("DELETE FROM core_tenant WHERE id = :id"), {"id": tenant_id})
            session.commit()


# The operations page.


def test_a_reader_gets_403_on_operations(
    settings: Settings, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    with TestClient(console_app(settings, database)) as client:
        for role in (Role.reader, Role.reviewer):
            assert log_in(client, make_key(database, tenants["acme"], role)).status_code == 303
            page = client.get("/console/operations")
            assert page.status_code == 403
            assert "this needs the admin role" in page.text


def test_an_admin_sees_counts_queue_depth_failures_spend_and_charts(
    inspecting: TestClient, content: Harness, agent_run: AgentRunMade
) -> None:
    failing = content.start("test.console-flaky", FlakyState())
    content.drive(until=3)
    assert content.run(failing).status == "failed"
    queued = content.start("test.console-flaky", FlakyState())  # never driven: due, not running
    # Its kick in the PostgreSQL broker's table, and a kick of a run of no tenant we can see. Ours
    # is sent as a background program's kick: the depth counts both of the runtime's queues.
    kicks = LocalKicker()
    assert registry.is_background("memory.on-version")
    ours = kicks.message(queued, 1, "memory.on-version")
    theirs = kicks.message(uuid.uuid4(), 1, "test.console-flaky")
    assert ours.queue_name == BACKGROUND_QUEUE
    with content.database.raw_connection() as conn:
        enqueue_in(conn, ours)
        enqueue_in(conn, theirs)
        conn.commit()
    try:
        assert log_in(inspecting, agent_run.keys[Role.admin], next="/console/operations").status_code == 303
        page = inspecting.get("/console/operations")
        assert page.status_code == 200, page.text
        html = page.text
        assert "Content-Security-Policy" in page.headers
        assert 'href="/console/operations">Operations' in html

        # Live counts by status, and the queue depth.
        assert re.search(r'id="live-queued">\s*<span class="card-value">1</span>', html)
        assert re.search(r'id="live-running">\s*<span class="card-value">0</span>', html)
        assert re.search(r'id="queue-depth">\s*<span class="card-value">1</span>', html)
        assert '<dd id="broker-ready">1</dd>' in html  # the other tenant's kick is not counted

        # Runs per hour: a chart, and a row per program with sparklines.
        assert html.count('<svg class="chart-svg"') == 3  # runs per hour, cost and tokens per day
        assert "Runs started, completed and failed per hour" in html
        programs = re.search(r'<table class="programs" id="programs">(.*?)</table>', html, re.S)
        assert programs and "agent.answer" in programs.group(1) and "test.console-flaky" in programs.group(1)
        assert 'class="sparkline' in programs.group(1)
        assert 'status=failed" class="bad">1</a>' in programs.group(1)

        # Recent failures, with the reason escaped and a link to the inspector.
        failures = re.search(r'<section id="failures">(.*?)</section>', html, re.S)
        assert failures and f'href="/console/runs/{failing}"' in failures.group(1)
        assert str(escape(FLAKY_ERROR)) in failures.group(1) and "<script>alert" not in html

        # Spend per model from agent_usage: tokens and cost.
        spent: dict[str, float] = {}
        for step in model_steps(inspecting, agent_run):
            target = f"{step['result']['target']} ({step['result']['model']})"
            spent[target] = spent.get(target, 0.0) + step["result"]["cost_usd"]
        assert set(spent) == {"backup (m-backup)", "primary (m-primary)"}  # the fallback, then the first
        models = re.search(r'<table class="models" id="models">(.*?)</table>', html, re.S)
        assert models
        for target, cost in spent.items():
            assert re.search(
                rf"<td>{re.escape(target)}</td>.*?<td>{re.escape(dollars(cost))}</td>", models.group(1), re.S
            )
        assert dollars(sum(spent.values())) in html
        assert "Model spend per day, last 30 days" in html
        assert re.search(r"<title>\d\d-\d\d · backup \(m-backup\): \$[0-9.]+</title>", html)

        # Workers are listed (or their absence said), shared by every tenant.
        assert 'id="workers-count"' in html
    finally:
        with content.database.raw_connection() as conn:  # the login's own role may (quire_queue)
            conn.execute(
                "DELETE FROM core_queue_message WHERE message_id IN (%s, %s)",
                (ours.message_id, theirs.message_id),
            )
            conn.commit()
