"""A document is titled by its first heading (issue 21), not its file name: the file name stays
its source key and its versions' file name, and the title follows a new version's heading."""

from __future__ import annotations

from fastapi.testclient import TestClient

from quire.core.models import Role
from tests.content.test_ingestion import HANDBOOK, keys, upload
from tests.harness import Harness


def test_a_document_is_titled_by_its_first_heading_and_keeps_its_file_name(
    api: TestClient, content: Harness
) -> None:
    key = keys(content)
    created = upload(api, key[Role.contributor], "doc-v1.md", HANDBOOK.encode()).json()
    content.drive()
    document = api.get(f"/v1/documents/{created['document_id']}", headers=key[Role.reader]).json()
    assert document["title"] == "Travel policy"
    assert document["source_key"] == "doc-v1.md" and document["versions"][0]["filename"] == "doc-v1.md"
    listed = api.get("/v1/documents", params={"title": "travel pol"}, headers=key[Role.reader]).json()
    assert [d["id"] for d in listed["data"]] == [created["document_id"]]
    hits = api.get("/v1/search", params={"q": "hotel in Oslo"}, headers=key[Role.reader]).json()["hits"]
    assert hits and {h["citation"]["title"] for h in hits} == {"Travel policy"}

    # A new version whose first heading changed renames the document, in search too.
    renamed = HANDBOOK.replace("# Travel policy", "# Travel and expenses policy")
    upload(api, key[Role.contributor], "doc-v1.md", renamed.encode())
    content.drive()
    document = api.get(f"/v1/documents/{created['document_id']}", headers=key[Role.reader]).json()
    assert document["version_count"] == 2 and document["title"] == "Travel and expenses policy"
    assert [v["title"] for v in document["versions"]] == ["Travel policy", "Travel and expenses policy"]
    hits = api.get("/v1/search", params={"q": "hotel in Oslo"}, headers=key[Role.reader]).json()["hits"]
    assert {h["citation"]["title"] for h in hits} == {"Travel and expenses policy"}


def test_without_a_heading_the_title_is_the_file_name_and_a_given_title_wins(
    api: TestClient, content: Harness
) -> None:
    key = keys(content)
    notes = b"We met on Monday.\n\nWe agreed.\n"
    plain = upload(api, key[Role.contributor], "meeting-notes.txt", notes).json()
    given = upload(
        api, key[Role.contributor], "handbook.md", HANDBOOK.encode(), title="Company travel rules"
    ).json()
    content.drive()
    titles = {d["id"]: d["title"] for d in api.get("/v1/documents", headers=key[Role.reader]).json()["data"]}
    assert titles[plain["document_id"]] == "meeting-notes"
    assert titles[given["document_id"]] == "Company travel rules"
