"""The console's side of review decisions (issue 20): the slot's choice instead of an approve that
retires, merge targets that can succeed, a failed review shown and decidable again, links in the
history."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from quire.core.settings import Settings
from tests.app.test_console import console_app, csrf_of, log_in
from tests.conftest import MAX_UPLOAD
from tests.factories import TenantFixture, make_key
from tests.harness import Harness
from tests.memory.test_decisions import decide, duplicate_of_portal, memory, retention_slot


@pytest.fixture
def reviewing(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[TestClient]:
    app = console_app(
        settings.model_copy(update={"max_upload_mb": MAX_UPLOAD / 2**20}), content.database, content.services
    )
    app.state.kicker = content.kicker
    with TestClient(app) as client:
        yield client


def logged_in(client: TestClient, content: Harness) -> str:
    """Log a reviewer of the harness's tenant into the console; returns the CSRF token."""
    key = make_key(content.database, TenantFixture(id=content.tenant_id, name="console"), Role.reviewer)
    assert log_in(client, key).status_code == 303
    return csrf_of(client.get("/console/memory").text)


def test_a_taken_slot_shows_the_choice_side_by_side_instead_of_approve(
    reviewing: TestClient, content: Harness
) -> None:
    _, _, four, five = retention_slot(reviewing, content)
    logged_in(reviewing, content)

    page = reviewing.get(f"/console/memory/{five}").text

    assert 'id="slot-choice"' in page and 'id="approve"' not in page
    assert 'id="supersede"' in page and 'id="keep-both"' in page
    assert f'name="supersedes" value="{four}"' in page
    assert "<del>4</del><ins>5</ins>" in page  # the word that changes
    existing = re.search(r'<div class="side existing">(.*?)</div>', page, re.S)
    assert existing is not None
    assert "Sensor readings are kept for 4 years, then deleted." in existing.group(1)
    assert "<mark>Sensor readings are kept for 4 years, then deleted.</mark>" in existing.group(1)
    proposed = re.search(r'<div class="side proposed">(.*?)</div>', page, re.S)
    assert proposed is not None
    assert "<mark>sensor readings are kept for 5 years, then deleted.</mark>" in proposed.group(1)


def test_approve_from_the_queue_on_a_taken_slot_leads_to_the_choice(
    reviewing: TestClient, content: Harness
) -> None:
    _, _, _, five = retention_slot(reviewing, content)
    token = logged_in(reviewing, content)

    response = reviewing.post(
        "/console/memory/bulk", data={"only": five, "csrf": token}, follow_redirects=False
    )

    assert response.status_code == 303 and response.headers["location"] == f"/console/memory/{five}"
    page = reviewing.get(response.headers["location"]).text
    assert "Choose: supersede it (s) or keep both (b)" in page and 'id="slot-choice"' in page


def test_the_merge_box_offers_only_approved_memories(reviewing: TestClient, content: Harness) -> None:
    key, portal, duplicate = duplicate_of_portal(reviewing, content, approve=False)
    token = logged_in(reviewing, content)

    page = reviewing.get(f"/console/memory/{duplicate}").text

    assert 'id="merge-form"' in page and f'value="{portal}"' not in page  # found, not offered
    refused = reviewing.post(
        f"/console/memory/{duplicate}/decide", data={"decision": "merge", "into": portal, "csrf": token}
    )
    assert "Not recorded" in refused.text and "not approved" in refused.text

    assert decide(reviewing, key["reviewer"], portal, decision="approve").status_code == 202
    content.drive()
    page = reviewing.get(f"/console/memory/{duplicate}").text
    assert f'<input type="radio" name="into" value="{portal}" id="merge-into" checked>' in page


def test_a_failed_review_shows_why_and_offers_the_decisions_again(
    reviewing: TestClient, content: Harness
) -> None:
    key, portal, duplicate = duplicate_of_portal(reviewing, content, approve=True)
    token = logged_in(reviewing, content)
    withdrawn = reviewing.delete(f"/v1/memories/{portal}", params={"reason": "old"}, headers=key["reviewer"])
    assert withdrawn.status_code == 202
    reviewing.post(
        f"/console/memory/{duplicate}/decide", data={"decision": "merge", "into": portal, "csrf": token}
    )
    content.drive(until=3)

    page = reviewing.get(f"/console/memory/{duplicate}").text

    assert 'id="review-failed"' in page and "not approved" in page
    assert 'id="pending"' not in page and 'id="reject-form"' in page
    queue = reviewing.get("/console/memory").text
    row = re.search(rf'<tr class="row[^"]*"[^>]*data-href="/console/memory/{duplicate}[^"]*"', queue)
    assert row is not None and "is-pending" not in row.group(0)

    # Decided again: a fresh review run takes the decision, and until it has, the page says so.
    reviewing.post(
        f"/console/memory/{duplicate}/decide",
        data={"decision": "reject", "reason": "withdrawn rule", "csrf": token},
    )
    page = reviewing.get(f"/console/memory/{duplicate}").text
    assert 'id="pending"' in page and 'id="review-failed"' not in page
    content.drive()
    assert memory(reviewing, key["reviewer"], duplicate)["latest"]["state"] == "rejected"


def test_the_history_links_a_merge_to_the_other_memory(reviewing: TestClient, content: Harness) -> None:
    key, portal, duplicate = duplicate_of_portal(reviewing, content, approve=True)
    logged_in(reviewing, content)
    assert decide(reviewing, key["reviewer"], duplicate, decision="merge", into=portal).status_code == 202
    content.drive()
    assert memory(reviewing, key["reviewer"], duplicate)["latest"]["state"] == "merged"

    merged = reviewing.get(f"/console/memory/{duplicate}").text
    target = reviewing.get(f"/console/memory/{portal}").text

    assert f'merged into <a href="/console/memory/{portal}" class="memory-link">' in merged
    assert f'merged in from <a href="/console/memory/{duplicate}" class="memory-link">' in target
    assert "merged from version" not in target
