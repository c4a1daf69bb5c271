"""Long documents ingest a part at a time, each part a durable step (issue #19, findings 2 and 4)."""

from __future__ import annotations

import io
import itertools
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.content import ingestion
from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from tests.content import fixtures
from tests.content.test_ingestion import keys, upload
from tests.harness import Harness

PAGES = 35


def long_pdf() -> bytes:
    """35 pages; a chapter title opens every fifth, so most parts begin inside a chapter."""
    pages = []
    for page in range(1, PAGES + 1):
        lines = [f"Chapter {page // 5 + 1}"] if page % 5 == 1 else []
        lines.append(f"Page {page} explains rule number {page} of the staff manual in plain words.")
        pages.append(lines)
    return fixtures.pdf(pages)


def long_docx() -> bytes:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Company confidential"
    document.add_heading("Staff manual", 1)
    for section in range(1, 9):
        document.add_heading(f"Section {section}", 2)
        for paragraph in range(1, 11):
            document.add_paragraph(f"Section {section} rule {paragraph} says what a person must do.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def steps(content: Harness, run_id: uuid.UUID) -> list[tuple[str, int]]:
    with content.database.tenant_session(content.tenant_id) as session:
        rows = session.execute(
            text("SELECT name, attempt FROM runtime_step WHERE run_id = :id ORDER BY seq"), {"id": run_id}
        )
        return [(row[0], row[1]) for row in rows]


@pytest.fixture
def in_parts(environment: ContentEnvironment, monkeypatch: pytest.MonkeyPatch) -> ContentEnvironment:
    environment.parse_range_pages = 10
    monkeypatch.setattr(ingestion, "PLAN_FROM_BYTES", 0, raising=False)  # the fixtures are small
    return environment


def version_of(api: TestClient, key: dict[str, str], created: dict[str, Any]) -> dict[str, Any]:
    return api.get(f"/v1/documents/{created['document_id']}/versions/1", headers=key).json()  # type: ignore[no-any-return]


def test_a_long_pdf_is_parsed_ten_pages_at_a_time_and_reads_as_one_document(
    api: TestClient, content: Harness, in_parts: ContentEnvironment
) -> None:
    key = keys(content)
    created = upload(api, key[Role.contributor], "manual.pdf", long_pdf()).json()
    content.drive()

    run_id = uuid.UUID(created["run_id"])
    assert content.run(run_id).status == "completed"
    names = [name for name, _ in steps(content, run_id)]
    assert [n for n in names if n.startswith("parse:")] == [
        "parse:pages:1-10",
        "parse:pages:11-20",
        "parse:pages:21-30",
        "parse:pages:31-35",
    ]
    version = version_of(api, key[Role.reader], created)
    assert version["status"] == "indexed" and version["page_count"] == PAGES
    rules = [e for e in version["elements"] if e["text"].startswith("Page ")]
    assert [e["page"] for e in rules] == list(range(1, PAGES + 1))
    # Page 11 opens the second part inside chapter 3, whose title is on page 11... and page 12
    # is in the same part; page 21 opens the third part, and its chapter began on page 21.
    page_14 = next(e for e in rules if e["page"] == 14)
    assert page_14["section_path"] == ["Chapter 3"]
    hits = api.get("/v1/search", params={"q": "rule number 33"}, headers=key[Role.reader]).json()["hits"]
    assert hits[0]["citation"]["pages"] == [33] or 33 in hits[0]["citation"]["pages"]


def test_a_long_word_file_is_parsed_in_parts_and_its_sections_run_across_them(
    api: TestClient, content: Harness, in_parts: ContentEnvironment
) -> None:
    in_parts.parse_range_pages = 1  # 40 blocks to a part: 89 blocks make three parts
    key = keys(content)
    created = upload(api, key[Role.contributor], "manual.docx", long_docx()).json()
    content.drive()

    run_id = uuid.UUID(created["run_id"])
    assert content.run(run_id).status == "completed"
    names = [name for name, _ in steps(content, run_id) if name.startswith("parse:")]
    assert names == ["parse:blocks:1-40", "parse:blocks:41-80", "parse:blocks:81-89"]
    version = version_of(api, key[Role.reader], created)
    rule = next(e for e in version["elements"] if e["text"].startswith("Section 5 rule 3 "))
    assert rule["section_path"] == ["Staff manual", "Section 5"]
    last = next(e for e in version["elements"] if e["text"].startswith("Section 8 rule 10 "))
    assert last["section_path"] == ["Staff manual", "Section 8"]
    headers = [e for e in version["elements"] if e["text"] == "Company confidential"]
    assert len(headers) == 1, "each part carries the header; the version keeps it once"
    assert len(version["elements"]) == 1 + 1 + 8 + 80


def test_a_long_html_page_is_parsed_in_parts_that_cut_between_its_blocks(
    api: TestClient, content: Harness, in_parts: ContentEnvironment
) -> None:
    in_parts.parse_range_pages = 1  # a part of about 3000 characters: the handbook makes several
    data = fixtures.long_html()
    key = keys(content)
    created = upload(api, key[Role.contributor], "handbook.html", data).json()
    content.drive()

    run_id = uuid.UUID(created["run_id"])
    assert content.run(run_id).status == "completed"
    names = [name for name, _ in steps(content, run_id) if name.startswith("parse:")]
    assert len(names) >= 4 and all(name.startswith("parse:html-blocks:") for name in names)
    ranges = [tuple(int(n) for n in name.rsplit(":", 1)[1].split("-")) for name in names]
    assert ranges[0][0] == 1 and all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    version = version_of(api, key[Role.reader], created)
    assert version["status"] == "indexed"
    whole = in_parts.parser().parse(data, filename="handbook.html")
    assert [(e["type"], e["text"]) for e in version["elements"]] == [(e.type, e.text) for e in whole.elements]
    assert [e["section_path"] for e in version["elements"]] == [list(e.section_path) for e in whole.elements]
    last = next(e for e in version["elements"] if e["text"].startswith("Section 8 rule 10 "))
    assert last["section_path"] == ["Staff handbook", "Section 8: Überstunden und Pausen"]
    table = next(e for e in version["elements"] if e["type"] == "table")
    assert "Früh" in table["text"] and table["section_path"][-1].startswith("Section 4")


def test_a_short_html_page_is_parsed_whole(
    api: TestClient, content: Harness, in_parts: ContentEnvironment
) -> None:
    key = keys(content)
    created = upload(api, key[Role.contributor], "notes.html", fixtures.HTML.encode()).json()
    content.drive()

    names = [name for name, _ in steps(content, uuid.UUID(created["run_id"]))]
    assert "parse" in names and not [n for n in names if n.startswith("parse:")]
    assert version_of(api, key[Role.reader], created)["status"] == "indexed"


class Crash(BaseException):
    """A worker dying mid-document: nothing after it runs, nothing is cleaned up."""


def test_a_crash_mid_document_costs_the_part_in_progress_not_the_parts_done(
    api: TestClient, content: Harness, in_parts: ContentEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[tuple[str, int, int]] = []
    real = ingestion.parse_part

    def parse_part(
        environment: ContentEnvironment, plan: Any, part: tuple[str, int, int]
    ) -> ingestion.ParsedPart:
        parsed.append(part)
        if part[1] == 21 and parsed.count(part) == 1:
            raise Crash("the worker died while parsing pages 21-30")
        return real(environment, plan, part)

    monkeypatch.setattr(ingestion, "parse_part", parse_part)
    key = keys(content)
    created = upload(api, key[Role.contributor], "manual.pdf", long_pdf()).json()
    run_id = uuid.UUID(created["run_id"])
    deadline = time.monotonic() + 60
    while content.run(run_id).status != "completed" and time.monotonic() < deadline:
        try:
            content.drive(until=0.5)
        except Crash:
            continue

    assert content.run(run_id).status == "completed"
    assert [first for _, first, _ in parsed] == [1, 11, 21, 21, 31], "parts done were parsed again"
    assert version_of(api, key[Role.reader], created)["status"] == "indexed"


def test_parts_joined_keep_one_warning_that_names_the_pages_of_every_part() -> None:
    from quire.content.parsing import ParsedDocument, ParsedElement
    from quire.content.parsing.parts import join
    from quire.content.parsing.quality import JOINED

    def part(page: int) -> ParsedDocument:
        spaced = ParsedElement("narrative_text", "I would like a refund", page=page, metadata={JOINED: True})
        return ParsedDocument("application/pdf", (spaced,), page_count=page)

    joined = join([part(3), part(14)])

    assert [(w.code, w.pages) for w in joined.warnings] == [("letter_spaced_text", (3, 14))]
    assert joined.page_count == 14
