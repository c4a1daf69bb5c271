"""What parsing gives back: a document's elements in reading order, as plain picklable values.

They are made in the parsing child and pickled to the caller, so they hold no unstructured types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
class ParsedDocument:
    """The elements of one document, in reading order."""

    content_type: str
    elements: tuple[ParsedElement, ...]
    page_count: int | None = None

    @property
    def empty(self) -> bool:
        return not any(element.text.strip() for element in self.elements)
