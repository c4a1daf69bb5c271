"""Structure-aware chunking: titles start sections, tables stay whole, long sections split with
overlap. Every chunk keeps the ids of its elements, its pages and its section path, so a search
hit cites exactly where its text came from."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

MAX_CHARS = 1000  # all-MiniLM-L6-v2 reads about 256 word pieces, roughly this much English
TABLE_MAX_CHARS = 4000  # a table up to this size stays one chunk
OVERLAP_CHARS = 150
TITLE_TYPES = frozenset({"title"})


@dataclass(frozen=True)
class ChunkInput:
    element_id: uuid.UUID
    type: str
    text: str
    page: int | None
    section_path: tuple[str, ...]


@dataclass
class ChunkDraft:
    texts: list[str] = field(default_factory=list)
    element_ids: list[uuid.UUID] = field(default_factory=list)
    pages: set[int] = field(default_factory=set)
    section_path: tuple[str, ...] = ()
    has_body: bool = False  # holds more than headings

    @property
    def size(self) -> int:
        return sum(len(t) for t in self.texts) + 2 * max(0, len(self.texts) - 1)

    def add(self, element: ChunkInput, text: str | None = None) -> None:
        self.texts.append(text if text is not None else element.text)
        self.has_body = self.has_body or element.type not in TITLE_TYPES
        if element.element_id not in self.element_ids:
            self.element_ids.append(element.element_id)
        if element.page is not None:
            self.pages.add(element.page)


@dataclass(frozen=True)
class ChunkOut:
    ord: int
    text: str
    element_ids: list[uuid.UUID]
    pages: list[int]
    section_path: list[str]


def search_text(title: str, section_path: Sequence[str], text: str) -> str:
    """What is embedded and indexed for a chunk: its text in the context of its document.

    The document's title and the chunk's headings come first, each once: a heading equal to the
    title, or one the chunk's text already starts with (its section's own title element), is
    left out. (Repeating them tripled the title's weight in BM25 and in the embedding of a
    section's first chunk, and cost SciFact nDCG@10: see bench/retrieval.py.)
    """
    first_line = text.split("\n", 1)[0].strip()
    context: list[str] = []
    for part in (title, *section_path):
        part = part.strip()
        if part and part not in context and part != first_line:
            context.append(part)
    if len(context) > 1:
        context = [context[0], " > ".join(context[1:])]
    return "\n".join(part for part in (*context, text) if part)


def _sections(elements: Sequence[ChunkInput]) -> Iterator[list[ChunkInput]]:
    section: list[ChunkInput] = []
    for element in elements:
        if element.type in TITLE_TYPES and section:
            yield section
            section = []
        section.append(element)
    if section:
        yield section


def _split_long(text: str, limit: int, overlap: int) -> list[str]:
    """Windows of at most `limit` characters, cut at sentence or word ends, overlapping."""
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + limit)
        if end < len(text):
            window = text[start:end]
            cut = max(window.rfind(". "), window.rfind("\n"))
            if cut < limit // 2:
                cut = window.rfind(" ")
            if cut > limit // 4:
                end = start + cut + 1
        pieces.append(text[start:end].strip())
        if end >= len(text):
            break
        next_start = max(end - overlap, start + 1)
        space = text.find(" ", next_start)
        start = space + 1 if 0 <= space < end else next_start
    return [p for p in pieces if p]


def _split_table(text: str, limit: int) -> list[str]:
    rows, pieces, current = re.split(r"\n+", text), [], ""
    for row in rows:
        if current and len(current) + len(row) + 1 > limit:
            pieces.append(current)
            current = ""
        current = f"{current}\n{row}" if current else row
    if current:
        pieces.append(current)
    return [
        piece for part in pieces for piece in (_split_long(part, limit, 0) if len(part) > limit else [part])
    ]


def last_text_element(section: Sequence[ChunkInput], draft: ChunkDraft) -> ChunkInput | None:
    if not draft.element_ids:
        return None
    last = next((e for e in section if e.element_id == draft.element_ids[-1]), None)
    return last if last is not None and last.type not in TITLE_TYPES | {"table"} else None


def chunk_elements(
    elements: Sequence[ChunkInput],
    *,
    max_chars: int = MAX_CHARS,
    table_max_chars: int = TABLE_MAX_CHARS,
    overlap_chars: int = OVERLAP_CHARS,
) -> list[ChunkOut]:
    drafts: list[ChunkDraft] = []
    for section in _sections(elements):
        path = section[0].section_path + ((section[0].text,) if section[0].type in TITLE_TYPES else ())
        draft = ChunkDraft(section_path=path)

        def flush(path: tuple[str, ...] = path) -> None:
            nonlocal draft
            if draft.texts:
                drafts.append(draft)
            draft = ChunkDraft(section_path=path)

        for element in section:
            text = element.text.strip()
            if not text:
                continue
            # A heading stays with what it introduces: a chunk of nothing but headings says
            # nothing a search can use (the headings are in every chunk's section path).
            if element.type == "table":
                if draft.has_body:
                    flush()
                if len(text) <= table_max_chars:
                    draft.add(element, text)
                    flush()
                else:
                    for piece in _split_table(text, max_chars):
                        draft.add(element, piece)
                        flush()
                continue
            if len(text) > max_chars:
                if draft.has_body:
                    flush()
                for piece in _split_long(text, max_chars, overlap_chars):
                    draft.add(element, piece)
                    flush()
                continue
            if draft.has_body and draft.size + len(text) + 2 > max_chars:
                carried = last_text_element(section, draft)
                flush()
                # Overlap: the next chunk starts with the last element of this one, if short.
                if carried is not None and len(carried.text) <= 2 * overlap_chars:
                    draft.add(carried)
            draft.add(element, text)
        flush()
    return [
        ChunkOut(
            ord=index,
            text="\n\n".join(d.texts),
            element_ids=d.element_ids,
            pages=sorted(d.pages),
            section_path=list(d.section_path),
        )
        for index, d in enumerate(drafts)
    ]
