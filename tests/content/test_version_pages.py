"""A version's elements and chunks, a page at a time (issue 21): the list envelope, `id` for each
item's own id, and a cursor that walks the whole version in order."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from quire.core.models import Role
from tests.content.test_ingestion import HANDBOOK, keys, upload
from tests.harness import Harness


def handbook(api: TestClient, content: Harness, key: dict[Role, dict[str, str]]) -> str:
    created = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode()).json()
    content.drive()
    return str(created["document_id"])


def walk(api: TestClient, url: str, key: dict[str, str], limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paginated list, following `next_cursor`; and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = api.get(url, params=params, headers=key)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"data", "count", "next_cursor"}
        assert len(page["data"]) <= limit
        items += page["data"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            assert page["count"] == len(items)
            return items, pages


def test_the_elements_of_a_version_come_a_page_at_a_time_in_order(api: TestClient, content: Harness) -> None:
    key = keys(content)
    document_id = handbook(api, content, key)
    embedded = api.get(f"/v1/documents/{document_id}/versions/1", headers=key[Role.reader]).json()["elements"]

    elements, pages = walk(api, f"/v1/documents/{document_id}/versions/1/elements", key[Role.reader], 2)
    assert pages == -(-len(embedded) // 2) and len(embedded) > 4
    assert [e["id"] for e in elements] == [e["id"] for e in embedded]
    assert [e["position"] for e in elements] == sorted(e["position"] for e in elements)
    assert all("element_id" not in e for e in elements)
    flights = next(e for e in elements if "Economy class" in e["text"])
    assert flights["type"] == "narrative_text" and flights["section"] == ["Travel policy", "Flights"]
    assert "page" in flights

    whole = api.get(f"/v1/documents/{document_id}/versions/1/elements", headers=key[Role.reader]).json()
    assert [e["id"] for e in whole["data"]] == [e["id"] for e in elements] and whole["next_cursor"] is None


def test_the_chunks_of_a_version_name_the_elements_they_cover(api: TestClient, content: Harness) -> None:
    key = keys(content)
    document_id = handbook(api, content, key)
    elements, _ = walk(api, f"/v1/documents/{document_id}/versions/1/elements", key[Role.reader], 500)
    chunks, pages = walk(api, f"/v1/documents/{document_id}/versions/1/chunks", key[Role.reader], 1)
    assert pages == len(chunks) > 1
    assert len({c["id"] for c in chunks}) == len(chunks)
    assert [c["position"] for c in chunks] == sorted(c["position"] for c in chunks)
    by_id = {e["id"]: e for e in elements}
    for chunk in chunks:
        assert chunk["element_ids"] and set(chunk["element_ids"]) <= set(by_id)
        assert by_id[chunk["element_ids"][-1]]["text"] in chunk["text"]
    hotels = next(c for c in chunks if "Oslo" in c["text"])
    assert hotels["section"] == ["Travel policy", "Hotels"]


def test_a_version_out_of_sight_or_a_cursor_from_nowhere_is_refused(
    api: TestClient, content: Harness
) -> None:
    key = keys(content)
    document_id = handbook(api, content, key)
    for what in ("elements", "chunks"):
        missing_version = api.get(f"/v1/documents/{document_id}/versions/9/{what}", headers=key[Role.reader])
        assert missing_version.status_code == 404, missing_version.text
        missing_document = api.get(
            f"/v1/documents/{uuid.uuid4()}/versions/1/{what}", headers=key[Role.reader]
        )
        assert missing_document.status_code == 404
        bad = api.get(
            f"/v1/documents/{document_id}/versions/1/{what}",
            params={"cursor": "not a cursor!"},
            headers=key[Role.reader],
        )
        assert bad.status_code in (400, 422) and bad.json()["error"]["code"] == "invalid_cursor", bad.text
        too_many = api.get(
            f"/v1/documents/{document_id}/versions/1/{what}", params={"limit": 501}, headers=key[Role.reader]
        )
        assert too_many.status_code == 422
