"""Element ids across versions, and the diff they make exact."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from quire.content.elements import Previous, Side, assign_ids, content_hash, diff


@dataclass(frozen=True)
class E:
    type: str
    text: str
    html: str | None = None


def previous_of(elements: list[E]) -> tuple[list[Previous], list[uuid.UUID]]:
    ids = [uuid.uuid4() for _ in elements]
    return [Previous(i, e.type, e.text, content_hash(e)) for i, e in zip(ids, elements, strict=True)], ids


V1 = [
    E("title", "Travel policy"),
    E("narrative_text", "Employees book travel through the portal at least two weeks ahead."),
    E("narrative_text", "Economy class is the default for flights under six hours."),
    E("list_item", "Taxis are reimbursed with a receipt."),
    E("narrative_text", "Hotels must be approved by the travel desk."),
]


def test_unchanged_elements_keep_their_ids_when_one_paragraph_is_edited() -> None:
    previous, ids = previous_of(V1)
    v2 = list(V1)
    v2[2] = E("narrative_text", "Economy class is the default for flights under eight hours.")
    new_ids = assign_ids(previous, v2)
    assert new_ids == ids  # the edited paragraph keeps its identity too...
    assert content_hash(v2[2]) != previous[2].content_hash  # ...with new content


def test_an_insertion_at_the_top_does_not_shift_ids() -> None:
    previous, ids = previous_of(V1)
    v2 = [E("narrative_text", "Effective 1 March."), *V1]
    new_ids = assign_ids(previous, v2)
    assert new_ids[1:] == ids
    assert new_ids[0] not in ids


def test_moved_and_replaced_elements() -> None:
    previous, ids = previous_of(V1)
    v2 = [V1[0], V1[4], V1[1], E("table", "Zone | Rate"), V1[3]]
    new_ids = assign_ids(previous, v2)
    assert new_ids[1] == ids[4]  # moved: same id
    assert new_ids[3] not in ids  # a table in place of a paragraph is new
    assert ids[2] not in new_ids  # the paragraph it replaced is gone


def test_diff_reports_exactly_what_changed() -> None:
    previous, ids = previous_of(V1)
    v2 = list(V1)
    v2[2] = E("narrative_text", "Economy class is the default for flights under eight hours.")
    del v2[3]
    v2.append(E("narrative_text", "Questions go to travel@example.com."))
    new_ids = assign_ids(previous, v2)

    def sides(elements: list[E], element_ids: list[uuid.UUID]) -> list[Side]:
        return [
            Side(i, e.type, e.text, content_hash(e), None, [])
            for i, e in zip(element_ids, elements, strict=True)
        ]

    result = diff(sides(V1, ids), sides(v2, new_ids))
    assert [s.text for s in result.added] == ["Questions go to travel@example.com."]
    assert [s.text for s in result.removed] == ["Taxis are reimbursed with a receipt."]
    assert [(a.text, b.text) for a, b in result.changed] == [(V1[2].text, v2[2].text)]
    assert result.unchanged == 3
