"""Text quality: garbled text is flagged with its pages, and letter-spaced words are joined."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quire.content.parsing import ParsedDocument, ParsedElement, Parser, QualityWarning
from quire.content.parsing.quality import (
    JOINED,
    encrypted_email,
    join_letter_spaced,
    review,
)
from tests.content import fixtures

LETTER = [
    "Dear members of the board",
    "I would like to thank the committee for its support this year.",
    "We look forward to working with all of you again in the spring.",
]
FIGURES = [
    "Quarterly figures by region",
    "Northern stores sold more winter tyres than last year.",
    "Southern stores held steady through the whole season.",
    "Eastern stores opened two new branches in the autumn.",
]
PLAIN = ["Annual report", "Revenue grew by twelve percent over the previous year."]
# What pdfminer reads from a page turned by 90 degrees: fragments of lines, letters reversed.
ROTATED_FRAGMENTS = [
    "n o g e r", "i", "y b", "s e r u g", "i f", "y l r e t r a u Q", ". r a e y", "t s a", "l",
    "n a h t", "s e r y t", "r e n w e r o m d o s", "t", "i", "l", "s e r o t s",
]  # fmt: skip


def element(text: str, page: int | None = 1, **metadata: object) -> ParsedElement:
    return ParsedElement(type="narrative_text", text=text, page=page, metadata=dict(metadata))


def codes(warnings: tuple[QualityWarning, ...]) -> list[tuple[str, tuple[int, ...]]]:
    return [(w.code, w.pages) for w in warnings]


# --- Joining letter-spaced words --------------------------------------------------------------


def test_letter_spaced_words_are_joined_at_the_wider_gaps() -> None:
    raw = "I   w o u l d   l i k e   t o   t h a n k   t h e   c o m m i t t e e ."

    assert join_letter_spaced(raw) == "I would like to thank the committee."


def test_each_line_of_a_box_is_joined_on_its_own() -> None:
    raw = "D e a r   m e m b e r s\n\nW e   l o o k   f o r w a r d"

    assert join_letter_spaced(raw) == "Dear members\n\nWe look forward"


def test_ligatures_inside_letter_spaced_words_are_kept() -> None:
    assert join_letter_spaced("t o   t h e   o f fi c e   m a n a g e r") == "to the office manager"


@pytest.mark.parametrize(
    "raw",
    [
        "Revenue grew by twelve percent.  Costs fell.",  # two spaces after a sentence
        "Item   Qty   Price\n1   2   3",  # a table's columns
        "y l r e t r a u Q",  # fragments of a rotated line: no wider gaps to split at
        "Options:  a  b  c  d",  # single letters that are words already
        "A  B  C  D  E  F  G  H",
    ],
)
def test_text_that_is_not_letter_spaced_is_left_alone(raw: str) -> None:
    assert join_letter_spaced(raw) is None


# --- Warnings over a document's elements ---------------------------------------------------


def test_joined_words_are_reported_with_their_pages() -> None:
    elements = [
        element("Annual report"),
        element("Dear members of the board", page=3, **{JOINED: True}),
        element("I would like to thank the committee.", page=4, **{JOINED: True}),
    ]

    (warning,) = review(elements)

    assert (warning.code, warning.pages) == ("letter_spaced_text", (3, 4))
    assert warning.message == "joined letter-spaced words on pages 3-4"


def test_letter_spaced_text_without_word_gaps_is_flagged_not_joined() -> None:
    elements = [element("Annual report"), element("I w o u l d l i k e t o t h a n k t h e m", page=2)]

    (warning,) = review(elements)

    assert (warning.code, warning.pages) == ("letter_spaced_text", (2,))
    assert "page 2" in warning.message and "not joined" in warning.message


def test_a_page_of_short_fragments_is_fragmented_text() -> None:
    elements = [element(text, page=1) for text in PLAIN] + [element(t, page=2) for t in ROTATED_FRAGMENTS]

    (warning,) = review(elements)

    assert (warning.code, warning.pages) == ("fragmented_text", (2,))
    assert warning.message.startswith("text on page 2 comes out as short fragments")


def test_short_but_sound_elements_are_not_fragments() -> None:
    table = ["Region", "Sales", "North", "42", "South", "17", "East", "8", "West", "23", "Total", "90"]
    slide = ["Launch plan", "Q1", "Beta", "Q2", "GA", "Docs", "API", "SDK", "CLI", "UI", "Ops", "QA"]

    assert review([element(text, page=1) for text in table + slide]) == ()


@pytest.mark.parametrize(
    "text",
    [
        "Caf\ufffd au lait, cr\ufffdme br\ufffdl\ufffde and a g\ufffdteau for dessert.",
        "The rÃ©sumÃ© of the cafÃ© owner wasnâ€™t what we expected.",
        "(cid:3)(cid:72)(cid:79)(cid:79)(cid:82)(cid:3)(cid:90)(cid:82)(cid:85)(cid:79)(cid:71)",
    ],
)
def test_replacement_characters_mojibake_and_unmapped_glyphs_are_undecodable(text: str) -> None:
    elements = [element(t, page=1) for t in PLAIN] + [element(text, page=5)]

    assert codes(review(elements)) == [("undecodable_text", (5,))]


def test_a_stray_replacement_character_is_not_worth_a_warning() -> None:
    long_text = "Revenue grew by twelve percent over the previous year in every region. " * 5
    assert review([element(long_text + "\ufffd")]) == ()


def test_an_armored_pgp_message_in_the_text_is_encrypted_content() -> None:
    (warning,) = review([element(fixtures.PGP_MESSAGE, page=None)])

    assert (warning.code, warning.pages) == ("encrypted_content", ())


def test_encrypted_emails_are_recognised_by_their_structure() -> None:
    assert encrypted_email(fixtures.pgp_eml()) == "PGP"
    assert encrypted_email(fixtures.smime_eml()) == "S/MIME"
    assert encrypted_email(fixtures.eml()) is None
    assert encrypted_email(fixtures.eml_with_attachments()) is None


def test_documents_without_pages_get_warnings_without_pages() -> None:
    (warning,) = review([element("I w o u l d l i k e t o t h a n k t h e m", page=None)])

    assert (warning.code, warning.pages) == ("letter_spaced_text", ())
    assert "page" not in warning.message


def test_sound_text_has_no_warnings() -> None:
    elements = [element(line, page=index // 2 + 1) for index, line in enumerate(PLAIN + LETTER + FIGURES)]

    assert review(elements) == ()


# --- Through the real parser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def parser() -> Iterator[Parser]:
    with Parser() as parser:
        yield parser


def test_a_letter_spaced_pdf_is_joined_and_says_so(parser: Parser) -> None:
    data = fixtures.pdf([PLAIN, LETTER, LETTER], letter_spaced=[2, 3])

    document = parser.parse(data, filename="letter.pdf")

    texts = [e.text for e in document.elements if e.page == 2]
    assert texts == LETTER
    (warning,) = document.warnings
    assert (warning.code, warning.pages) == ("letter_spaced_text", (2, 3))
    assert warning.message == "joined letter-spaced words on pages 2-3"


def test_a_rotated_page_is_reported_as_fragmented(parser: Parser) -> None:
    document = parser.parse(fixtures.pdf([PLAIN, FIGURES], rotated=[2]), filename="figures.pdf")

    assert codes(document.warnings) == [("fragmented_text", (2,))]


@pytest.mark.parametrize(("data", "kind"), [(fixtures.pgp_eml(), "PGP"), (fixtures.smime_eml(), "S/MIME")])
def test_an_encrypted_email_says_its_body_could_not_be_read(parser: Parser, data: bytes, kind: str) -> None:
    document = parser.parse(data, filename="contract.eml")

    (warning,) = document.warnings
    assert warning.code == "encrypted_content"
    assert warning.message == f"the email's body is encrypted ({kind}); only its headers could be read"


def test_a_sound_document_has_no_warnings(parser: Parser) -> None:
    document = parser.parse(fixtures.pdf([PLAIN, LETTER, FIGURES]), filename="report.pdf")

    assert document.warnings == ()


def test_warnings_are_plain_data() -> None:
    document = ParsedDocument(
        content_type="application/pdf",
        elements=(),
        warnings=(QualityWarning(code="fragmented_text", message="text on page 2 …", pages=(2,)),),
    )

    assert [w.as_json() for w in document.warnings] == [
        {"code": "fragmented_text", "message": "text on page 2 …", "pages": [2]}
    ]
