"""The run inspector and the operations page in a real headless Chromium.

A reader opens an agent run (a fallback, a throttled turn, tool calls, a person's answer) and reads
its timeline; an administrator opens the operations page and its charts. The page must run under
the console's CSP without a single violation. Screenshots go to CONSOLE_SCREENSHOTS when it is set.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from quire.core.models import Role
from tests.app.console_runs import ASKED, QUESTION, FlakyState, make_agent_run, scripted_models
from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS, screenshots_dir, server  # noqa: F401
from tests.harness import Harness

pytestmark = pytest.mark.e2e


def test_the_run_inspector_and_operations_in_a_real_browser(
    server: str,  # noqa: F811
    content: Harness,
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import ConsoleMessage, expect, sync_playwright

    with httpx.Client(base_url=server, timeout=30) as client, scripted_models(content):
        made = make_agent_run(client, content)
    failing = content.start("test.console-flaky", FlakyState())
    content.drive(until=3)
    assert content.run(failing).status == "failed"
    shots = screenshots_dir(tmp_path)
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        # A CSP violation is reported as an error; so are the 403 asked for below and the favicon
        # the console does not have, which are expected.
        url = str(message.location.get("url", ""))
        expected = "status of 403" in message.text or url.endswith("/favicon.ico")
        if message.type in ("error", "warning") and not expected:
            problems.append(f"{message.text} ({url})")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.on("console", watch)

            # A reader logs in on the way to the run list and opens the agent run from it.
            page.goto(f"{server}/console/runs")
            expect(page).to_have_url(f"{server}/console/login?next=/console/runs")
            page.fill("#key", made.keys[Role.reader])
            page.click("form[action='/console/login'] button[type=submit]")
            expect(page).to_have_url(f"{server}/console/runs")
            expect(page.locator("tr.run-row").first).to_be_visible()
            # A reader's list holds their own runs only: the question, not the upload or the failure.
            assert page.locator("tr.run-row").count() == 1
            page.screenshot(path=str(shots / "console-runs.png"), full_page=True)
            page.click(f"a[href='/console/runs/{made.run_id}']")
            expect(page).to_have_url(f"{server}/console/runs/{made.run_id}")

            # The question is shown as text, markup and all; the answer cites its source.
            expect(page.locator("#question")).to_have_text(QUESTION)
            expect(page.locator("#answer")).to_contain_text("27 days of paid holiday a year [1]")
            expect(page.locator("#source-1")).to_contain_text("Holidays")

            # The timeline shows the tool calls with their arguments and results.
            search = page.locator("#call-call_search")
            expect(search.locator(".entry-title")).to_have_text("Tool call: search_content")
            expect(search.locator("pre.arguments")).to_contain_text('"query": "paid holiday days per year"')
            expect(search.locator("pre.output").first).to_contain_text("27 days of paid holiday")
            expect(page.locator("#call-call_collections .entry-title")).to_have_text(
                "Tool call not run: list_collections"
            )
            expect(page.locator("#call-call_ask pre.arguments")).to_contain_text(ASKED)
            expect(page.locator("li.entry-fallback .entry-title")).to_contain_text("primary rate limited")
            expect(page.locator("li.entry-throttle")).to_contain_text("Retry-After")
            expect(page.locator("li.entry-decision")).to_contain_text("Oslo <i>office</i>")
            expect(page.locator("li.entry-model")).to_have_count(3)
            page.screenshot(path=str(shots / "console-run-timeline.png"), full_page=True)

            # A requested call links to the entry of the tool call that ran it; a long result unfolds.
            page.click("a.call-name[href='#call-call_search']")
            expect(page).to_have_url(f"{server}/console/runs/{made.run_id}#call-call_search")
            search.locator("details.show-all summary").click()
            expect(search.locator("details.show-all pre.output")).to_be_visible()
            search.screenshot(path=str(shots / "console-run-tool-call.png"))

            # A reader has no operations page.
            assert page.goto(f"{server}/console/operations").status == 403  # type: ignore[union-attr]

            # An administrator has: counts, charts, the failure linked to its inspector.
            page.go_back()
            page.click("form[action='/console/logout'] button")
            page.goto(f"{server}/console/operations")
            page.fill("#key", made.keys[Role.admin])
            page.click("form[action='/console/login'] button[type=submit]")
            expect(page).to_have_url(f"{server}/console/operations")
            expect(page.locator("svg.chart-svg")).to_have_count(3)
            expect(page.locator("#programs")).to_contain_text("agent.answer")
            expect(page.locator("#failures")).to_contain_text("the ledger refused <script>")
            expect(page.locator("#models")).to_contain_text("backup (m-backup)")
            page.screenshot(path=str(shots / "console-operations.png"), full_page=True)
            page.click(f"#failures a[href='/console/runs/{failing}']")
            expect(page.locator("li.entry-retry .entry-title")).to_contain_text(
                "post-to-ledger failed on attempt 1"
            )
            page.screenshot(path=str(shots / "console-run-failed.png"), full_page=True)
        finally:
            browser.close()

    assert problems == [], f"the browser reported: {problems}"
