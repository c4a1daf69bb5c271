"""The API's documentation pages work without the internet (issue 21): Swagger UI at /docs and
ReDoc at /redoc load their scripts and styles from Quire itself, so a browser that may reach no
other host still lists the operations.

Set up as tests/e2e/test_console_browser.py: Debian's chromium, the API in a uvicorn thread.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_console_browser import server as server  # the fixture

pytestmark = pytest.mark.e2e


def test_the_api_docs_list_the_operations_with_every_other_host_blocked(server: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import Route, expect, sync_playwright

    local = urlsplit(server).netloc
    blocked: list[str] = []

    def only_quire(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.route("**/*", only_quire)

            page.goto(f"{server}/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Quire")
            expect(page.locator(".opblock-summary-path", has_text="/v1/documents").first).to_be_visible()
            assert page.locator(".opblock").count() > 20

            page.goto(f"{server}/redoc")
            expect(page.locator("h1", has_text="Quire").first).to_be_visible()
            expect(page.get_by_text("/v1/documents").first).to_be_attached()
        finally:
            browser.close()
    assert blocked == []
