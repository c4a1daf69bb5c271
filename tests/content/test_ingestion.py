"""Upload → versions → elements → chunks → search, through the API and the ingestion program."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.content.environment import ContentEnvironment
from quire.core.embeddings import Embedder
from quire.core.models import Role
from tests.content import fixtures
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

HANDBOOK = """# Travel policy

Employees book travel through the portal at least two weeks ahead.

## Flights

Economy class is the default for flights under six hours.

Business class needs the approval of a director.

## Hotels

Hotels must be booked through the travel desk and cost at most 180 euros a night.

| City | Nightly cap |
| --- | --- |
| Paris | 180 |
| Oslo | 210 |
"""


def keys(harness: Harness) -> dict[Role, dict[str, str]]:
    tenant = TenantFixture(id=harness.tenant_id, name="content")
    return {role: auth(make_key(harness.database, tenant, role)) for role in Role}


def upload(api: TestClient, key: dict[str, str], name: str, data: bytes, **form: str):  # type: ignore[no-untyped-def]
    return api.post(
        "/v1/documents",
        files={"file": (name, data, form.pop("content_type", "application/octet-stream"))},
        data=form,
        headers=key,
    )


class CountingEmbedder(Embedder):
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.texts: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture
def counting(environment: ContentEnvironment, monkeypatch: pytest.MonkeyPatch) -> CountingEmbedder:
    counter = CountingEmbedder(environment.embedder)
    # Every embedding a process makes goes through its content environment's embedder.
    monkeypatch.setattr(ContentEnvironment, "embedder", property(lambda _: counter))
    return counter


def test_a_markdown_upload_becomes_a_searchable_cited_version(
    api: TestClient, content: Harness, counting: CountingEmbedder
) -> None:
    key = keys(content)
    response = upload(
        api,
        key[Role.contributor],
        "travel.md",
        HANDBOOK.encode(),
        collection="policies",
        tags="travel,hr",
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["created"] is True and created["version_number"] == 1
    content.drive()

    run = content.run(uuid.UUID(created["run_id"]))
    assert run.status == "completed"
    assert [e for e in content.events(run.id) if e == "ingest.progress"], "progress events"
    document = api.get(f"/v1/documents/{created['document_id']}", headers=key[Role.reader]).json()
    assert document["versions"][0]["status"] == "indexed"
    assert document["collection"] == "policies" and document["tags"] == ["hr", "travel"]

    version = api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key[Role.reader]).json()
    types = [e["type"] for e in version["elements"]]
    assert types[0] == "title" and "table" in types
    flights = next(e for e in version["elements"] if "Economy class" in e["text"])
    assert flights["section_path"] == ["Travel policy", "Flights"]
    table = next(e for e in version["elements"] if e["type"] == "table")
    assert "Oslo" in table["html"] and "<td>210</td>" in table["html"].replace(" ", "")

    original = api.get(f"/v1/documents/{created['document_id']}/versions/1/file", headers=key[Role.reader])
    assert original.content == HANDBOOK.encode()

    hits = api.get(
        "/v1/search", params={"q": "how much can a hotel in Oslo cost"}, headers=key[Role.reader]
    ).json()["hits"]
    assert hits[0]["citation"]["section"] == ["Travel policy", "Hotels"]
    table_hit = next(h for h in hits if "Oslo" in h["text"])
    citation = table_hit["citation"]
    assert citation["document_id"] == created["document_id"] and citation["version"] == 1
    assert citation["section"] == ["Travel policy", "Hotels"] and citation["element_ids"]
    assert citation["element_id"] == citation["element_ids"][0] and citation["title"] == "Travel policy"
    assert counting.texts, "chunks were embedded"


def test_the_same_bytes_again_make_no_new_version_and_embed_nothing(
    api: TestClient, content: Harness, counting: CountingEmbedder
) -> None:
    key = keys(content)
    first = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode()).json()
    content.drive()
    embedded = len(counting.texts)
    again = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode())
    assert again.status_code == 200
    body = again.json()
    assert body["created"] is False and body["version_id"] == first["version_id"]
    assert "unchanged" in body["message"]
    content.drive()
    assert len(counting.texts) == embedded  # nothing at all: no new version, no new proposals
    document = api.get(f"/v1/documents/{first['document_id']}", headers=key[Role.reader]).json()
    assert document["version_count"] == 1


def test_an_edit_of_one_paragraph_changes_one_element_and_reembeds_only_its_chunk(
    api: TestClient, content: Harness, counting: CountingEmbedder
) -> None:
    key = keys(content)
    first = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode()).json()
    content.drive()
    chunks_v1 = chunk_texts(content, uuid.UUID(first["version_id"]))
    counting.texts.clear()

    edited = HANDBOOK.replace("flights under six hours", "flights under eight hours")
    second = upload(api, key[Role.contributor], "travel.md", edited.encode()).json()
    assert second["created"] is True and second["version_number"] == 2
    content.drive()
    chunks_v2 = chunk_texts(content, uuid.UUID(second["version_id"]))

    diff = api.get(
        f"/v1/documents/{first['document_id']}/diff",
        params={"from": 1, "to": 2},
        headers=key[Role.reader],
    ).json()
    assert diff["added"] == [] and diff["removed"] == []
    assert [(c["before"], c["after"]) for c in diff["changed"]] == [
        (
            "Economy class is the default for flights under six hours.",
            "Economy class is the default for flights under eight hours.",
        )
    ]
    changed_chunks = set(chunks_v2) - set(chunks_v1)
    chunk_embeddings = [t for t in counting.texts if t.startswith("Travel policy\n")]  # not memory proposals
    assert len(changed_chunks) == 1 and len(chunk_embeddings) == 1  # only that chunk was embedded
    assert "eight hours" in chunk_embeddings[0]

    v1 = api.get(f"/v1/documents/{first['document_id']}/versions/1", headers=key[Role.reader]).json()
    v2 = api.get(f"/v1/documents/{first['document_id']}/versions/2", headers=key[Role.reader]).json()
    unchanged = {e["id"] for e in v1["elements"]} & {e["id"] for e in v2["elements"]}
    assert len(unchanged) == len(v1["elements"])  # every element kept its id; one changed content

    latest = api.get(
        "/v1/search",
        params={"q": "economy class flights hours", "mode": "lexical"},
        headers=key[Role.reader],
    ).json()
    assert "eight hours" in latest["hits"][0]["text"] and latest["hits"][0]["citation"]["version"] == 2
    older = api.get(
        "/v1/search",
        params={
            "q": "economy class flights hours",
            "document_id": first["document_id"],
            "version": 1,
        },
        headers=key[Role.reader],
    ).json()
    assert "six hours" in older["hits"][0]["text"] and older["hits"][0]["citation"]["version"] == 1


def chunk_texts(content: Harness, version_id: uuid.UUID) -> list[str]:
    with content.database.tenant_session(content.tenant_id) as session:
        return [
            row[0]
            for row in session.execute(
                text("SELECT text FROM content_chunk WHERE version_id = :v ORDER BY ord"),
                {"v": version_id},
            )
        ]


@pytest.mark.parametrize(
    ("name", "make", "status", "code"),
    [
        ("blank.txt", lambda: b"  \n\n\t\n", "empty", "no_text"),
        (
            "locked.pdf",
            lambda: fixtures.pdf([["A secret page"]], password="s3cret"),
            "failed",
            "encrypted",
        ),
        ("broken.pdf", lambda: fixtures.pdf([["Cut short"]])[:200], "failed", "corrupt"),
        ("photo.png", lambda: fixtures.image("png"), "unsupported", "unsupported"),
    ],
)
def test_bad_files_end_with_a_clear_status_and_keep_their_bytes(
    api: TestClient,
    content: Harness,
    name: str,
    make,
    status: str,
    code: str | None,  # type: ignore[no-untyped-def]
) -> None:
    key = keys(content)
    data = make()
    created = upload(api, key[Role.contributor], name, data).json()
    content.drive(until=2)
    version = api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key[Role.reader]).json()
    assert version["status"] == status, version
    assert version["error_code"] == code
    assert version["status_reason"]
    assert content.run(uuid.UUID(created["run_id"])).status == "completed"
    original = api.get(f"/v1/documents/{created['document_id']}/versions/1/file", headers=key[Role.reader])
    assert original.status_code == 200 and original.content == data


def test_a_wrong_declared_type_is_ignored(api: TestClient, content: Harness) -> None:
    key = keys(content)
    created = upload(api, key[Role.contributor], "report", fixtures.docx(), content_type="text/plain").json()
    content.drive()
    version = api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key[Role.reader]).json()
    assert (
        version["content_type"] == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert version["status"] == "indexed" and version["elements"]


def test_an_upload_over_the_limit_is_refused_before_it_is_stored(
    api: TestClient, content: Harness, environment: ContentEnvironment
) -> None:
    key = keys(content)
    too_big = b"a" * (4 * 1024 * 1024)
    response = upload(api, key[Role.contributor], "big.txt", too_big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert not list((environment.blobs.root).rglob("*")) or not any(
        p.is_file() and p.stat().st_size == len(too_big)
        for p in environment.blobs.root.rglob("*")  # type: ignore[attr-defined]
    )
    assert api.get("/v1/documents", headers=key[Role.reader]).json()["count"] == 0


def test_an_empty_upload_is_refused_with_a_code_before_it_is_stored(
    api: TestClient, content: Harness, environment: ContentEnvironment
) -> None:
    key = keys(content)
    response = upload(api, key[Role.contributor], "empty.txt", b"")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "empty_file" and "empty" in error["message"]
    assert not [p for p in environment.blobs.root.rglob("*") if p.is_file()]  # type: ignore[attr-defined]
    assert api.get("/v1/documents", headers=key[Role.reader]).json()["count"] == 0


def test_deleting_takes_a_document_out_of_search_but_keeps_its_versions(
    api: TestClient, content: Harness
) -> None:
    key = keys(content)
    created = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode()).json()
    content.drive()
    assert api.get("/v1/search", params={"q": "Oslo hotel"}, headers=key[Role.reader]).json()["hits"]
    assert api.delete(f"/v1/documents/{created['document_id']}", headers=key[Role.reader]).status_code == 403
    deleted = api.delete(
        f"/v1/documents/{created['document_id']}",
        params={"reason": "outdated"},
        headers=key[Role.contributor],
    )
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get("/v1/search", params={"q": "Oslo hotel"}, headers=key[Role.reader]).json()["hits"] == []
    assert api.get("/v1/documents", headers=key[Role.reader]).json()["count"] == 0
    kept = api.get(f"/v1/documents/{created['document_id']}", headers=key[Role.reader]).json()
    assert kept["deleted_at"] and kept["versions"][0]["status"] == "indexed"
    assert (
        api.get(
            f"/v1/documents/{created['document_id']}/versions/1/file", headers=key[Role.reader]
        ).status_code
        == 200
    )


def test_roles_and_tenants(api: TestClient, content: Harness) -> None:
    key = keys(content)
    assert upload(api, key[Role.reader], "travel.md", HANDBOOK.encode()).status_code == 403
    created = upload(api, key[Role.contributor], "travel.md", HANDBOOK.encode()).json()
    content.drive()
    from quire.core.models import Tenant

    with content.database.system_session() as session:
        other = Tenant(name=f"other-{uuid.uuid4().hex[:6]}")
        session.add(other)
        session.commit()
    try:
        stranger = auth(make_key(content.database, TenantFixture(other.id, other.name), Role.admin))
        assert api.get(f"/v1/documents/{created['document_id']}", headers=stranger).status_code == 404
        assert api.get("/v1/search", params={"q": "Oslo hotel"}, headers=stranger).json()["hits"] == []
        assert api.get("/v1/documents", headers=stranger).json()["count"] == 0
    finally:
        with content.database.system_session() as session:
            session.execute(text("DELETE FROM core_tenant WHERE id = :id"), {"id": other.id})
            session.commit()


def test_formats_ingest_end_to_end(api: TestClient, content: Harness) -> None:
    key = keys(content)
    files = {
        "report.docx": fixtures.docx(),
        "deck.pptx": fixtures.pptx(),
        "sheet.xlsx": fixtures.xlsx(),
        "paper.pdf": fixtures.pdf([["First page text about budgets."], ["Second page text about audits."]]),
        "note.eml": fixtures.eml(),
    }
    created = {name: upload(api, key[Role.contributor], name, data).json() for name, data in files.items()}
    content.drive()
    statuses = Counter(
        api.get(f"/v1/documents/{c['document_id']}/versions/1", headers=key[Role.reader]).json()["status"]
        for c in created.values()
    )
    assert statuses == {"indexed": len(files)}
    pdf = api.get(
        f"/v1/documents/{created['paper.pdf']['document_id']}/versions/1", headers=key[Role.reader]
    ).json()
    assert pdf["page_count"] == 2 and {e["page"] for e in pdf["elements"]} == {1, 2}


def test_a_versions_text_quality_warnings_are_shown_with_their_pages(
    api: TestClient, content: Harness
) -> None:
    key = keys(content)
    plain = ["Annual report", "Revenue grew by twelve percent over the previous year."]
    letter = ["Dear members of the board", "I would like to thank the committee for its support."]
    data = fixtures.pdf([plain, letter, letter], letter_spaced=[2, 3])
    created = upload(api, key[Role.contributor], "letter.pdf", data).json()
    content.drive()

    version = api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key[Role.reader]).json()

    assert version["status"] == "indexed"
    assert version["warnings"] == [
        {"code": "letter_spaced_text", "message": "joined letter-spaced words on pages 2-3", "pages": [2, 3]}
    ]
    assert "I would like to thank the committee for its support." in [e["text"] for e in version["elements"]]
    document = api.get(f"/v1/documents/{created['document_id']}", headers=key[Role.reader]).json()
    assert document["versions"][0]["warnings"] == version["warnings"]


def test_an_encrypted_email_without_readable_text_keeps_its_warning(
    api: TestClient, content: Harness
) -> None:
    key = keys(content)
    created = upload(api, key[Role.contributor], "contract.eml", fixtures.smime_eml()).json()
    content.drive()

    version = api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key[Role.reader]).json()

    assert version["status"] == "empty"
    assert [w["code"] for w in version["warnings"]] == ["encrypted_content"]


def test_finished_versions_carry_their_warnings(api: TestClient, content: Harness) -> None:
    from quire.content.service import finished_versions

    key = keys(content)
    created = upload(api, key[Role.contributor], "contract.eml", fixtures.pgp_eml()).json()
    content.drive()

    with content.database.tenant_session(content.tenant_id) as session:
        finished = finished_versions(session, [uuid.UUID(created["version_id"])])

    (version,) = finished.values()
    assert version.status == "indexed"  # the headers and "Version: 1" are text
    assert version.warnings == ["the email's body is encrypted (PGP); only its headers could be read"]
