"""Chunks follow structure: titles start sections, tables stay whole, long sections split."""

from __future__ import annotations

import itertools
import uuid

from quire.content.chunking import MAX_CHARS, ChunkInput, chunk_elements, search_text


def element(kind: str, text: str, page: int = 1, path: tuple[str, ...] = ()) -> ChunkInput:
    return ChunkInput(uuid.uuid4(), kind, text, page, path)


def test_titles_start_new_chunks_and_chunks_carry_their_section() -> None:
    elements = [
        element("title", "Expenses"),
        element("narrative_text", "Keep receipts.", path=("Expenses",)),
        element("title", "Travel", page=2),
        element("narrative_text", "Book early.", page=2, path=("Travel",)),
    ]
    chunks = chunk_elements(elements)
    assert [c.text for c in chunks] == ["Expenses\n\nKeep receipts.", "Travel\n\nBook early."]
    assert [c.section_path for c in chunks] == [["Expenses"], ["Travel"]]
    assert chunks[1].pages == [2]
    assert chunks[0].element_ids == [elements[0].element_id, elements[1].element_id]


def test_a_table_stays_whole_and_alone() -> None:
    table = element("table", "\n".join(f"row {i} | value {i}" for i in range(100)))
    chunks = chunk_elements([element("narrative_text", "Rates:"), table, element("narrative_text", "Done.")])
    assert [c.element_ids for c in chunks] == [
        [chunks[0].element_ids[0]],
        [table.element_id],
        [chunks[2].element_ids[0]],
    ]
    assert chunks[1].text == table.text


def test_a_long_section_splits_with_overlap_within_the_limit() -> None:
    sentences = [f"Sentence number {i} says something about policy {i % 7}." for i in range(200)]
    paragraphs = [
        element("narrative_text", " ".join(sentences[i : i + 4]), page=1 + i // 40) for i in range(0, 200, 4)
    ]
    chunks = chunk_elements([element("title", "Handbook"), *paragraphs])
    assert len(chunks) > 5
    assert all(len(c.text) <= MAX_CHARS + 300 for c in chunks)
    covered = {e for c in chunks for e in c.element_ids}
    assert covered >= {p.element_id for p in paragraphs}
    overlaps = sum(1 for a, b in itertools.pairwise(chunks) if set(a.element_ids) & set(b.element_ids))
    assert overlaps >= 1


def test_one_huge_paragraph_splits_into_overlapping_windows() -> None:
    words = " ".join(f"word{i}" for i in range(1500))
    chunks = chunk_elements([element("narrative_text", words)])
    assert len(chunks) >= 8
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    first_tail = chunks[0].text.split()[-3:]
    assert any(w in chunks[1].text.split()[:40] for w in first_tail)


def test_a_heading_stays_with_the_long_text_or_table_it_introduces() -> None:
    long_paragraph = " ".join(f"Clause {i} of the contract applies to every supplier." for i in range(60))
    table = element("table", "\n".join(f"row {i} | value {i}" for i in range(10)))
    chunks = chunk_elements(
        [
            element("title", "Terms"),
            element("narrative_text", long_paragraph),
            element("title", "Rates"),
            table,
        ]
    )
    assert chunks[0].text.startswith("Terms\n\nClause 0 ")
    assert chunks[-1].text == "Rates\n\n" + table.text
    assert all(c.text not in ("Terms", "Rates") for c in chunks)  # no chunk of a heading alone


def test_a_heading_alone_at_the_end_is_still_a_chunk() -> None:
    chunks = chunk_elements([element("narrative_text", "Body."), element("title", "Appendix")])
    assert [c.text for c in chunks] == ["Body.", "Appendix"]


def test_search_text_says_the_title_and_each_heading_once() -> None:
    # The section's own title element opens its first chunk; the heading is not repeated.
    assert search_text("Handbook", ["Handbook", "Travel"], "Travel\n\nBook early.") == (
        "Handbook\nTravel\n\nBook early."
    )
    assert search_text("handbook.pdf", ["Handbook", "Travel"], "Book early.") == (
        "handbook.pdf\nHandbook > Travel\nBook early."
    )
    assert search_text("Handbook", ["Handbook"], "Handbook\n\nWelcome.") == "Handbook\n\nWelcome."
