"""The review console in a real headless Chromium: log in, approve one, reject one, see both in the API.

Debian's `chromium` (at /usr/bin/chromium), driven by Playwright's Python package; Playwright's own
browser downloads are never used. The API runs in a uvicorn thread on committed data; the test
drives the review processes in-process after the decisions, as a worker would.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from quire.app.api import create_app
from quire.app.console.mount import mount_console
from quire.app.console.session import COOKIE
from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from quire.core.settings import Settings
from tests.conftest import MAX_UPLOAD
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium's own connections are refused on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

POLICY = """# Expenses policy

## Travel

Employees must book flights through the travel portal.

Economy class is the default for flights under six hours.

## Hardware

Laptops are replaced every three years.
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[str]:
    """A Quire API with the console, served by uvicorn on a free port, on the harness's database."""
    app = create_app(
        settings=settings.model_copy(update={"max_upload_mb": MAX_UPLOAD / 2**20}),
        database=content.database,
        services=content.services,
    )
    mount_console(app)
    app.state.kicker = content.kicker
    port = free_port()
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, name="console-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        served.should_exit = True
        thread.join(15)


def screenshots_dir(tmp_path: Path) -> Path:
    """Where screenshots go: CONSOLE_SCREENSHOTS if set (to keep them), else the test's tmp folder."""
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def item_by_text(base: str, key: str, fragment: str) -> dict[str, Any]:
    items = httpx.get(f"{base}/v1/memories", params={"state": "in_review"}, headers=auth(key)).json()["data"]
    found: dict[str, Any] = next(item for item in items if fragment in item["latest"]["text"])
    return found


def test_review_in_a_real_browser(server: str, content: Harness, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import expect, sync_playwright

    tenant = TenantFixture(id=content.tenant_id, name="console")
    contributor = make_key(content.database, tenant, Role.contributor)
    reviewer = make_key(content.database, tenant, Role.reviewer, name="rita")
    uploaded = httpx.post(
        f"{server}/v1/documents",
        files={"file": ("policy.md", POLICY.encode(), "text/markdown")},
        headers=auth(contributor),
    )
    assert uploaded.status_code == 202, uploaded.text
    content.drive()
    portal = item_by_text(server, reviewer, "travel portal")
    laptops = item_by_text(server, reviewer, "Laptops")
    shots = screenshots_dir(tmp_path)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)

            # Log in: the queue sends a stranger to the login form, and back after it.
            page.goto(f"{server}/console/memory")
            expect(page).to_have_url(f"{server}/console/login?next=/console/memory")
            page.fill("#key", reviewer)
            page.click("form[action='/console/login'] button[type=submit]")
            expect(page).to_have_url(f"{server}/console/memory")
            expect(page.locator("#flash")).to_contain_text("Logged in as rita (reviewer)")
            expect(page.locator("tr.row")).to_have_count(3)
            page.screenshot(path=str(shots / "console-queue.png"), full_page=True)

            # Approve one with the keyboard, from its page: evidence in context, then `a`.
            page.click("a.open:has-text('travel portal')")
            expect(page.locator("#evidence mark")).to_have_text(
                "Employees must book flights through the travel portal."
            )
            expect(page.locator("#evidence .path")).to_have_text(
                "Expenses policy \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} Travel"
            )
            page.screenshot(path=str(shots / "console-item.png"), full_page=True)
            page.click("a.version-link")
            expect(page.locator("li.is-marked mark")).to_have_text(
                "Employees must book flights through the travel portal."
            )
            page.screenshot(path=str(shots / "console-document-version.png"), full_page=True)
            page.go_back()
            page.keyboard.press("a")
            expect(page.locator("#flash")).to_contain_text("Decision recorded: approve")
            expect(page.locator("#flash")).to_contain_text("moves to approved in a moment")

            # Reject another with a reason: `r` focuses the reason, Enter sends it.
            page.goto(f"{server}/console/memory")
            expect(page.locator("tr.row:has-text('travel portal') .pending")).to_contain_text(
                "decision recorded: approve"
            )
            page.click("a.open:has-text('Laptops')")
            # The click only starts the navigation: a key pressed before the item page's script
            # is listening is lost.
            expect(page.locator("#reject-reason")).to_be_visible()
            page.wait_for_load_state("load")
            page.keyboard.press("r")
            expect(page.locator("#reject-reason")).to_be_focused()
            page.keyboard.type("hardware is out of scope")
            page.keyboard.press("Enter")
            expect(page.locator("#flash")).to_contain_text("Decision recorded: reject")
            page.screenshot(path=str(shots / "console-after-decisions.png"), full_page=True)
        finally:
            browser.close()

    content.drive()
    approved = httpx.get(f"{server}/v1/memories/{portal['id']}", headers=auth(reviewer)).json()
    assert approved["latest"]["state"] == "approved"
    assert approved["approved_version_id"] == approved["latest"]["id"]
    rejected = httpx.get(f"{server}/v1/memories/{laptops['id']}", headers=auth(reviewer)).json()["latest"]
    assert (rejected["state"], rejected["state_reason"]) == ("rejected", "hardware is out of scope")
    rita = httpx.get(f"{server}/v1/me", headers=auth(reviewer)).json()["id"]
    assert approved["latest"]["approved_by"] == rita


def test_after_logout_the_old_cookie_gets_the_login_page(server: str, content: Harness) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import expect, sync_playwright

    tenant = TenantFixture(id=content.tenant_id, name="console")
    reviewer = make_key(content.database, tenant, Role.reviewer, name="rita")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto(f"{server}/console/login")
            page.fill("#key", reviewer)
            page.click("form[action='/console/login'] button[type=submit]")
            expect(page).to_have_url(f"{server}/console/memory")
            cookie = [c for c in context.cookies() if c["name"] == COOKIE]
            assert len(cookie) == 1

            # The copied cookie opens the console in another browser while the session lives ...
            copy = browser.new_context()
            copy.set_default_timeout(15_000)
            copy.add_cookies(cookie)  # type: ignore[arg-type]
            copied = copy.new_page()
            copied.goto(f"{server}/console/memory")
            expect(copied).to_have_url(f"{server}/console/memory")
            expect(copied.locator(".who")).to_have_text("rita · reviewer")
            copy.close()

            page.click("form[action='/console/logout'] button[type=submit]")
            expect(page).to_have_url(f"{server}/console/login")
            expect(page.locator("#flash")).to_contain_text("Logged out.")

            # ... and after logout the same cookie, in a fresh browser context, gets the login page.
            fresh = browser.new_context()
            fresh.set_default_timeout(15_000)
            fresh.add_cookies(cookie)  # type: ignore[arg-type]
            stale = fresh.new_page()
            stale.goto(f"{server}/console/memory")
            expect(stale).to_have_url(f"{server}/console/login?next=/console/memory")
            expect(stale.locator("#key")).to_be_visible()
            expect(stale.locator(".who")).to_have_count(0)
        finally:
            browser.close()
