"""Evidence in context: the quoted span inside its element, with the element's section and document."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session

from quire.content.models import Element
from quire.content.models import Version as DocumentVersion
from quire.content.service import cited_passage, elements_of, version_by_id
from quire.memory.models import EvidencePublic

CONTEXT_CHARS = 2000  # of the element's text on each side of the quote


@dataclass
class EvidenceView:
    evidence: EvidencePublic
    document_title: str | None = None
    collection: str | None = None
    version_number: int | None = None
    latest_number: int | None = None
    element_type: str | None = None
    page: int | None = None
    section_path: list[str] = field(default_factory=list)
    before: str = ""
    marked: str = ""
    after: str = ""
    api_path: str | None = None
    console_path: str | None = None
    diff_path: str | None = None  # what changed between the cited version and the current one
    problem: str | None = None

    @property
    def from_document(self) -> bool:
        return self.evidence.document_id is not None


def highlight(text: str, start: int | None, end: int | None, quote: str | None) -> tuple[str, str, str]:
    """`text` cut around the quoted span: by its character range, or by finding the quote."""
    if start is None or end is None or not 0 <= start <= end <= len(text):
        at = text.find(quote) if quote else -1
        if at < 0:
            return text, "", ""
        start, end = at, at + len(quote or "")
    before, after = text[:start], text[end:]
    if len(before) > CONTEXT_CHARS:
        before = "…" + before[-CONTEXT_CHARS:]
    if len(after) > CONTEXT_CHARS:
        after = after[:CONTEXT_CHARS] + "…"
    return before, text[start:end], after


def in_context(session: Session, evidence: Sequence[EvidencePublic]) -> list[EvidenceView]:
    views = []
    for piece in evidence:
        view = EvidenceView(evidence=piece)
        views.append(view)
        if piece.document_id is None:
            continue
        cited = cited_passage(
            session,
            document_id=piece.document_id,
            version_id=piece.document_version_id,
            element_id=piece.element_id,
        )
        document, version = cited.document, cited.version
        if document is None or version is None:
            view.problem = "the cited document version is gone"
            continue
        view.document_title = document.title
        view.collection = document.collection
        view.version_number = version.number
        view.latest_number = document.version_count
        view.api_path = f"/v1/documents/{document.id}/versions/{version.number}"
        view.console_path = f"/console/documents/{document.id}/versions/{version.number}"
        if document.deleted_at is not None:
            view.problem = f"the document was deleted: {document.deleted_reason or 'no reason given'}"
        element = cited.element
        if element is None:
            view.problem = view.problem or "the cited element is not in that version"
            view.marked = piece.quote or ""
            continue
        view.element_type, view.page, view.section_path = (
            element.type,
            element.page,
            list(element.section_path),
        )
        span = f"&start={piece.char_start}&end={piece.char_end}" if piece.char_start is not None else ""
        view.console_path += f"?mark={element.element_id}{span}#e-{element.element_id}"
        view.before, view.marked, view.after = highlight(
            element.text, piece.char_start, piece.char_end, piece.quote
        )
        current = version_by_id(session, document.latest_version_id) if document.latest_version_id else None
        if current is not None and current.number != version.number:
            mark = element.element_id
            view.diff_path = (
                f"/console/documents/{document.id}/versions/{current.number}/diff"
                f"?against={version.number}&mark={mark}#e-{mark}"
            )
    return views


@dataclass
class ElementView:
    element: Element
    before: str
    marked: str
    after: str


def version_elements(
    session: Session, *, version: DocumentVersion, marks: dict[uuid.UUID, tuple[int | None, int | None]]
) -> list[ElementView]:
    """A document version's elements in order; the marked ones cut around their span."""
    elements = elements_of(session, version.id)
    views = []
    for element in elements:
        if element.element_id in marks:
            start, end = marks[element.element_id]
            if start is None or end is None or not 0 <= start <= end <= len(element.text):
                start, end = 0, len(element.text)
            views.append(
                ElementView(element, element.text[:start], element.text[start:end], element.text[end:])
            )
        else:
            views.append(ElementView(element, element.text, "", ""))
    return views
