"""The console's own pages around the others: errors as console pages, the favicon, the login page
on a first visit (issue 20)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.app.console.session import COOKIE
from quire.core.db import Database
from quire.core.models import Role
from quire.core.settings import Settings
from tests.app.test_console import console_app, log_in
from tests.factories import TenantFixture, auth, make_key


@pytest.fixture
def browser(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(console_app(settings, database)) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/console/runs/not-a-run", "no run “not-a-run” here"),
        ("/console/memory/12345", "no memory “12345” here"),
        ("/console/documents/nope", "no document “nope” here"),
        ("/console/documents/nope/versions/1", "no document “nope” here"),
        (f"/console/documents/{uuid.uuid4()}/versions/x", "no version “x” here"),
        (f"/console/documents/{uuid.uuid4()}/versions/99999999999", "no version “99999999999” here"),
        (f"/console/documents/{uuid.uuid4()}/versions/0", "versions are numbered from 1"),
        (f"/console/runs/{uuid.uuid4()}", "no run"),
        (f"/console/documents/{uuid.uuid4()}", "no document"),
        (f"/console/documents/{uuid.uuid4()}/versions/1", "no document"),
        ("/console/no-such-page", "there is no console page at /console/no-such-page"),
    ],
)
def test_a_bad_or_unknown_id_gets_the_consoles_404_page(
    browser: TestClient, database: Database, tenants: dict[str, TenantFixture], path: str, says: str
) -> None:
    key = make_key(database, tenants["acme"], Role.admin, name="ada")
    assert log_in(browser, key).status_code == 303

    response = browser.get(path)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert '<p class="error-message" id="error">' in response.text and says in response.text
    assert '{"error"' not in response.text
    assert "ada · admin" in response.text  # the page keeps the console around it: nav, who, logout
    assert 'href="/console/documents">Documents' in response.text


def test_a_malformed_form_or_query_gets_a_console_page_too(
    browser: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    key = make_key(database, tenants["acme"], Role.reviewer)
    assert log_in(browser, key).status_code == 303
    response = browser.get(f"/console/documents/{uuid.uuid4()}/versions/1", params={"start": "-3"})
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert "the request was malformed: start:" in response.text
    posted = browser.post(
        f"/console/memory/{uuid.uuid4()}/decide", data={"decision": "x" * 50}, follow_redirects=False
    )
    assert posted.status_code == 422 and posted.headers["content-type"].startswith("text/html")


def test_the_api_keeps_its_json_errors(
    browser: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    key = make_key(database, tenants["acme"], Role.reader)
    bad = browser.get("/v1/runs/not-a-run", headers=auth(key))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    missing = browser.get(f"/v1/documents/{uuid.uuid4()}", headers=auth(key))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "document_not_found"
    nowhere = browser.get("/v1/no-such-thing")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"


def test_a_stranger_with_a_bad_id_is_asked_to_log_in_first(browser: TestClient) -> None:
    response = browser.get("/console/runs/not-a-run", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/console/login?next=")


def test_the_favicon_is_served(browser: TestClient) -> None:
    icon = browser.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    svg = browser.get("/console/static/favicon.svg")
    assert svg.status_code == 200 and svg.text.startswith("<svg")
    login = browser.get("/console/login").text
    assert '<link rel="icon" href="/console/static/favicon.svg"' in login


def test_a_first_visit_shows_the_login_page_without_an_error(browser: TestClient) -> None:
    first = browser.get("/console")  # a bookmark, followed to the queue and on to the login page
    assert str(first.url).endswith("/console/login?next=/console/memory")
    assert first.status_code == 200
    assert 'class="flash error"' not in first.text and 'id="login-error"' not in first.text
    assert 'class="flash info"' in first.text and "log in with an API key" in first.text
    direct = browser.get("/console/login")
    assert direct.status_code == 200 and 'id="flash"' not in direct.text


def test_an_expired_session_is_still_told_as_an_error(
    browser: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    key = make_key(database, tenants["acme"], Role.reviewer)
    log_in(browser, key)
    assert COOKIE in browser.cookies
    with database.tenant_session(tenants["acme"].id) as session:
        session.execute(text("UPDATE core_console_session SET expires_at = now() - interval '1 second'"))
        session.commit()
    page = browser.get("/console/memory")
    assert str(page.url).startswith(str(browser.base_url) + "/console/login")
    assert 'class="flash error"' in page.text and "log in again" in page.text
