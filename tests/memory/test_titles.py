"""A memory's title is the statement it makes (memory/titles.py), never its slot key."""

from __future__ import annotations

from quire.memory.titles import TITLE_CHARS, title


def test_a_short_memory_is_its_own_title() -> None:
    text = "Every full-time employee has 27 days of paid holiday per calendar year, plus public holidays."
    assert title(text) == text
    assert (
        title("  Laptops are\n replaced   every three years. ") == "Laptops are replaced every three years."
    )


def test_a_long_memory_is_titled_by_its_first_sentence() -> None:
    first = "Parental leave must be requested eight weeks before it starts."
    rest = (
        " Requests go through the leave app, e.g. for a second parent, and HR confirms within 5.5 days." * 3
    )
    assert title(first + rest) == first


def test_without_a_short_first_sentence_the_text_is_cut_at_a_word_boundary() -> None:
    text = "Sensor readings " + "and calibration records " * 20 + "are kept for 5 years"
    made = title(text)
    assert len(made) <= TITLE_CHARS and made.endswith("…")
    assert text.startswith(made[:-1]) and text[len(made) - 1] == " "  # a whole word before the cut
    assert title(text, size=30) == "Sensor readings and…"


def test_abbreviations_and_decimals_do_not_end_a_sentence() -> None:
    text = (
        "Claims of e.g. 2.5 kg parcels go through the portal. " + "Other parcels follow another route. " * 6
    )
    assert title(text) == "Claims of e.g. 2.5 kg parcels go through the portal."
