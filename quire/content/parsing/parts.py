"""Long documents in parts: a PDF in ranges of pages, a Word file or an HTML page in ranges of blocks.

A 600-page manual parsed whole holds a parsing child for minutes and, past its time limit, never
indexes. Parsed in parts, each part is its own job (and, in the ingestion program, its own durable
step with its own time limit), so a long document makes progress a part at a time and a crash
costs one part. `plan` (a job, in a child) says where a document's parts are; `parse_part` (a job)
cuts a part out of the file (pikepdf for PDFs, python-docx for Word, lxml for HTML in
`html_parts.py`) and parses it as a document of its own, numbering its pages as they are numbered
in the whole. `join` (in the caller) puts
the parts back together, section paths running across them.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any, NamedTuple

from quire.content.parsing.html_parts import html_blocks, html_cut
from quire.content.parsing.quality import review
from quire.content.parsing.results import ParsedDocument, with_section_paths

HTML_BLOCKS = "html-blocks"
# A Word file has no pages until it is laid out: its parts count blocks (paragraphs and tables),
# about this many to a page.
BLOCKS_PER_PAGE = 40
# An HTML page has no pages at all: its parts count the blocks of its content, cut where they
# reach this many characters of text to a page, about what a printed page holds, so that
# `pages_per_part` means as much text for a web page as for a PDF.
HTML_CHARS_PER_PAGE = 3000
REPEATED_TYPES = {"header", "footer"}


class Part(NamedTuple):
    """Pages `first` to `last` of a PDF, or blocks `first` to `last` of a Word file or page (from 1)."""

    unit: str  # "pages", "blocks" (of a Word file) or "html-blocks"
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"{self.unit}:{self.first}-{self.last}"


def plan(data: bytes, filename: str | None, declared: str | None, pages_per_part: int) -> list[Part]:
    """The parts of a long PDF, Word file or HTML page, or [] to parse it whole (a job for a child)."""
    from unstructured.file_utils.model import FileType

    from quire.content.parsing.content_type import detect_content_type
    from quire.content.parsing.refusals import refuse_encrypted

    file_type = FileType.from_mime_type(detect_content_type(data, filename, declared))
    try:
        if file_type is FileType.PDF:
            refuse_encrypted(data, file_type)
            return _ranges("pages", _pdf_pages(data), pages_per_part)
        if file_type is FileType.DOCX:
            return _ranges("blocks", _docx_blocks(data), pages_per_part * BLOCKS_PER_PAGE)
        if file_type is FileType.HTML:
            return _sized_ranges(HTML_BLOCKS, html_blocks(data), pages_per_part * HTML_CHARS_PER_PAGE)
    except Exception:
        return []
    return []


def _ranges(unit: str, total: int, size: int) -> list[Part]:
    if total <= size:
        return []
    return [Part(unit, first, min(first + size - 1, total)) for first in range(1, total + 1, size)]


def _sized_ranges(unit: str, sizes: list[int], size: int) -> list[Part]:
    """Consecutive ranges of the blocks, each closed once it holds `size` or more."""
    parts: list[Part] = []
    first, held = 1, 0
    for index, block in enumerate(sizes, start=1):
        held += block
        if held >= size:
            parts.append(Part(unit, first, index))
            first, held = index + 1, 0
    if first <= len(sizes):
        parts.append(Part(unit, first, len(sizes)))
    return parts if len(parts) > 1 else []


def parse_part(data: bytes, filename: str | None, declared: str | None, part: Part) -> ParsedDocument:
    """One part of a document, parsed as a document of its own (a job for a child)."""
    from quire.content.parsing.document import parse_document
    from quire.content.parsing.preparation import readiness

    readiness()
    if part.unit == "pages":
        parsed = parse_document(_pdf_cut(data, part), filename=filename, declared=declared)
        shift = part.first - 1
        elements = tuple(
            replace(e, page=e.page + shift) if e.page is not None else e for e in parsed.elements
        )
        return replace(parsed, elements=elements, page_count=part.last)
    if part.unit == HTML_BLOCKS:
        return parse_document(html_cut(data, part.first, part.last), filename=filename, declared=declared)
    return parse_document(_docx_cut(data, part), filename=filename, declared=declared)


def join(parts: list[ParsedDocument]) -> ParsedDocument:
    """The parts of a document as one, in order, section paths running from part to part.

    Each part of a Word file carries the file's headers and footers: they are kept once.
    """
    seen: set[tuple[str, str]] = set()
    elements = []
    for element in (element for part in parts for element in part.elements):
        if element.type in REPEATED_TYPES:
            if (element.type, element.text) in seen:
                continue
            seen.add((element.type, element.text))
        elements.append(element)
    page_counts = [part.page_count for part in parts if part.page_count is not None]
    return ParsedDocument(
        content_type=parts[0].content_type,
        elements=tuple(with_section_paths(elements)),
        page_count=max(page_counts) if page_counts else None,
        warnings=review(elements),  # over the whole, so that each warning lists all its pages
    )


def _pdf_pages(data: bytes) -> int:
    import pikepdf

    with pikepdf.Pdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)


def _pdf_cut(data: bytes, part: Part) -> bytes:
    import pikepdf

    with pikepdf.Pdf.open(io.BytesIO(data)) as whole, pikepdf.Pdf.new() as cut:
        cut.pages.extend(whole.pages[part.first - 1 : part.last])
        out = io.BytesIO()
        cut.save(out)
        return out.getvalue()


def _docx_blocks(data: bytes) -> int:
    import docx

    return len(_blocks(docx.Document(io.BytesIO(data)).element.body))


def _docx_cut(data: bytes, part: Part) -> bytes:
    import docx

    document = docx.Document(io.BytesIO(data))
    body = document.element.body
    for index, block in enumerate(_blocks(body), start=1):
        if not part.first <= index <= part.last:
            body.remove(block)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _blocks(body: Any) -> list[Any]:
    """A Word body's paragraphs and tables; its last section's properties stay with every part."""
    return [block for block in body.iterchildren() if not block.tag.endswith("}sectPr")]
