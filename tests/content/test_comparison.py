"""Two versions side by side: elements paired in reading order, changed words marked; and the
same word diff inline, as the console shows a proposal beside its slot's memory (issue 20)."""

from __future__ import annotations

import uuid

from quire.content.comparison import Change, Piece, Words, align, pair, word_diff
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
    diff = word_diff(
        "Every employee gets 25 days of paid holiday a year.",
        "Every employee gets 27 days of paid holiday a year, plus public holidays.",
    )
    before, after = diff.before, diff.after
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
    assert changed.after_words == [Words("Kept ", False), Words("and changed", True)]


def test_inline_a_changed_number_is_one_word_removed_and_one_added() -> None:
    assert word_diff("Kept for 4 years, then deleted.", "Kept for 5 years, then deleted.").inline == [
        Piece("same", "Kept for "),
        Piece("removed", "4"),
        Piece("added", "5"),
        Piece("same", " years, then deleted."),
    ]


def test_both_shapes_rebuild_both_texts() -> None:
    for old, new in [
        ("Parental leave is 16 weeks.", "Parental leave is 20 weeks at full pay,  for every parent."),
        ("a b c", "x y z"),
        ("  Leading space and a tail ", "Leading space, a tail"),
    ]:
        diff = word_diff(old, new)
        assert "".join(p.text for p in diff.inline if p.kind != "added") == old
        assert "".join(p.text for p in diff.inline if p.kind != "removed") == new
        assert "".join(w.text for w in diff.before) == old
        assert "".join(w.text for w in diff.after) == new
        # A changed run never ends in the space before the next word: only words are marked.
        assert not any(w.changed and w.text != w.text.rstrip() for w in diff.before + diff.after)


def test_both_shapes_come_from_one_comparison() -> None:
    diff = word_diff("a b c", "x y z")
    assert diff.inline == [Piece("removed", "a b c"), Piece("added", "x y z")]  # not word by word
    assert diff.before == [Words("a b c", True)] and diff.after == [Words("x y z", True)]


def test_identical_and_empty_texts() -> None:
    assert word_diff("Same text.", "Same text.").inline == [Piece("same", "Same text.")]
    assert word_diff("Same text.", "Same text.").after == [Words("Same text.", False)]
    assert word_diff("", "New.").inline == [Piece("added", "New.")]
    assert word_diff("", "New.").before == []
