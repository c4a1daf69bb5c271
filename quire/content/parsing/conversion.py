"""From unstructured's elements to Quire's: clean text, snake_case types, section paths, metadata.

Section paths come from the titles before an element and their depths; an email's attachments
each start their own sections. Only the metadata Quire uses is kept, under Quire's names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from quire.content.parsing.quality import JOINED
from quire.content.parsing.results import ParsedElement, with_section_paths

if TYPE_CHECKING:
    from unstructured.documents.elements import Element

_DROPPED = {"PageBreak"}
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_TRAILING_SPACE = re.compile(r"[^\S\n]+(?=\n|$)")
_INNER_SPACE = re.compile(r"(?<=\S)[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# unstructured metadata fields worth keeping, under the names Quire gives them.
_EMAIL_FIELDS = {
    "sent_from": "sent_from",
    "sent_to": "sent_to",
    "cc_recipient": "cc",
    "bcc_recipient": "bcc",
    "subject": "subject",
    "email_message_id": "message_id",
}
_MAX_LINKS = 20


def normalize_text(text: str) -> str:
    """Collapse runs of spaces and of blank lines, drop control characters, keep the rest.

    A line's indentation is kept (it carries the structure of code and JSON); NUL and other
    control characters go (PostgreSQL text cannot hold NUL).
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _INNER_SPACE.sub(" ", _TRAILING_SPACE.sub("", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def element_type(category: str) -> str:
    """snake_case of unstructured's category: "NarrativeText" -> "narrative_text"."""
    return _CAMEL.sub("_", category).replace("-", "_").lower()


def to_parsed_elements(elements: Iterable[Element], *, paged: bool) -> Iterator[ParsedElement]:
    """Quire's elements, with section paths drawn from the titles and their depths."""
    return with_section_paths(_converted(elements, paged=paged))


def _converted(elements: Iterable[Element], *, paged: bool) -> Iterator[ParsedElement]:
    for element in elements:
        if element.category in _DROPPED:
            continue
        text = normalize_text(element.text or "")
        if not text:
            continue
        meta = element.metadata
        html = meta.text_as_html if element.category == "Table" else None
        yield ParsedElement(
            type=element_type(element.category),
            text=text,
            html=html or None,
            page=meta.page_number if paged else None,
            metadata=_extras(element),
        )


def _extras(element: Element) -> dict[str, Any]:
    meta = element.metadata
    extras: dict[str, Any] = {}
    for source, target in _EMAIL_FIELDS.items():
        value = getattr(meta, source, None)
        if value:
            extras[target] = value
    if meta.page_name:
        extras["sheet"] = meta.page_name
    if element.category == "Title" and meta.category_depth is not None:
        extras["heading_level"] = meta.category_depth + 1
    if element.category == "ListItem" and meta.category_depth:
        extras["list_depth"] = meta.category_depth
    if meta.link_urls:
        texts = meta.link_texts or []
        extras["links"] = [
            {"url": url, "text": texts[index] if index < len(texts) else None}
            for index, url in enumerate(meta.link_urls[:_MAX_LINKS])
        ]
    if getattr(meta, JOINED, False):  # set by pdf.py: this text was repaired
        extras[JOINED] = True
    if meta.attached_to_filename:
        extras["attachment_of"] = meta.attached_to_filename
    if meta.filename and meta.attached_to_filename:
        extras["attachment"] = meta.filename
    return extras
