"""The review queue in a real headless Chromium (issue 20): the stale proposal flagged after a new
document version, bulk reject, the queue on a 390 px screen, and the demo's proposals reviewed by
keyboard alone.

Same setup as tests/e2e/test_console_browser.py: Debian's /usr/bin/chromium driven by
Playwright, the API in a uvicorn thread on committed data, the review processes driven in the
test process after the decisions, as a worker would.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from quire.app.demo import APPROVE, COLLECTION, EXAMPLES, FIRST_VERSIONS, SECOND_VERSIONS
from quire.core.models import Role
from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS, POLICY, screenshots_dir
from tests.e2e.test_console_browser import server as server
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e


HANDBOOK = """# Handbook

## Holidays

Every full-time employee has 25 days of paid holiday per calendar year, plus public holidays.

Holiday requests go through the leave app.
"""


def upload(base: str, key: str, name: str, data: bytes, **form: str) -> None:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    done = httpx.post(
        f"{base}/v1/documents", files={"file": (name, data, kind)}, data=form, headers=auth(key)
    )
    assert done.status_code in (200, 202), done.text


def in_review(base: str, key: str) -> list[dict[str, Any]]:
    found = httpx.get(
        f"{base}/v1/memories", params={"state": "in_review", "limit": 500}, headers=auth(key)
    ).json()
    items: list[dict[str, Any]] = found["data"]
    return items


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def log_in(page: Page, base: str, key: str) -> None:
    """By keyboard: the key, then Enter."""
    from playwright.sync_api import expect

    page.goto(f"{base}/console/login?next=/console/memory")
    page.locator("#key").focus()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/console/memory")


def moved_from(here: str) -> Callable[[str], bool]:
    """A test of a page's address: true once it is another than `here`."""

    def moved(url: str) -> bool:
        return url != here

    return moved


def overflow(page: Page) -> int:
    """How many pixels the page is wider than its window (0: nothing scrolls sideways)."""
    width: int = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    return width


def test_the_stale_proposal_is_flagged_after_a_new_document_version(
    server: str, content: Harness, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    tenant = TenantFixture(id=content.tenant_id, name="console")
    contributor = make_key(content.database, tenant, Role.contributor)
    reviewer = make_key(content.database, tenant, Role.reviewer, name="rita")
    upload(server, contributor, "handbook.md", HANDBOOK.encode())
    content.drive()
    upload(server, contributor, "handbook.md", HANDBOOK.replace("25 days", "27 days").encode())
    content.drive()
    shots = screenshots_dir(tmp_path)

    with chromium() as page:
        log_in(page, server, reviewer)
        stale = page.locator("tr.row", has_text="25 days")
        expect(stale.locator(".flag")).to_have_text("source changed")
        expect(page.locator("tr.row", has_text="27 days").locator(".flag")).to_have_count(0)
        page.select_option("#flag-filter", "source_changed")
        page.click("#filters button[type=submit]")
        expect(page.locator("tr.row")).to_have_count(1)
        expect(page.locator("tr.row a.open")).to_contain_text("25 days of paid holiday")
        page.screenshot(path=str(shots / "queue-source-changed.png"), full_page=True)

        page.click("tr.row a.open")
        expect(page.locator("#recommended-decision")).to_have_text("Reject")
        expect(page.locator("#findings")).to_contain_text(
            "A newer version of its document no longer says this."
        )
        page.screenshot(path=str(shots / "item-source-changed.png"), full_page=True)
        link = page.locator(".finding-source_changed a.finding-link")
        href = link.get_attribute("href")
        assert href is not None and "/versions/2?mark=" in href
        link.click()
        expect(page).to_have_url(f"{server}{href}")
        expect(page.locator("h1")).to_contain_text("version 2")
        expect(page.locator("li.is-marked")).to_contain_text("27 days of paid holiday")


def test_bulk_reject_with_one_reason(server: str, content: Harness, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    tenant = TenantFixture(id=content.tenant_id, name="console")
    contributor = make_key(content.database, tenant, Role.contributor)
    reviewer = make_key(content.database, tenant, Role.reviewer, name="rita")
    upload(server, contributor, "policy.md", POLICY.encode())
    content.drive()
    waiting = in_review(server, reviewer)
    assert len(waiting) == 3

    with chromium() as page:
        log_in(page, server, reviewer)
        expect(page.locator("tr.row")).to_have_count(3)
        page.keyboard.press("x")  # the first row
        page.keyboard.press("j")
        page.keyboard.press("x")  # and the second
        expect(page.locator("#selected-count")).to_have_text("2")
        chosen = [page.locator("tr.row a.open").nth(n).inner_text() for n in (0, 1)]
        page.fill("#bulk-reason", "not for the agents")
        page.click("#bulk-reject")
        expect(page.locator("#flash")).to_contain_text("Decisions recorded: 2 rejected")
        page.screenshot(path=str(screenshots_dir(tmp_path) / "queue-bulk-rejected.png"), full_page=True)

    content.drive()
    left = in_review(server, reviewer)
    assert len(left) == 1 and left[0]["latest"]["text"] not in chosen
    for item in waiting:
        if item["latest"]["text"] in chosen:
            latest = httpx.get(f"{server}/v1/memories/{item['id']}", headers=auth(reviewer)).json()["latest"]
            assert (latest["state"], latest["state_reason"]) == ("rejected", "not for the agents")


def test_the_queue_fits_a_390_px_screen(server: str, content: Harness, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    tenant = TenantFixture(id=content.tenant_id, name="console")
    contributor = make_key(content.database, tenant, Role.contributor)
    reviewer = make_key(content.database, tenant, Role.reviewer, name="a-reviewer-with-a-rather-long-name")
    long_title = "A policy document whose title is much longer than a phone screen is wide " * 2
    upload(server, contributor, "handbook.md", HANDBOOK.encode(), title=long_title.strip())
    content.drive()
    upload(server, contributor, "handbook.md", HANDBOOK.replace("25 days", "27 days").encode())
    upload(server, contributor, "policy.md", POLICY.encode())
    content.drive()
    shots = screenshots_dir(tmp_path)

    with chromium(width=390, height=844) as page:
        log_in(page, server, reviewer)
        expect(page.locator("tr.row").first).to_be_visible()
        page.screenshot(path=str(shots / "queue-390.png"), full_page=True)
        assert overflow(page) == 0
        for params in ("state=", "sort=finding", "flag=source_changed"):
            page.goto(f"{server}/console/memory?{params}")
            assert overflow(page) == 0, params
        page.goto(f"{server}/console/memory")
        page.click("tr.row a.open >> nth=0")
        expect(page.locator("#memory-text")).to_be_visible()
        page.screenshot(path=str(shots / "item-390.png"), full_page=True)
        assert overflow(page) == 0


def test_the_demos_proposals_are_reviewed_by_keyboard_alone(
    server: str, content: Harness, tmp_path: Path
) -> None:
    """Every proposal the demo leaves for a reviewer, decided with the keyboard, one after another,
    at the console's default rate limits, each decision applied while the next page is read; the
    queue ends empty, with no error on the way.

    Approving into a slot that already has an approved memory asks for a choice (supersede or
    keep both), so the reviewer here approves only proposals the checks found nothing against
    and whose slot is free, and rejects the rest (with `r`, a reason, Enter): the decisions that
    are safe whatever approve-on-an-occupied-slot asks.
    """
    from playwright.sync_api import expect

    tenant = TenantFixture(id=content.tenant_id, name="demo")
    admin = make_key(content.database, tenant, Role.admin, name="demo-admin")
    reviewer = make_key(content.database, tenant, Role.reviewer, name="rita")
    for batch in (FIRST_VERSIONS, SECOND_VERSIONS):
        for example in batch:
            data = (EXAMPLES / example.file).read_bytes()
            form = {"collection": COLLECTION, "source_key": example.source_key, "title": example.title}
            upload(server, admin, Path(example.file).name, data, **form)
        content.drive()
    # As `quire demo` does: the admin approves one clear proposal from each file.
    for phrase in APPROVE:
        found = next(item for item in in_review(server, admin) if phrase in item["latest"]["text"])
        done = httpx.post(
            f"{server}/v1/memories/{found['id']}/review", json={"decision": "approve"}, headers=auth(admin)
        )
        assert done.status_code == 202, done.text
    content.drive()

    waiting = in_review(server, reviewer)
    assert len(waiting) >= 20, len(waiting)
    approved_slots = {
        item["subject_key"]
        for item in httpx.get(
            f"{server}/v1/memories", params={"state": "approved", "limit": 500}, headers=auth(admin)
        ).json()["data"]
    }
    slots = [item["subject_key"] for item in waiting]
    plan = {}
    for item in waiting:
        findings = set(item["latest"]["findings"]) - {"suggestion"}
        shared = item["subject_key"] in approved_slots or slots.count(item["subject_key"]) > 1
        plan[item["latest"]["text"]] = "reject" if findings or (item["subject_key"] and shared) else "approve"
    assert "reject" in plan.values() and "approve" in plan.values()
    stale = next(text for text in plan if "25 days" in text)
    assert plan[stale] == "reject"  # flagged: its handbook says 27 now, and 27 is approved

    decided: list[str] = []
    with chromium() as page:
        log_in(page, server, reviewer)
        expect(page.locator("tr.row.is-current")).to_have_count(1)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server}/console/memory/**")
        for _ in range(len(waiting) + 1):
            if page.url.split("?")[0] == f"{server}/console/memory":
                break  # back at the queue: the last one was decided
            expect(page.locator("#actions")).to_be_visible()  # every page offers a decision
            page.wait_for_load_state("load")
            text = page.locator("#memory-text").inner_text()
            here = page.url
            if plan[text] == "approve":
                page.keyboard.press("a")
            else:
                page.keyboard.press("r")
                expect(page.locator("#reject-reason")).to_be_focused()
                page.keyboard.type("left out of the agents' memory in review")
                page.keyboard.press("Enter")
            # The previous decision's message was on this page too: wait for the next page first.
            page.wait_for_url(moved_from(here))
            expect(page.locator("#flash")).to_contain_text(f"Decision recorded: {plan[text]}")
            expect(page.locator(".flash.error")).to_have_count(0)
            decided.append(text)
            content.drive()  # a worker applies it while the reviewer reads the next one
        expect(page.locator("h1")).to_contain_text("Memories to review")
        page.reload()
        expect(page.locator("tr.row")).to_have_count(0)
        expect(page.locator("#empty")).to_contain_text("The queue is empty.")
        page.screenshot(path=str(screenshots_dir(tmp_path) / "demo-reviewed.png"), full_page=True)

    assert len(decided) == len(waiting) and set(decided) == set(plan)  # each once, none skipped
    content.drive()
    assert in_review(server, reviewer) == []
    everything = httpx.get(f"{server}/v1/memories", params={"limit": 500}, headers=auth(admin)).json()["data"]
    states = {item["latest"]["text"]: item["latest"]["state"] for item in everything}
    for text, decision in plan.items():
        assert states[text] == ("approved" if decision == "approve" else "rejected"), text
