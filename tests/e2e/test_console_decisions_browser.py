"""Review decisions in a real headless Chromium (issue 20): a merge into an unapproved memory is
neither offered nor accepted; `a` on a proposal whose slot is taken leads to the choice, shown side
by side with a word diff, then supersede or keep both; a review run that fails sends the memory
back to the queue, decidable again.

Set up as tests/e2e/test_console_browser.py: the API and console served by uvicorn on committed
data, the review processes driven in-process after the decisions, as a worker would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from quire.core.models import Role
from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401  (a fixture)
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.memory.test_decisions import RETENTION, SLOT, retention
from tests.memory.test_lifecycle import POLICY

pytestmark = pytest.mark.e2e


class Api:
    """The API as the test's people use it beside the browser."""

    def __init__(self, base: str, content: Harness) -> None:
        tenant = TenantFixture(id=content.tenant_id, name="console")
        self.base = base
        self.content = content
        self.contributor = make_key(content.database, tenant, Role.contributor)
        self.reviewer = make_key(content.database, tenant, Role.reviewer, name="rita")

    def ingest(self, text: str, name: str) -> str:
        response = httpx.post(
            f"{self.base}/v1/documents",
            files={"file": (name, text.encode(), "text/markdown")},
            headers=auth(self.contributor),
        )
        assert response.status_code == 202, response.text
        self.content.drive()
        document_id: str = response.json()["document_id"]
        return document_id

    def propose(self, document_id: str, text: str, quote: str, subject_key: str | None = None) -> str:
        response = httpx.post(
            f"{self.base}/v1/memories",
            json={
                "text": text,
                "subject_key": subject_key,
                "evidence": [{"document_id": document_id, "quote": quote}],
            },
            headers=auth(self.contributor),
        )
        assert response.status_code == 202, response.text
        self.content.drive()
        item_id: str = response.json()["id"]
        return item_id

    def decide(self, item_id: str, **decision: Any) -> None:
        response = httpx.post(
            f"{self.base}/v1/memories/{item_id}/review", json=decision, headers=auth(self.reviewer)
        )
        assert response.status_code == 202, response.text

    def latest(self, item_id: str) -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(
            f"{self.base}/v1/memories/{item_id}", headers=auth(self.reviewer)
        ).json()["latest"]
        return found

    def in_review(self, fragment: str) -> str:
        items = httpx.get(
            f"{self.base}/v1/memories", params={"state": "in_review"}, headers=auth(self.reviewer)
        ).json()["data"]
        item_id: str = next(i["id"] for i in items if fragment in i["latest"]["text"])
        return item_id


@contextmanager
def console_page(base: str, key: str) -> Iterator[Any]:
    """A Chromium page logged into the console as `key`."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(f"{base}/console/login")
            page.fill("#key", key)
            page.click("form[action='/console/login'] button[type=submit]")
            expect(page).to_have_url(f"{base}/console/memory")
            yield page
        finally:
            browser.close()


def open_item(page: Any, base: str, item_id: str) -> None:
    page.goto(f"{base}/console/memory/{item_id}")
    page.wait_for_load_state("load")  # keys pressed before the page's script listens are lost


def retention_slot(api: Api) -> tuple[str, str]:
    """An approved "4 years" memory and a "5 years" proposal of the same slot."""
    document_id = api.ingest(RETENTION, "retention.md")
    four = api.propose(document_id, *retention(4), SLOT)
    api.decide(four, decision="approve")
    api.content.drive()
    five = api.propose(document_id, *retention(5), SLOT)
    return four, five


DUPLICATE = (
    "Employees must book flights through the travel portal.",
    "book flights through the travel portal",
)


def portal_and_duplicate(api: Api, *, approve: bool) -> tuple[str, str]:
    """The extractor's "travel portal" proposal (approved first, or still in review) and a
    person's duplicate of it."""
    document_id = api.ingest(POLICY, "policy.md")
    portal = api.in_review("travel portal")
    if approve:
        api.decide(portal, decision="approve")
        api.content.drive()
    return portal, api.propose(document_id, *DUPLICATE)


def test_a_merge_into_an_unapproved_memory_is_not_offered_and_refused(
    server: str,  # noqa: F811
    content: Harness,
) -> None:
    from playwright.sync_api import expect

    api = Api(server, content)
    portal, duplicate = portal_and_duplicate(api, approve=False)  # the portal one still in review

    with console_page(server, api.reviewer) as page:
        open_item(page, server, duplicate)
        # Found as a duplicate, but not offered: it is not approved.
        expect(page.locator("#merge-into")).to_have_value("")
        expect(page.locator(f"input[name=into][value='{portal}']")).to_have_count(0)
        page.keyboard.press("m")
        expect(page.locator("#merge-into")).to_be_focused()
        page.keyboard.type(portal)
        page.click("#merge")
        expect(page.locator("#flash")).to_contain_text("Not recorded")
        expect(page.locator("#flash")).to_contain_text("not approved")
        expect(page.locator("#pending")).to_have_count(0)
        expect(page.locator("#reject-form")).to_be_visible()

    content.drive()
    assert api.latest(duplicate)["state"] == "in_review"


def test_a_supersedes_the_slots_memory_after_the_diff(
    server: str,  # noqa: F811
    content: Harness,
) -> None:
    from playwright.sync_api import expect

    api = Api(server, content)
    four, five = retention_slot(api)

    with console_page(server, api.reviewer) as page:
        open_item(page, server, five)
        expect(page.locator("#approve")).to_have_count(0)
        page.keyboard.press("a")  # leads to the choice, not to an error
        expect(page.locator("#supersede")).to_be_focused()
        choice = page.locator("#slot-choice")
        expect(choice).to_be_visible()
        expect(choice.locator(".existing-text")).to_have_text(
            "Sensor readings are kept for 4 years, then deleted."
        )
        expect(choice.locator(".worddiff del")).to_have_text("4")
        expect(choice.locator(".worddiff ins")).to_have_text("5")
        expect(choice.locator(".side.existing mark")).to_have_text(
            "Sensor readings are kept for 4 years, then deleted."
        )
        expect(choice.locator(".side.proposed mark")).to_have_text(
            "sensor readings are kept for 5 years, then deleted."
        )
        page.keyboard.press("s")
        expect(page.locator("#flash")).to_contain_text("Decision recorded: supersede")

    content.drive()
    assert api.latest(four)["state"] == "superseded"
    assert api.latest(five)["state"] == "approved"


def test_keep_both_approves_beside_the_slots_memory(
    server: str,  # noqa: F811
    content: Harness,
) -> None:
    from playwright.sync_api import expect

    api = Api(server, content)
    four, five = retention_slot(api)

    with console_page(server, api.reviewer) as page:
        # `a` in the queue does not dead-end either: it opens the item's choice.
        row = page.locator(f"tr.row[data-href^='/console/memory/{five}']")
        expect(row).to_be_visible()
        row.locator("td").nth(2).click()  # the kind's cell: focuses the row, opens nothing
        expect(row).to_have_class(re.compile(r"\bis-current\b"))
        page.keyboard.press("a")
        expect(page).to_have_url(f"{server}/console/memory/{five}")
        expect(page.locator("#flash")).to_contain_text("keep both")
        expect(page.locator("#slot-choice")).to_be_visible()
        page.wait_for_load_state("load")
        page.keyboard.press("b")
        expect(page.locator("#flash")).to_contain_text("Decision recorded: keep_both")

    content.drive()
    assert api.latest(four)["state"] == "approved"
    assert api.latest(five)["state"] == "approved"


def test_a_failed_review_run_returns_the_memory_to_the_queue(
    server: str,  # noqa: F811
    content: Harness,
) -> None:
    from playwright.sync_api import expect

    api = Api(server, content)
    portal, duplicate = portal_and_duplicate(api, approve=True)

    with console_page(server, api.reviewer) as page:
        open_item(page, server, duplicate)
        expect(page.locator("#merge-into")).to_have_value(portal)  # approved: offered
        # Another reviewer withdraws the target before a worker applies the merge.
        withdrawn = httpx.delete(
            f"{server}/v1/memories/{portal}", params={"reason": "out of date"}, headers=auth(api.reviewer)
        )
        assert withdrawn.status_code == 202
        page.click("#merge")
        expect(page.locator("#flash")).to_contain_text("Decision recorded: merge")
        content.drive(until=3)

        page.goto(f"{server}/console/memory")
        row = page.locator(f"tr.row[data-href^='/console/memory/{duplicate}']")
        expect(row).to_be_visible()
        expect(row).not_to_have_class(re.compile(r"\bis-pending\b"))
        expect(row.locator(".approve")).to_be_visible()  # decidable from the queue again
        open_item(page, server, duplicate)
        expect(page.locator("#review-failed")).to_contain_text("could not be applied")
        expect(page.locator("#review-failed")).to_contain_text("not approved")
        expect(page.locator("#pending")).to_have_count(0)
        page.keyboard.press("r")
        expect(page.locator("#reject-reason")).to_be_focused()
        page.keyboard.type("the rule was withdrawn")
        page.keyboard.press("Enter")
        expect(page.locator("#flash")).to_contain_text("Decision recorded: reject")

    content.drive()
    assert api.latest(duplicate)["state"] == "rejected"
