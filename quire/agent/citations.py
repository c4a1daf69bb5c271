"""What an answer cites: passages of documents and approved memories, with exact provenance."""

from __future__ import annotations

import uuid
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
