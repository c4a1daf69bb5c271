"""The word diff the console shows between a slot's approved memory and a proposal."""

from __future__ import annotations

from quire.app.console.worddiff import Piece, word_diff


def test_a_changed_number_is_one_word_removed_and_one_added() -> None:
    assert word_diff("Kept for 4 years, then deleted.", "Kept for 5 years, then deleted.") == [
        Piece("same", "Kept for "),
        Piece("removed", "4 "),
        Piece("added", "5 "),
        Piece("same", "years, then deleted."),
    ]


def test_the_pieces_rebuild_both_texts() -> None:
    old, new = "Parental leave is 16 weeks.", "Parental leave is 20 weeks at full pay,  for every parent."
    pieces = word_diff(old, new)
    assert "".join(p.text for p in pieces if p.kind != "added") == old
    assert "".join(p.text for p in pieces if p.kind != "removed") == new


def test_identical_and_empty_texts() -> None:
    assert word_diff("Same text.", "Same text.") == [Piece("same", "Same text.")]
    assert word_diff("", "New.") == [Piece("added", "New.")]
