"""From unstructured's elements to Quire's, on elements built by hand: no parser, no file."""

from __future__ import annotations

from unstructured.documents.elements import (
    ElementMetadata,
    ListItem,
    NarrativeText,
    PageBreak,
    Table,
    Title,
)

from quire.content.parsing.conversion import element_type, normalize_text, to_parsed_elements


def test_text_is_collapsed_but_indentation_and_words_are_kept() -> None:
    assert normalize_text("Spaces   and\ttabs\x00 here.  \r\n\r\n\r\n\r\nNext.") == (
        "Spaces and tabs here.\n\nNext."
    )
    assert normalize_text('{\n  "items": [\n    1\n  ]\n}') == '{\n  "items": [\n    1\n  ]\n}'
    assert normalize_text("\x07\x1f \n ") == ""


def test_element_types_are_snake_case() -> None:
    assert element_type("NarrativeText") == "narrative_text"
    assert element_type("Title") == "title"
    assert element_type("Header-Footer") == "header_footer"


def test_titles_nest_by_depth_and_a_shallower_title_closes_the_deeper_ones() -> None:
    elements = [
        Title("Report", metadata=ElementMetadata(category_depth=0)),
        Title("Results", metadata=ElementMetadata(category_depth=1)),
        NarrativeText("Sales grew."),
        Title("Costs", metadata=ElementMetadata(category_depth=1)),
        NarrativeText("Costs fell."),
        Title("Outlook", metadata=ElementMetadata(category_depth=0)),
        NarrativeText("More of the same."),
    ]

    paths = {e.text: e.section_path for e in to_parsed_elements(elements, paged=False)}

    assert paths == {
        "Report": (),
        "Results": ("Report",),
        "Sales grew.": ("Report", "Results"),
        "Costs": ("Report",),
        "Costs fell.": ("Report", "Costs"),
        "Outlook": (),
        "More of the same.": ("Outlook",),
    }


def test_empty_elements_and_page_breaks_are_dropped() -> None:
    elements = [NarrativeText("Kept."), NarrativeText(" \x00 "), PageBreak("page break"), NarrativeText("")]

    assert [e.text for e in to_parsed_elements(elements, paged=True)] == ["Kept."]


def test_pages_count_only_where_the_format_has_them() -> None:
    element = NarrativeText("On page two.", metadata=ElementMetadata(page_number=2))

    [paged] = to_parsed_elements([element], paged=True)
    [unpaged] = to_parsed_elements([element], paged=False)

    assert (paged.page, unpaged.page) == (2, None)


def test_tables_keep_their_html_and_sheet_and_others_lose_stray_html() -> None:
    table = Table("a 1", metadata=ElementMetadata(text_as_html="<table><tr><td>a</td></tr></table>"))
    table.metadata.page_name = "Stock"
    prose = NarrativeText("Prose.", metadata=ElementMetadata(text_as_html="<p>Prose.</p>"))

    converted_table, converted_prose = to_parsed_elements([table, prose], paged=False)

    assert converted_table.type == "table"
    assert converted_table.html == "<table><tr><td>a</td></tr></table>"
    assert converted_table.metadata == {"sheet": "Stock"}
    assert converted_prose.html is None


def test_metadata_keeps_heading_levels_list_depths_links_and_email_fields_under_quires_names() -> None:
    heading = Title("Plan", metadata=ElementMetadata(category_depth=1))
    item = ListItem("Nested item", metadata=ElementMetadata(category_depth=2))
    body = NarrativeText(
        "See the site.",
        metadata=ElementMetadata(
            sent_from=["alice@example.com"],
            cc_recipient=["carol@example.com"],
            subject="Plans",
            link_urls=["https://a.example", "https://b.example"],
            link_texts=["a"],
        ),
    )

    converted = list(to_parsed_elements([heading, item, body], paged=False))

    assert [e.metadata for e in converted] == [
        {"heading_level": 2},
        {"list_depth": 2},
        {
            "sent_from": ["alice@example.com"],
            "cc": ["carol@example.com"],
            "subject": "Plans",
            "links": [{"url": "https://a.example", "text": "a"}, {"url": "https://b.example", "text": None}],
        },
    ]


def test_an_attachment_starts_its_own_sections_and_says_where_it_came_from() -> None:
    def attached(element: Title | NarrativeText, depth: int | None = None) -> Title | NarrativeText:
        element.metadata = ElementMetadata(
            filename="report.pdf", attached_to_filename="mail.eml", category_depth=depth
        )
        return element

    elements = [
        Title("Mail subject", metadata=ElementMetadata(category_depth=0)),
        NarrativeText("The body."),
        attached(Title("Report title"), depth=0),
        attached(NarrativeText("Inside the report.")),
    ]

    body, report_title, inside = list(to_parsed_elements(elements, paged=False))[1:]

    assert body.section_path == ("Mail subject",)
    assert report_title.section_path == ()
    assert inside.section_path == ("Report title",)
    assert inside.metadata == {"attachment_of": "mail.eml", "attachment": "report.pdf"}
