"""Documents in the console, in a real headless Chromium (issue 20): a failed document shows why it
failed and a contributor retries it; a reader reads what changed between two versions.

Set up as tests/e2e/test_console_browser.py: Debian's chromium, the API in a uvicorn thread on
committed data, runs driven in-process by the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from quire.core.models import Role
from tests.app.test_console_documents import LEAVE_V1, LEAVE_V2
from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS, POLICY, screenshots_dir
from tests.e2e.test_console_browser import server as server  # the fixture
from tests.factories import BreakableEmbedder, TenantFixture, auth, make_failed_version, make_key
from tests.harness import Harness

pytestmark = pytest.mark.e2e


def upload(base: str, key: str, name: str, data: bytes, kind: str) -> dict[str, Any]:
    created = httpx.post(f"{base}/v1/documents", files={"file": (name, data, kind)}, headers=auth(key))
    assert created.status_code == 202, created.text
    body: dict[str, Any] = created.json()
    return body


def test_a_failed_document_shows_its_reason_and_a_contributor_retries_it(
    server: str, content: Harness, embedder: BreakableEmbedder, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import expect, sync_playwright

    tenant = TenantFixture(id=content.tenant_id, name="documents")
    contributor = make_key(content.database, tenant, Role.contributor, name="cora")
    with httpx.Client(base_url=server) as api:
        failed = make_failed_version(
            api, content, embedder, auth(contributor), name="policy.md", data=POLICY.encode()
        )
    fine = upload(server, contributor, "notes.md", b"# Notes\n\nAll is well.\n", "text/markdown")
    content.drive()
    shots = screenshots_dir(tmp_path)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

            # A first visit: the login page, asking to log in, with nothing red on it or in the console.
            page.goto(f"{server}/console/documents")
            expect(page).to_have_url(f"{server}/console/login?next=/console/documents")
            expect(page.locator("#flash")).to_have_class("flash info")
            expect(page.locator(".flash.error")).to_have_count(0)
            page.wait_for_load_state("load")
            assert errors == []
            assert page.request.get(f"{server}/favicon.ico").status == 200

            page.fill("#key", contributor)
            page.click("form[action='/console/login'] button[type=submit]")
            expect(page).to_have_url(f"{server}/console/documents")
            broken_row = page.locator(f"#d-{failed['document_id']}")
            expect(broken_row.locator(".status")).to_have_text("failed")
            expect(broken_row.locator(".failure")).to_contain_text("the embedding model is down")
            expect(page.locator(f"#d-{fine['document_id']} .status")).to_have_text("indexed")
            expect(page.locator(f"#d-{fine['document_id']} button.retry")).to_have_count(0)
            page.screenshot(path=str(shots / "console-documents-failed.png"), full_page=True)

            # Only the failed ones, then the retry.
            page.select_option("#status-filter", "failed")
            page.click("#filters button[type=submit]")
            expect(page.locator("tr.document-row")).to_have_count(1)
            broken_row.locator("button.retry").click()
            expect(page.locator("#flash")).to_contain_text("Retrying version 1")
            expect(page).to_have_url(re.compile(r"/console/documents\?status=failed"))  # back where it was
            content.drive()
            page.goto(f"{server}/console/documents")
            expect(broken_row.locator(".status")).to_have_text("indexed")
            expect(broken_row.locator("button.retry")).to_have_count(0)
            page.screenshot(path=str(shots / "console-documents-retried.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()

    version = httpx.get(
        f"{server}/v1/documents/{failed['document_id']}/versions/1", headers=auth(contributor)
    )
    assert version.json()["status"] == "indexed"


def test_a_reader_reads_what_changed_between_two_versions(
    server: str, content: Harness, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import expect, sync_playwright

    tenant = TenantFixture(id=content.tenant_id, name="documents")
    contributor = make_key(content.database, tenant, Role.contributor)
    reader = make_key(content.database, tenant, Role.reader, name="rob")
    created = upload(server, contributor, "leave.txt", LEAVE_V1.encode(), "text/plain")
    content.drive()
    upload(server, contributor, "leave.txt", LEAVE_V2.encode(), "text/plain")
    content.drive()
    document = created["document_id"]
    shots = screenshots_dir(tmp_path)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(f"{server}/console/login?next=/console/documents")
            page.fill("#key", reader)
            page.click("form[action='/console/login'] button[type=submit]")
            expect(page).to_have_url(f"{server}/console/documents")

            # From the list to the diff: version 1 beside version 2, the changed words marked.
            page.click(f"#d-{document} a.diff-link")
            expect(page).to_have_url(f"{server}/console/documents/{document}/versions/2/diff")
            changed = page.locator(".pair.change-changed")
            expect(changed).to_have_count(1)
            expect(changed.locator(".before del")).to_have_text("25")
            expect(changed.locator(".after ins")).to_have_text("27")
            expect(page.locator(".pair.change-removed", has_text="Parking permits")).to_have_count(1)
            expect(page.locator(".pair.change-added .after")).to_contain_text(
                'Phones are replaced every <script>alert("two")</script> years.'
            )
            page.screenshot(path=str(shots / "console-document-diff.png"), full_page=True)

            # To version 1, which says there is a version 2 and links to what it changed.
            page.click(".diff-head .before a")
            expect(page).to_have_url(f"{server}/console/documents/{document}/versions/1")
            expect(page.locator("h1")).to_contain_text("version 1 of 2")
            page.click("#diff-next")
            expect(page).to_have_url(f"{server}/console/documents/{document}/versions/2/diff")

            # On a phone the two sides stack and the diff does not run off the screen.
            page.set_viewport_size({"width": 390, "height": 844})
            page.reload()
            right = page.evaluate("document.getElementById('diff').getBoundingClientRect().right")
            assert right <= 390, f"the diff ends at {right}px on a 390px screen"
            before, after = changed.locator(".before"), changed.locator(".after")
            assert (before.bounding_box() or {})["y"] < (after.bounding_box() or {})["y"]  # stacked
            page.screenshot(path=str(shots / "console-document-diff-narrow.png"), full_page=True)
        finally:
            browser.close()
