"""The review queue and a memory's checks in the console (issue 20): findings in plain words
with one recommended decision, flags and filters from the typed findings, search, sort, bulk
reject, who decided, and memories titled by what they say."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from quire.core.models import Role
from tests.app.test_console import csrf_of, ingest, keys_for, log_in, memory, proposals
from tests.app.test_console import reviewing as reviewing
from tests.factories import auth
from tests.harness import Harness
from tests.memory.test_lifecycle import by_text

HANDBOOK = """# Handbook

## Holidays

Every full-time employee has 25 days of paid holiday per calendar year, plus public holidays.

Holiday requests must go through the leave app.

## Travel

Employees must book flights through the travel portal.
"""


def two_versions(client: TestClient, content: Harness, key: dict[Role, str]) -> dict[str, dict[str, Any]]:
    """The handbook, then its second version with a new figure: the stale and the fresh proposal."""
    ingest(client, content, key[Role.contributor], HANDBOOK, "handbook.md", "text/markdown")
    second = HANDBOOK.replace("25 days", "27 days")
    ingest(client, content, key[Role.contributor], second, "handbook.md", "text/markdown")
    items = proposals(client, key[Role.reviewer])
    return {
        "stale": by_text(items, "25 days"),
        "fresh": by_text(items, "27 days"),
        "portal": by_text(items, "travel portal"),
        "requests": by_text(items, "leave app"),
    }


def rows_of(html: str) -> list[str]:
    """The memories a queue page lists, in order, by their title."""
    return re.findall(r'class="open">([^<]+)</a>', html)


def test_a_memorys_checks_read_in_plain_words_with_one_recommendation(
    reviewing: TestClient, content: Harness
) -> None:
    key = keys_for(content)
    made = two_versions(reviewing, content, key)
    stale, fresh = made["stale"], made["fresh"]
    log_in(reviewing, key[Role.reviewer])

    page = reviewing.get(f"/console/memory/{stale['id']}").text
    document_id = stale["latest"]["evidence"][0]["document_id"]
    element_id = fresh["latest"]["evidence"][0]["element_id"]
    assert "A newer version of its document no longer says this." in page
    assert f'href="/console/documents/{document_id}/versions/2?mark={element_id}#e-{element_id}"' in page
    assert "27 days of paid holiday" in page  # what the document says now
    assert page.count('id="recommendation"') == 1
    assert re.search(r'id="recommended-decision">Reject<', page)
    for raw in ("<pre>", "latest_version", "document_id", "merging is suggested", "Suggested decision"):
        assert raw not in page
    assert "<title>Every full-time employee has 25 days" in page  # titled by what it says
    assert stale["subject_key"] not in page  # the slot stays internal

    # Once the new figure is approved, the stale one conflicts too; still one recommendation.
    reviewing.post(
        f"/v1/memories/{fresh['id']}/review", json={"decision": "approve"}, headers=auth(key[Role.admin])
    )
    content.drive()
    page = reviewing.get(f"/console/memory/{stale['id']}").text
    assert "Conflicts with" in page and f'href="/console/memory/{fresh["id"]}"' in page
    # Beside the approved memory, the proposal's source from version 1 links to what changed since.
    choice = re.search(r'<section class="slot-choice" id="slot-choice">(.*?)</section>', page, re.S)
    assert choice is not None
    diff = f'href="/console/documents/{document_id}/versions/2/diff?against=1&amp;mark='
    assert choice.group(1).count(diff) == 1
    assert page.count('id="recommendation"') == 1 and re.search(r'id="recommended-decision">Reject<', page)

    # After the decision its findings are history, not a current recommendation.
    reviewing.post(
        f"/console/memory/{stale['id']}/decide",
        data={"decision": "reject", "reason": "the handbook says 27 now", "csrf": csrf_of(page)},
    )
    content.drive()
    page = reviewing.get(f"/console/memory/{stale['id']}").text
    assert 'id="recommendation"' not in page and 'id="checks-past"' in page
    assert "its checks are no longer run" in page


def test_a_clean_proposal_is_recommended_for_approval(reviewing: TestClient, content: Harness) -> None:
    key = keys_for(content)
    made = two_versions(reviewing, content, key)
    log_in(reviewing, key[Role.reviewer])
    page = reviewing.get(f"/console/memory/{made['portal']['id']}").text
    assert re.search(r'id="recommended-decision">Approve<', page)
    assert "Nothing found" in page


def test_the_queue_flags_filters_searches_and_sorts_by_finding(
    reviewing: TestClient, content: Harness
) -> None:
    key = keys_for(content)
    made = two_versions(reviewing, content, key)
    stale = made["stale"]
    document_id = stale["latest"]["evidence"][0]["document_id"]
    other = reviewing.post(
        "/v1/documents",
        files={
            "file": ("policy.md", b"# Travel\n\nLaptops are replaced every three years.\n", "text/markdown")
        },
        headers=auth(key[Role.contributor]),
    )
    assert other.status_code == 202
    content.drive()
    log_in(reviewing, key[Role.reviewer])

    queue = reviewing.get("/console/memory").text
    row = re.search(
        r'<tr class="row[^"]*" data-href="/console/memory/' + stale["id"] + r".*?</tr>", queue, re.S
    )
    assert row is not None and ">source changed</a>" in row.group(0)
    assert "slot:" not in queue and stale["subject_key"] not in queue
    assert 'value="source_changed"' in queue  # the finding filter offers every finding

    assert rows_of(reviewing.get("/console/memory", params={"flag": "source_changed"}).text) == [
        stale["latest"]["text"]
    ]
    by_document = rows_of(reviewing.get("/console/memory", params={"document": document_id}).text)
    assert stale["latest"]["text"] in by_document and not any("Laptops" in t for t in by_document)
    assert rows_of(reviewing.get("/console/memory", params={"q": "27 holiday"}).text) == [
        made["fresh"]["latest"]["text"]
    ]
    assert (
        rows_of(reviewing.get("/console/memory", params={"sort": "finding"}).text)[0]
        == stale["latest"]["text"]
    )
    fresh, old = made["fresh"]["latest"]["text"], stale["latest"]["text"]
    oldest = rows_of(reviewing.get("/console/memory").text)
    newest = rows_of(reviewing.get("/console/memory", params={"sort": "newest"}).text)
    assert oldest.index(old) < oldest.index(fresh) and newest.index(fresh) < newest.index(old)


def test_bulk_reject_with_one_reason_then_who_decided(reviewing: TestClient, content: Harness) -> None:
    key = keys_for(content)
    made = two_versions(reviewing, content, key)
    chosen = [made["stale"], made["requests"]]
    log_in(reviewing, key[Role.reviewer])
    queue = reviewing.get("/console/memory").text
    targets = [f"{i['id']}:{i['latest']['id']}" for i in chosen]

    no_reason = reviewing.post(
        "/console/memory/bulk-reject", data={"csrf": csrf_of(queue), "item": targets, "reason": " "}
    )
    assert "a rejection needs a reason" in no_reason.text
    done = reviewing.post(
        "/console/memory/bulk-reject",
        data={"csrf": csrf_of(queue), "item": targets, "reason": "not for agents", "next": "/console/memory"},
    )
    assert "Decisions recorded: 2 rejected" in done.text
    content.drive()
    for item in chosen:
        latest = memory(reviewing, key[Role.reviewer], item["id"])
        assert (latest["state"], latest["state_reason"]) == ("rejected", "not for agents")

    queue = reviewing.get("/console/memory").text
    assert made["stale"]["id"] not in queue and made["portal"]["id"] in queue
    everything = reviewing.get("/console/memory", params={"state": ""}).text
    assert everything.count("reviewer (reviewer)</a>") == 2  # the "decided by" column
    mine = re.search(r'href="([^"]+)" id="my-decisions"', queue)
    assert mine is not None
    my_decisions = reviewing.get(mine.group(1).replace("&amp;", "&")).text
    assert "My decisions" in my_decisions
    assert sorted(rows_of(my_decisions)) == sorted(i["latest"]["text"] for i in chosen)
