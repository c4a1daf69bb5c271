"""What an answer cites: passages of documents and approved memories, with exact provenance."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class SourceCitation(BaseModel):
    kind: Literal["content", "memory"]
    title: str
    quote: str
    score: float | None = None
    # content
    document_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None
    version_number: int | None = None
    chunk_id: uuid.UUID | None = None
    element_ids: list[uuid.UUID] = Field(default_factory=list)
    pages: list[int] = Field(default_factory=list)
    section_path: list[str] = Field(default_factory=list)
    # memory
    memory_item_id: uuid.UUID | None = None
    memory_version_id: uuid.UUID | None = None
    evidence: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """Two citations with the same key point at the same source."""
        if self.kind == "memory":
            return f"memory:{self.memory_version_id}"
        return f"content:{self.chunk_id or self.version_id}:{','.join(map(str, self.element_ids))}"

    def label(self) -> str:
        return source_label(
            self.kind == "memory", self.title, self.version_number, self.section_path, self.pages
        )


class NumberedCitation(SourceCitation):
    ref: int  # the [n] an answer uses


def source_label(
    memory: bool, title: str, version: int | None, section: Sequence[str], pages: Sequence[int]
) -> str:
    """How a source is named beside its number: to the model, and in a terminal."""
    if memory:
        return f"memory: {title}"
    where = " > ".join(section)
    shown = f", p. {', '.join(map(str, pages))}" if pages else ""
    return f"{title} (v{version}{', ' + where if where else ''}{shown})"


def numbered_text(content: str, sources: Sequence[NumberedCitation]) -> str:
    """A tool result as the model reads it: the tool's own words, then each source under its
    number. Tools do not number their sources themselves: the run numbers them, one sequence per
    answer, and this is the one place those numbers are written."""
    return "\n\n".join([content, *(f"[{c.ref}] {c.label()}\n{c.quote}" for c in sources)])


def number_locally(citations: Sequence[SourceCitation]) -> list[NumberedCitation]:
    """Sources numbered from 1, for a tool called on its own (over MCP), outside any answer."""
    return [NumberedCitation(ref=n, **c.model_dump()) for n, c in enumerate(citations, 1)]


class AnswerCitation(BaseModel):
    """A source an answer cites, under the number the answer uses for it: a passage of a
    document version (down to its elements), or an approved memory version."""

    n: int = Field(description="The [n] the answer's text uses; one sequence per answer.")
    kind: Literal["document", "memory"]
    title: str = Field(description="The document's title, or the memory's statement.")
    quote: str = Field(description="The passage, or the memory's text, as the model read it.")
    score: float | None = None
    document_id: uuid.UUID | None = None
    version: int | None = Field(default=None, description="The document version's number.")
    version_id: uuid.UUID | None = None
    element_id: uuid.UUID | None = Field(default=None, description="The first element the passage covers.")
    element_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Every element it covers, in order."
    )
    chunk_id: uuid.UUID | None = None
    page: int | None = Field(default=None, description="The first page of the passage.")
    pages: list[int] = Field(default_factory=list)
    section: list[str] = Field(default_factory=list, description="The headings over it, outermost first.")
    memory_id: uuid.UUID | None = None
    memory_version_id: uuid.UUID | None = None
    evidence: list[dict[str, Any]] = Field(
        default_factory=list, description="Where a memory comes from: document passages, runs."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_numbered(cls, data: Any) -> Any:
        # Runs answered before citations were objects stored NumberedCitation's shape.
        if isinstance(data, dict) and "ref" in data:
            return answer_citation(NumberedCitation.model_validate(data)).model_dump()
        return data

    def label(self) -> str:
        return source_label(self.kind == "memory", self.title, self.version, self.section, self.pages)


def answer_citation(source: NumberedCitation) -> AnswerCitation:
    """A numbered source as an answer cites it."""
    return AnswerCitation(
        n=source.ref,
        kind="memory" if source.kind == "memory" else "document",
        title=source.title,
        quote=source.quote,
        score=source.score,
        document_id=source.document_id,
        version=source.version_number,
        version_id=source.version_id,
        element_id=source.element_ids[0] if source.element_ids else None,
        element_ids=source.element_ids,
        chunk_id=source.chunk_id,
        page=min(source.pages) if source.pages else None,
        pages=source.pages,
        section=source.section_path,
        memory_id=source.memory_item_id,
        memory_version_id=source.memory_version_id,
        evidence=source.evidence,
    )


# One [n] or a list [n, m]: the numbers the system prompt asks the model to cite sources by.
MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class CheckedCitations:
    citations: list[NumberedCitation]  # the sources the answer cites, in the run's order
    unresolved: list[int]  # numbers the answer uses that name no source, in order of appearance
    uncited: bool  # an answer that cites no source at all


def check_citations(answer: str | None, sources: Sequence[NumberedCitation]) -> CheckedCitations:
    """The answer's markers checked against the run's sources. An unknown number is reported,
    never replaced by every source; an answer with no valid marker cites nothing."""
    numbers: list[int] = []
    for marker in MARKER.finditer(answer or ""):
        numbers += [int(n) for n in marker.group(1).split(",")]
    known = {source.ref for source in sources}
    cited = set(numbers) & known
    unresolved = list(dict.fromkeys(n for n in numbers if n not in known))
    return CheckedCitations(
        citations=[source for source in sources if source.ref in cited],
        unresolved=unresolved,
        uncited=answer is not None and not cited,
    )
