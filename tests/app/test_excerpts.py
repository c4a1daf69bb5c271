"""A search hit's passage on one line: whole sentences, the section's heading not said twice."""

from __future__ import annotations

from quire.app.cli_search import hit_line
from quire.app.excerpts import excerpt
from quire.client.models import SearchHit

TEXT = (
    "Holidays\n\nEvery employee gets 27 days of paid holiday a year, plus the public holidays of their "
    "country. Unused days carry over until March."
)
HEADLINE = "27 days of «paid» «holiday» a year … , plus the public «holidays»"


def test_the_passage_is_the_sentence_holding_the_words() -> None:
    line = excerpt(TEXT, HEADLINE, headings=("Handbook", "Holidays"))
    assert (
        line
        == "Every employee gets 27 days of paid holiday a year, plus the public holidays of their country."
    )
    assert excerpt(TEXT, "carry over «until» March") == "Unused days carry over until March."


def test_a_heading_the_database_marked_does_not_move_the_passage_past_its_start() -> None:
    # The headline marks the section's heading first; the heading is left out of the line, and
    # its word comes again only at the sentence's end: the line still starts at "Every".
    text = (
        "Holidays\n\nEvery full-time employee has 27 days of paid holiday per calendar year, plus "
        "public holidays. Part-time colleagues get a pro-rata share."
    )
    headline = "«Holidays»\n\nEvery full-time employee has 27 days of «paid» «holiday» per calendar year"
    line = excerpt(text, headline, headings=("Handbook", "Holidays"))
    assert line.startswith("Every full-time employee has 27 days of paid holiday")


def test_a_long_sentence_is_cut_at_words() -> None:
    text = "Intro. " + "word " * 80 + "the paid holiday rule " + "more " * 60 + "end."
    line = excerpt(text, "«paid» «holiday»", width=120)
    assert line.startswith("… word") and line.endswith(" …") and "paid holiday" in line
    assert len(line) <= 125 and "wor …" not in line  # whole words only


def test_the_hit_line_names_title_version_and_section_once() -> None:
    hit = SearchHit.model_validate(
        {
            "score": 0.9,
            "text": TEXT,
            "citation": {
                "document_id": "d",
                "title": "Handbook",
                "version": 2,
                "section": ["Handbook", "Holidays"],
                "pages": [3],
                "snippet": HEADLINE,
            },
        }
    )
    line = hit_line(1, hit)
    assert line.startswith("[bold]1. Handbook[/] v2 · Holidays · p. 3  Every employee")
    assert line.count("Handbook") == 1 and "[bold]paid[/bold] [bold]holiday[/bold]" in line
