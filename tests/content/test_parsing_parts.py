"""Where a long document's parts are, and that its parts parsed and joined read as the whole."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from quire.content.parsing import ParsedDocument, Parser
from quire.content.parsing.parts import Part, join, parse_part, plan
from tests.content import fixtures

HTML = "text/html"


@pytest.fixture(scope="module")
def parser() -> Iterator[Parser]:
    with Parser(timeout=60, memory_limit_mb=1024) as parser:
        parser.warm_up()
        yield parser


def in_parts(parser: Parser, data: bytes, parts: list[Part]) -> ParsedDocument:
    return join([parser.run_in_child(parse_part, data, "page.html", HTML, part) for part in parts])


def texts(document: ParsedDocument) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(e.type, e.text, e.section_path) for e in document.elements]


def test_html_parts_are_consecutive_ranges_of_the_blocks_inside_its_wrappers(parser: Parser) -> None:
    data = fixtures.long_html()

    parts = parser.run_in_child(plan, data, "page.html", HTML, 1)

    assert len(parts) >= 4 and {part.unit for part in parts} == {"html-blocks"}
    assert parts[0].first == 1
    assert all(b.first == a.last + 1 for a, b in itertools.pairwise(parts))
    # Two wrapper divs hold 2 + 8 sections of (1 heading + 10 paragraphs) + 1 table: 91 blocks.
    assert parts[-1].last == 2 + 8 * 11 + 1
    whole = parser.parse(data, filename="page.html")
    assert texts(in_parts(parser, data, parts)) == texts(whole)


def test_malformed_html_is_cut_between_its_blocks_as_lxml_repairs_it(parser: Parser) -> None:
    paragraphs = "".join(
        f"<p>Paragraph {n} of a page whose tags are never closed, <b>bold {n}" + " and more" * 30
        for n in range(1, 41)
    )
    data = f"<title>Broken</title><div><h1>Notes</h1>Loose text <i>first</i>{paragraphs}</span></td>".encode()

    parts = parser.run_in_child(plan, data, "page.html", HTML, 1)

    assert len(parts) >= 2
    whole = parser.parse(data, filename="page.html")
    assert texts(in_parts(parser, data, parts)) == texts(whole)


def test_html_in_a_declared_single_byte_charset_keeps_its_letters_in_every_part(parser: Parser) -> None:
    data = fixtures.long_html(encoding="windows-1252")

    parts = parser.run_in_child(plan, data, "page.html", HTML, 1)

    joined = in_parts(parser, data, parts)
    assert len(parts) >= 4
    assert texts(joined) == texts(parser.parse(data, filename="page.html"))
    assert joined.elements[1].text == "Read this handbook before your first day at the café."


def test_a_page_is_cut_inside_the_sections_its_content_is_nested_in(parser: Parser) -> None:
    rule = "<p>Rule {n} of the section, <i>in short</i>" + " and so on" * 40 + "</p>"
    section = "".join(rule.format(n=n) for n in range(12))
    data = (
        "<body><nav><a href='/'>Home</a></nav>Loose <b>text</b><div class='content'>Its own text"
        + "".join(f"<section><h2>Part {n}</h2>{section}</section>\n" for n in range(1, 4))
        + "</div>\n<div><p>Related pages</p></div><footer><p>Contact us</p></footer></body>"
    ).encode()

    parts = parser.run_in_child(plan, data, "page.html", HTML, 1)

    assert len(parts) >= 6, "each section holds more than a part: the page is cut inside them"
    whole = parser.parse(data, filename="page.html")
    assert texts(in_parts(parser, data, parts)) == texts(whole)


@pytest.mark.parametrize(
    "data",
    [
        fixtures.HTML.encode(),  # short: one part
        b"<html><body><pre>" + b"one block that cannot be cut " * 2000 + b"</pre></body></html>",
        b"",
    ],
    ids=["short", "one-block", "empty"],
)
def test_html_that_cannot_or_need_not_be_cut_is_parsed_whole(parser: Parser, data: bytes) -> None:
    assert parser.run_in_child(plan, data, "page.html", HTML, 1) == []
