"""Retrying a failed version: from its stored bytes, as a new run, starting clean (issue 19)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.core.models import Role
from tests.content import fixtures
from tests.content.test_ingestion import HANDBOOK, keys, upload
from tests.factories import BreakableEmbedder, make_failed_version
from tests.harness import Harness


def rows(content: Harness, table: str, version_id: str) -> int:
    with content.database.tenant_session(content.tenant_id) as session:
        count = session.execute(
            text(f"SELECT count(*) FROM {table} WHERE version_id = :v"), {"v": version_id}
        ).scalar_one()
    return int(count)


def failed_upload(
    api: TestClient, content: Harness, embedder: BreakableEmbedder, key: dict[str, str]
) -> dict[str, str]:
    """A version whose ingestion failed half-way: its elements and chunks were written, the
    embedding step failed for good."""
    created = make_failed_version(api, content, embedder, key, name="travel.md", data=HANDBOOK.encode())
    assert rows(content, "content_element", created["version_id"]) > 0  # left by the failed attempt
    assert rows(content, "content_chunk", created["version_id"]) > 0
    return created


def test_a_failed_version_is_retried_from_its_stored_bytes_and_starts_clean(
    api: TestClient, content: Harness, embedder: BreakableEmbedder
) -> None:
    key = keys(content)
    created = failed_upload(api, content, embedder, key[Role.contributor])
    document_id = created["document_id"]

    retried = api.post(f"/v1/documents/{document_id}/versions/1/retry", headers=key[Role.contributor])
    assert retried.status_code == 202, retried.text
    body = retried.json()
    assert body["id"] == created["version_id"] and body["number"] == 1
    assert body["status"] == "stored" and body["error_code"] is None and body["status_reason"] is None
    assert body["run_id"] and body["run_id"] != created["run_id"]
    assert rows(content, "content_element", created["version_id"]) == 0  # the half-done rows are gone
    assert rows(content, "content_chunk", created["version_id"]) == 0
    content.drive()

    assert content.run(uuid.UUID(body["run_id"])).status == "completed"
    version = api.get(f"/v1/documents/{document_id}/versions/1", headers=key[Role.reader]).json()
    assert version["status"] == "indexed" and version["error_code"] is None
    assert rows(content, "content_element", created["version_id"]) == version["element_count"]
    assert rows(content, "content_chunk", created["version_id"]) == version["chunk_count"]
    hits = api.get("/v1/search", params={"q": "Oslo hotel cost"}, headers=key[Role.reader]).json()["hits"]
    texts = [h["text"] for h in hits]
    assert len(set(texts)) == len(texts)  # no chunk twice
    assert hits and hits[0]["citation"]["document_id"] == document_id
    document = api.get(f"/v1/documents/{document_id}", headers=key[Role.reader]).json()
    assert document["version_count"] == 1


def test_uploading_the_bytes_of_a_failed_version_again_retries_it(
    api: TestClient, content: Harness, embedder: BreakableEmbedder
) -> None:
    key = keys(content)
    created = failed_upload(api, content, embedder, key[Role.contributor])

    again = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode())
    assert again.status_code == 202, again.text
    body = again.json()
    assert body["version_id"] == created["version_id"] and body["version_number"] == 1
    assert body["created"] is False and body["run_id"] != created["run_id"]
    assert "retry" in body["message"] and "unchanged" not in body["message"]
    content.drive()
    version = api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key[Role.reader]).json()
    assert version["status"] == "indexed"
    assert rows(content, "content_element", created["version_id"]) == version["element_count"]


def test_only_a_failed_version_can_be_retried(api: TestClient, content: Harness) -> None:
    key = keys(content)
    good = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode()).json()
    photo = upload(api, key[Role.contributor], "photo.png", fixtures.image("png")).json()
    blank = upload(api, key[Role.contributor], "blank.txt", b"  \n\n\t\n").json()
    content.drive()

    def retry(document_id: str, number: int = 1, who: Role = Role.contributor):  # type: ignore[no-untyped-def]
        return api.post(f"/v1/documents/{document_id}/versions/{number}/retry", headers=key[who])

    indexed = retry(good["document_id"])
    assert indexed.status_code == 409 and indexed.json()["error"]["code"] == "version_not_retryable"
    assert "indexed" in indexed.json()["error"]["message"]
    unsupported = retry(photo["document_id"])
    assert unsupported.status_code == 409 and "unsupported" in unsupported.json()["error"]["message"]
    assert "same bytes" in unsupported.json()["error"]["message"]
    empty = retry(blank["document_id"])
    assert empty.status_code == 409 and "same bytes" in empty.json()["error"]["message"]
    assert retry(good["document_id"], 2).status_code == 404
    assert retry(str(uuid.uuid4())).status_code == 404
    assert retry(good["document_id"], who=Role.reader).status_code == 403


def test_a_version_whose_run_died_in_the_middle_can_be_retried(api: TestClient, content: Harness) -> None:
    """A run the sweeper gave up on (or someone cancelled) leaves its version in a middle stage."""
    key = keys(content)
    created = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode()).json()
    running = api.post(
        f"/v1/documents/{created['document_id']}/versions/1/retry", headers=key[Role.contributor]
    )
    assert running.status_code == 409 and "still" in running.json()["error"]["message"]
    cancelled = api.post(f"/v1/runs/{created['run_id']}/cancel", headers=key[Role.admin])
    assert cancelled.status_code == 202, cancelled.text
    content.drive()
    assert content.run(uuid.UUID(created["run_id"])).status == "cancelled"

    retried = api.post(
        f"/v1/documents/{created['document_id']}/versions/1/retry", headers=key[Role.contributor]
    )
    assert retried.status_code == 202, retried.text
    content.drive()
    version = api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key[Role.reader]).json()
    assert version["status"] == "indexed"


def test_documents_filter_on_their_latest_versions_status_a_page_at_a_time(
    api: TestClient, content: Harness, embedder: BreakableEmbedder
) -> None:
    key = keys(content)
    good = upload(api, key[Role.contributor], "good.md", HANDBOOK.encode()).json()
    content.drive()
    embedder.broken = True
    failed = [
        upload(api, key[Role.contributor], f"{name}.md", HANDBOOK.replace("Travel", name).encode()).json()
        for name in ("one", "two", "three", "mended")
    ]
    content.drive()
    embedder.broken = False
    # A failed version 1 with an indexed version 2 after it: the document has not failed.
    mended = upload(api, key[Role.contributor], "mended.md", HANDBOOK.encode()).json()
    assert mended["version_number"] == 2
    content.drive()

    def listed(**params: str) -> dict[str, Any]:
        response = api.get("/v1/documents", params=params, headers=key[Role.reader])
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = listed(status="failed", limit="2")
    assert first["count"] == 3 and len(first["data"]) == 2 and first["next_cursor"]
    second = listed(status="failed", limit="2", cursor=first["next_cursor"])
    assert second["count"] == 3 and len(second["data"]) == 1 and second["next_cursor"] is None
    assert {d["id"] for d in first["data"] + second["data"]} == {f["document_id"] for f in failed[:3]}
    indexed = listed(status="indexed")
    assert {d["id"] for d in indexed["data"]} == {good["document_id"], mended["document_id"]}
    assert listed(status="failed", collection="elsewhere")["count"] == 0

    bogus = api.get("/v1/documents", params={"status": "broken"}, headers=key[Role.reader])
    assert bogus.status_code == 422 and bogus.json()["error"]["code"] == "invalid_request"
    assert "status" in bogus.json()["error"]["message"]
