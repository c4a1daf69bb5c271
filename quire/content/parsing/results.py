"""What parsing gives back: a document's elements in reading order, as plain picklable values.

They are made in the parsing child and pickled to the caller, so they hold no unstructured types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ParsedElement:
    """One element of a document: a title, a paragraph, a list item, a table, ..."""

    type: str
    text: str
    html: str | None = None
    page: int | None = None
    section_path: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QualityWarning:
    """Something in a document's text a reader would find garbled (or that was repaired).

    `code` is one of `quality.py`'s codes; `pages` are the pages it concerns (none when the
    document has no pages, or the warning concerns all of it).
    """

    code: str
    message: str
    pages: tuple[int, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """As stored on the version and shown by the API: {"code", "message", "pages"}."""
        return {"code": self.code, "message": self.message, "pages": list(self.pages)}


@dataclass(frozen=True)
class ParsedDocument:
    """The elements of one document, in reading order, and what is wrong with their text."""

    content_type: str
    elements: tuple[ParsedElement, ...]
    page_count: int | None = None
    warnings: tuple[QualityWarning, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(element.text.strip() for element in self.elements)


def with_section_paths(elements: Iterable[ParsedElement]) -> Iterator[ParsedElement]:
    """The elements, each with the titles before it (by depth) as its section path.

    A title closes the titles at its depth or deeper; an email's attachments each start their own
    sections. A title's depth is its heading level less one (0 when it has none).
    """
    sections: list[tuple[int, str]] = []
    source: object = None  # which attachment of an email the element comes from
    for element in elements:
        if element.metadata.get("attachment") != source:
            source, sections = element.metadata.get("attachment"), []
        is_title = element.type == "title"
        depth = int(element.metadata.get("heading_level", 1)) - 1
        if is_title:
            while sections and sections[-1][0] >= depth:
                sections.pop()
        yield replace(element, section_path=tuple(title for _, title in sections))
        if is_title:
            sections.append((depth, element.text))
