"""Two versions side by side: elements paired in reading order, changed words marked (issue 20)."""

from __future__ import annotations

import uuid

from quire.content.comparison import Change, Words, align, pair, word_diff
from quire.content.elements import Side


def side(text: str, element_id: uuid.UUID | None = None, digest: str | None = None) -> Side:
    return Side(element_id or uuid.uuid4(), "NarrativeText", text, digest or text, None, [])


def texts(pairs: list[tuple[Side | None, Side | None]]) -> list[tuple[str | None, str | None]]:
    return [(old.text if old else None, new.text if new else None) for old, new in pairs]


def test_removed_elements_stand_where_they_stood_and_added_ones_where_they_are() -> None:
    title, kept, gone, edited, tail = (side(t) for t in ("Title", "Kept", "Gone", "Edited", "Tail"))
    after = [
        title,
        kept,
        side("Edited, now longer", edited.element_id, "other hash"),
        side("New"),
        tail,
    ]

    pairs = align([title, kept, gone, edited, tail], after)

    assert texts(pairs) == [
        ("Title", "Title"),
        ("Kept", "Kept"),
        ("Gone", None),
        ("Edited", "Edited, now longer"),
        (None, "New"),
        ("Tail", "Tail"),
    ]


def test_a_moved_element_is_paired_once_and_nothing_is_lost() -> None:
    a, b, c, d = (side(t) for t in "abcd")
    pairs = align([a, b, c, d], [c, a, side("x"), d])
    # b stood before c, which moved to the top: it is shown gone from there.
    assert texts(pairs) == [("b", None), ("c", "c"), ("a", "a"), (None, "x"), ("d", "d")]
    assert texts(align([a, b], [])) == [("a", None), ("b", None)]
    assert texts(align([], [a])) == [(None, "a")]


def test_only_the_words_that_changed_are_marked() -> None:
    before, after = word_diff(
        "Every employee gets 25 days of paid holiday a year.",
        "Every employee gets 27 days of paid holiday a year, plus public holidays.",
    )
    assert before == [
        Words("Every employee gets ", False),
        Words("25", True),
        Words(" days of paid holiday a ", False),
        Words("year.", True),
    ]
    assert [w.text for w in after if w.changed] == ["27", "year, plus public holidays."]
    assert (
        "".join(w.text for w in after)
        == "Every employee gets 27 days of paid holiday a year, plus public holidays."
    )


def test_a_pair_says_what_happened_to_its_element() -> None:
    same = side("Kept")
    assert pair(same, same).change == Change.same and pair(same, same).after_words == []
    assert pair(None, same).change == Change.added
    assert pair(same, None).change == Change.removed
    changed = pair(same, side("Kept and changed", same.element_id, "new"))
    assert changed.change == Change.changed and changed.element_id == same.element_id
    assert changed.before_words == [Words("Kept", False)]
    assert changed.after_words == [Words("Kept", False), Words(" and changed", True)]
