"""What an answer cites: passages of documents and approved memories, with exact provenance."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field


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
        if self.kind == "memory":
            return f"memory: {self.title}"
        where = " > ".join(self.section_path)
        pages = f", p. {', '.join(map(str, self.pages))}" if self.pages else ""
        return f"{self.title} (v{self.version_number}{', ' + where if where else ''}{pages})"


class NumberedCitation(SourceCitation):
    ref: int  # the [n] an answer uses


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
