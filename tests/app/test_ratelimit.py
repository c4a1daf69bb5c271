"""Rate limits beyond /v1: /mcp per API key, console forms per session (review decisions with a
burst that fits a person deciding by keyboard), the login form per address."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from quire.app.api import create_app
from quire.app.console.mount import mount_console
from quire.core.db import Database
from quire.core.models import Role
from quire.core.settings import Settings
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

# Bursts of one: the second request within ten seconds is over the limit.
TIGHT = 6
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@contextmanager
def client_for(settings: Settings, database: Database, **limits: int) -> Iterator[TestClient]:
    with TestClient(create_app(settings=settings.model_copy(update=limits), database=database)) as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient, key: str) -> str:
    """Log in; returns the CSRF token of the session's forms."""
    form = client.get("/console/login")
    response = client.post(
        "/console/login", data={"key": key, "csrf": csrf_of(form.text)}, follow_redirects=False
    )
    assert response.status_code == 303, response.text[:300]
    return csrf_of(client.get("/console/memory").text)


def test_mcp_is_rate_limited_per_api_key(
    settings: Settings, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    first, second = (auth(make_key(database, tenants["acme"], role)) for role in (Role.reader, Role.admin))
    with client_for(settings, database, rate_limit_per_minute=TIGHT) as client:
        assert client.post("/mcp", json=TOOLS_LIST, headers={**first, **MCP_HEADERS}).status_code == 200
        refused = client.post("/mcp", json=TOOLS_LIST, headers={**first, **MCP_HEADERS})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
        # The key's budget is one across the API and MCP; another key has its own.
        assert client.get("/v1/runs", headers=first).status_code == 429
        assert client.post("/mcp", json=TOOLS_LIST, headers={**second, **MCP_HEADERS}).status_code == 200


def test_console_forms_are_rate_limited_per_session_with_a_readable_page(
    settings: Settings, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    key = make_key(database, tenants["acme"], Role.reviewer)
    app_settings = settings.model_copy(update={"console_rate_limit_per_minute": TIGHT})
    app = create_app(settings=app_settings, database=database)
    with TestClient(app) as browser:
        other_csrf = log_in(browser, key)
        other_session = dict(browser.cookies.items())
        browser.cookies.clear()
        csrf = log_in(browser, key)
        retry = f"/console/documents/{uuid.uuid4()}/versions/1/retry"
        form = {"csrf": csrf}
        assert browser.post(retry, data=form, follow_redirects=False).status_code != 429
        refused = browser.post(retry, data=form, follow_redirects=False)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/html")
        assert "Too many" in refused.text and 1 <= int(refused.headers["retry-after"]) <= 10
        # Pages still load; another session has its own budget.
        assert browser.get("/console/memory").status_code == 200
        browser.cookies = other_session
        other = browser.post(retry, data={**form, "csrf": other_csrf}, follow_redirects=False)
        assert other.status_code != 429


def test_failed_logins_are_rate_limited_per_client_address(
    settings: Settings, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    key = make_key(database, tenants["acme"], Role.reviewer)
    with client_for(settings, database, login_rate_limit_per_minute=TIGHT) as client:
        for _ in range(3):  # logging in with the right key costs nothing
            log_in(client, key)
        form = client.get("/console/login")
        guesses = [
            client.post("/console/login", data={"key": f"qk_guess-{n}", "csrf": csrf_of(form.text)})
            for n in range(3)
        ]
        assert guesses[0].status_code == 401
        assert [g.status_code for g in guesses[1:]] == [429, 429]
        assert "Too many" in guesses[1].text and "retry-after" in guesses[1].headers
        # Even the right key waits: the throttle does not reveal which guess was right.
        right = client.post("/console/login", data={"key": key, "csrf": csrf_of(form.text)})
        assert right.status_code == 429


# Rules the extractor proposes as memories, one a paragraph, each different; a document gives at
# most 25 proposals (memory/extraction.py), so five documents of 21.
RULEBOOKS = [
    "# Forms\n\n"
    + "\n\n".join(f"Form F-{book}{n:02} must be filed within {n + 2} days of the request." for n in range(21))
    for book in range(1, 6)
]


def test_a_reviewer_deciding_by_keyboard_is_not_stopped_but_a_flood_is(
    settings: Settings, content: Harness
) -> None:
    """At the default limits, a hundred decisions one after another all go through; a script
    sending far more, as fast as it can, is refused with the console's 429 page."""
    unlimited_api = settings.model_copy(update={"rate_limit_per_minute": 0})
    app = create_app(settings=unlimited_api, database=content.database, services=content.services)
    mount_console(app)
    app.state.kicker = content.kicker
    tenant = TenantFixture(id=content.tenant_id, name="console")
    contributor = make_key(content.database, tenant, Role.contributor)
    reviewer = make_key(content.database, tenant, Role.reviewer, name="rita")
    with TestClient(app) as browser:
        for number, rules in enumerate(RULEBOOKS):
            uploaded = browser.post(
                "/v1/documents",
                files={"file": (f"forms-{number}.md", rules.encode(), "text/markdown")},
                headers=auth(contributor),
            )
            assert uploaded.status_code == 202, uploaded.text
        content.drive()
        waiting = in_review(browser, reviewer)[:100]
        assert len(waiting) == 100
        csrf = log_in(browser, reviewer)

        answers = [
            browser.post(
                f"/console/memory/{item['id']}/decide",
                data={"csrf": csrf, "decision": "reject", "reason": "a form, not a rule"},
                follow_redirects=False,
            ).status_code
            for item in waiting
        ]
        assert answers == [303] * 100  # each recorded, none refused

        flood = [
            browser.post(
                f"/console/memory/{uuid.uuid4()}/decide",
                data={"csrf": csrf, "decision": "approve"},
                follow_redirects=False,
            )
            for _ in range(400)
        ]
        refused = [answer for answer in flood if answer.status_code == 429]
        assert len(refused) >= 300  # the burst is spent: held to the rate
        assert "Too many" in refused[0].text and int(refused[0].headers["retry-after"]) >= 1

        content.drive()
        left = {item["id"] for item in in_review(browser, reviewer)}
        assert left.isdisjoint(item["id"] for item in waiting)


def in_review(client: TestClient, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        "/v1/memories", params={"state": "in_review", "limit": 500}, headers=auth(key)
    ).json()["data"]
    return found
