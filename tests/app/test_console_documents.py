"""Documents in the console through a TestClient: the list with statuses, warnings and failures,
a retry, a document's versions, a version's links, the diff of two versions (issue 20)."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from quire.app.console import documents
from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from quire.core.settings import Settings
from tests.app.test_console import POLICY, by_text, console_app, csrf_of, keys_for, log_in, proposals
from tests.conftest import MAX_UPLOAD
from tests.content import fixtures
from tests.factories import BreakableEmbedder, auth, make_failed_version
from tests.harness import Harness

LEAVE_V1 = """# Leave policy

## Holidays

Every employee gets 25 days of paid holiday a year.

Holiday requests go through the leave app.

## Parking

Parking permits are renewed every January.

## Equipment

Laptops are replaced every three years.
"""

# 25 becomes 27, the parking section goes, a sentence (with markup, to be escaped) is added at the end.
LEAVE_V2 = """# Leave policy

## Holidays

Every employee gets 27 days of paid holiday a year.

Holiday requests go through the leave app.

## Equipment

Laptops are replaced every three years.

Phones are replaced every <script>alert("two")</script> years.
"""


@pytest.fixture
def console(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[TestClient]:
    """The console and the API on committed data, with runs driven in-process."""
    app = console_app(
        settings.model_copy(update={"max_upload_mb": MAX_UPLOAD / 2**20}), content.database, content.services
    )
    app.state.kicker = content.kicker
    with TestClient(app) as client:
        yield client


def upload(
    client: TestClient, key: str, name: str, data: bytes, kind: str = "text/markdown"
) -> dict[str, str]:
    created = client.post("/v1/documents", files={"file": (name, data, kind)}, headers=auth(key))
    assert created.status_code in (200, 202), created.text
    body: dict[str, str] = created.json()
    return body


def row_of(html: str, document_id: str) -> str:
    found = re.search(rf'<tr class="document-row[^"]*" id="d-{document_id}">(.*?)</tr>', html, re.S)
    assert found, f"no row for document {document_id}"
    return found.group(1)


def document_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="document-row[^"]*" id="d-([0-9a-f-]{36})">', html)


def test_the_list_shows_each_documents_latest_version_with_its_warnings_and_failure(
    console: TestClient, content: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = keys_for(content)
    good = upload(console, key[Role.contributor], "policy.md", POLICY.encode())
    plain = ["Annual report", "Revenue grew by twelve percent over the previous year."]
    spaced = ["Dear members of the board", "I would like to thank the committee for its support."]
    letter = fixtures.pdf([plain, spaced], letter_spaced=[2])
    warned = upload(console, key[Role.contributor], "letter.pdf", letter, "application/pdf")
    locked = fixtures.pdf([["A secret page"]], password="s3cret")
    failed = upload(console, key[Role.contributor], "locked.pdf", locked, "application/pdf")
    content.drive(until=2)
    assert log_in(console, key[Role.reader], next="/console/documents").status_code == 303

    page = console.get("/console/documents")

    assert page.status_code == 200, page.text
    assert 'href="/console/documents">Documents' in page.text  # in the nav, for every role
    assert set(document_ids(page.text)) == {good["document_id"], warned["document_id"], failed["document_id"]}
    locked_row = row_of(page.text, failed["document_id"])
    assert "vstatus-failed" in locked_row and '<code class="error-code">encrypted</code>' in locked_row
    assert "protected by a password" in locked_row
    assert "joined letter-spaced words on page 2" in row_of(page.text, warned["document_id"])
    assert "vstatus-indexed" in row_of(page.text, good["document_id"])
    assert "Retry" not in page.text  # a reader may not retry, so is not offered it

    only_failed = console.get("/console/documents", params={"status": "failed"}).text
    assert document_ids(only_failed) == [failed["document_id"]]
    assert 'class="chip-failed is-current"' in only_failed
    # Unknown filter values are dropped rather than failing.
    assert console.get("/console/documents", params={"status": "<x>", "offset": "y"}).status_code == 200

    monkeypatch.setattr(documents, "PAGE_SIZE", 2)
    first = console.get("/console/documents").text
    assert len(document_ids(first)) == 2 and 'id="older"' in first and "1\N{EN DASH}2 of 3" in first
    second = console.get("/console/documents", params={"offset": 2}).text
    assert len(document_ids(second)) == 1 and 'id="newer"' in second
    assert set(document_ids(first) + document_ids(second)) == {
        good["document_id"],
        warned["document_id"],
        failed["document_id"],
    }


def test_a_failed_version_is_retried_from_the_console_by_a_contributor_only(
    console: TestClient, content: Harness, embedder: BreakableEmbedder
) -> None:
    key = keys_for(content)
    contributor = auth(key[Role.contributor])
    created = make_failed_version(
        console, content, embedder, contributor, name="policy.md", data=POLICY.encode()
    )
    document_id = created["document_id"]
    retry = f"/console/documents/{document_id}/versions/1/retry"

    # A reader sees the failure and its reason, but no retry; the action refuses them all the same.
    assert log_in(console, key[Role.reader], next="/console/documents").status_code == 303
    listed = console.get("/console/documents").text
    assert "the embedding model is down" in row_of(listed, document_id) and retry not in listed
    refused = console.post(retry, data={"csrf": csrf_of(listed)}, follow_redirects=False)
    assert refused.status_code == 403 and "this needs the contributor role" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    reader_view = console.get(f"/v1/documents/{document_id}/versions/1", headers=auth(key[Role.reader]))
    assert reader_view.json()["status"] == "failed"

    assert log_in(console, key[Role.contributor], next="/console/documents").status_code == 303
    listed = console.get("/console/documents").text
    assert f'action="{retry}"' in row_of(listed, document_id)
    without_token = console.post(retry, data={"next": "/console/documents"}, follow_redirects=False)
    assert without_token.status_code == 403
    retried = console.post(retry, data={"csrf": csrf_of(listed), "next": "/console/documents?status=failed"})
    assert retried.status_code == 200 and str(retried.url).endswith("/console/documents?status=failed")
    assert "Retrying version 1: its ingestion started again" in retried.text
    content.drive()
    after = console.get(f"/console/documents/{document_id}").text
    assert "vstatus-indexed" in after and retry not in after

    # A version that did not fail: the retry is refused with the reason, nothing breaks.
    again = console.post(retry, data={"csrf": csrf_of(after)})
    assert "Not retried: version 1 is indexed; there is nothing to retry" in again.text
    missing = console.post(
        f"/console/documents/{uuid.uuid4()}/versions/1/retry",
        data={"csrf": csrf_of(after)},
        follow_redirects=False,
    )
    assert missing.status_code == 404 and "no document" in missing.text


def pairs_of(html: str, change: str) -> list[str]:
    """The HTML of each row of the diff with this change, up to the next row."""
    starts = [m.start() for m in re.finditer(r'<div class="pair ', html)] + [len(html)]
    return [
        html[a:b]
        for a, b in itertools.pairwise(starts)
        if re.match(rf'<div class="pair change-{change}[" ]', html[a:])
    ]


def two_versions(console: TestClient, content: Harness) -> tuple[str, dict[Role, str]]:
    key = keys_for(content)
    first = upload(console, key[Role.contributor], "leave.txt", LEAVE_V1.encode(), "text/plain")
    content.drive()
    second = upload(console, key[Role.contributor], "leave.txt", LEAVE_V2.encode(), "text/plain")
    content.drive()
    assert first["document_id"] == second["document_id"] and second["version_number"] == 2
    return first["document_id"], key


def test_a_version_links_to_the_other_versions_and_to_the_diff(console: TestClient, content: Harness) -> None:
    document_id, key = two_versions(console, content)
    assert log_in(console, key[Role.reader], next="/console/documents").status_code == 303

    document = console.get(f"/console/documents/{document_id}").text
    assert document.index('id="v-2"') < document.index('id="v-1"')  # newest first
    assert f'href="/console/documents/{document_id}/versions/2/diff"' in document

    first = console.get(f"/console/documents/{document_id}/versions/1").text
    assert "version 1 of 2" in first
    assert f'href="/console/documents/{document_id}/versions/2" class="version-2"' in first
    assert f'href="/console/documents/{document_id}/versions/2/diff" id="diff-next"' in first
    assert 'id="diff-previous"' not in first
    second = console.get(f"/console/documents/{document_id}/versions/2").text
    assert f'href="/console/documents/{document_id}/versions/1" class="version-1"' in second
    assert f'href="/console/documents/{document_id}/versions/2/diff" id="diff-previous"' in second
    assert f'href="/console/documents/{document_id}" id="back"' in second


def test_the_diff_shows_two_versions_side_by_side_with_the_changed_words(
    console: TestClient, content: Harness
) -> None:
    document_id, key = two_versions(console, content)
    assert log_in(console, key[Role.reader], next="/console/documents").status_code == 303

    page = console.get(f"/console/documents/{document_id}/versions/2/diff")

    assert page.status_code == 200, page.text
    html = page.text
    assert "version 1 → version 2" in html
    assert re.search(r"1 changed</span> · <span[^>]*>1 added</span> · <span[^>]*>\d removed", html)
    changed = pairs_of(html, "changed")
    assert len(changed) == 1 and "<del>25</del>" in changed[0] and "<ins>27</ins>" in changed[0]
    assert "Every employee gets " in changed[0] and "<del>Every" not in changed[0]
    # In reading order: the removed parking section where it stood, the added sentence at the end.
    order = [
        html.index("<del>25</del>"),
        html.index("Parking permits are renewed every January."),
        html.index("Laptops are replaced every three years."),
        html.index("Phones are replaced every"),
    ]
    assert order == sorted(order)
    assert any("Parking permits are renewed every January." in pair for pair in pairs_of(html, "removed"))
    assert len(pairs_of(html, "added")) == 1 and "Phones are replaced" in pairs_of(html, "added")[0]
    # The document's text is escaped, never markup.
    assert "&lt;script&gt;alert(&#34;two&#34;)&lt;/script&gt;" in html and "<script>alert" not in html
    # Each side links to its element in its version.
    assert re.search(
        rf'href="/console/documents/{document_id}/versions/1\?mark=[0-9a-f-]+#e-[0-9a-f-]+"', html
    )

    first = console.get(f"/console/documents/{document_id}/versions/1/diff")
    assert first.status_code == 404 and "no earlier version" in first.text
    against = console.get(f"/console/documents/{document_id}/versions/1/diff", params={"against": 2})
    assert against.status_code == 200 and "version 2 → version 1" in against.text
    assert console.get(f"/console/documents/{document_id}/versions/3/diff").status_code == 404


def test_evidence_links_to_the_exact_version_and_element(console: TestClient, content: Harness) -> None:
    key = keys_for(content)
    created = upload(console, key[Role.contributor], "policy.md", POLICY.encode())
    content.drive()
    portal = by_text(proposals(console, key[Role.reviewer]), "travel portal")
    evidence = portal["latest"]["evidence"][0]
    assert log_in(console, key[Role.reviewer]).status_code == 303

    item = console.get(f"/console/memory/{portal['id']}").text
    link = re.search(r'<a href="([^"]+)" class="version-link">', item)
    assert link
    target = link.group(1).replace("&amp;", "&")
    element = evidence["element_id"]
    assert target.startswith(f"/console/documents/{created['document_id']}/versions/1?mark={element}")
    assert target.endswith(f"#e-{element}")

    version = console.get(target.split("#")[0]).text
    marked = re.search(rf'<li id="e-{element}" class="element [^"]*is-marked">(.*?)</li>', version, re.S)
    assert marked and "<mark>Employees must book flights through the travel portal.</mark>" in marked.group(1)


def test_a_document_is_listed_by_its_first_heading(console: TestClient, content: Harness) -> None:
    key = keys_for(content)
    leave = upload(console, key[Role.contributor], "leave-v1.md", LEAVE_V1.encode())
    content.drive()
    assert log_in(console, key[Role.reader], next="/console/documents").status_code == 303
    row = row_of(console.get("/console/documents").text, leave["document_id"])
    assert "Leave policy" in row


def evidence_links(page: str) -> list[str]:
    """The hrefs of the evidence's links to a diff, unescaped."""
    return [href.replace("&amp;", "&") for href in re.findall(r'<a href="([^"]+)" class="diff-link">', page)]


def test_evidence_from_an_older_version_links_to_its_diff_with_the_current_one(
    console: TestClient, content: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    document_id, key = two_versions(console, content)
    items = proposals(console, key[Role.reviewer])
    parking = by_text(items, "Parking permits")  # cites version 1; gone from version 2
    laptops = by_text(items, "Laptops are replaced")  # cites version 1; the same in version 2
    phones = by_text(items, "Phones are replaced")  # cites version 2
    assert log_in(console, key[Role.reviewer]).status_code == 303

    page = console.get(f"/console/memory/{parking['id']}").text
    element = parking["latest"]["evidence"][0]["element_id"]
    assert "version 1 (latest is 2)" in page
    exact = rf'href="/console/documents/{document_id}/versions/1\?mark={element}'
    assert re.search(exact, page)  # the exact version and element
    (diff,) = evidence_links(page)
    assert diff == f"/console/documents/{document_id}/versions/2/diff?against=1&mark={element}#e-{element}"
    shown = console.get(diff.split("#")[0]).text
    assert "version 1 → version 2" in shown
    (marked,) = [pair for pair in pairs_of(shown, "removed") if f'id="e-{element}"' in pair]
    assert "is-marked" in marked and "Parking permits are renewed every January." in marked

    # An unchanged element is shown too, outside the fold that would hide it.
    monkeypatch.setattr(documents, "FOLD_SAME", 2)
    cited = laptops["latest"]["evidence"][0]
    (unchanged,) = evidence_links(console.get(f"/console/memory/{laptops['id']}").text)
    shown = console.get(unchanged.split("#")[0]).text
    (marked,) = [pair for pair in pairs_of(shown, "same") if f'id="e-{cited["element_id"]}"' in pair]
    assert "is-marked" in marked
    folded = re.findall(r'<details class="unchanged">.*?</details>', shown, re.S)
    assert folded and not any(f'id="e-{cited["element_id"]}"' in block for block in folded)

    # Evidence from the current version has nothing to compare.
    assert evidence_links(console.get(f"/console/memory/{phones['id']}").text) == []
