"""find_tools' search: a compound request finds a tool for each of its parts; parameters are searched;
a long request is cut to its informative part."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel import Session

from quire.agent.tools.catalog import ToolDescription, parameter_texts, sync_source
from quire.agent.tools.catalog_search import REQUEST_LIMIT, informative_part, request_parts, search_tools
from quire.core.models import Role
from quire.core.search.dense import vector_literal
from quire.core.search.fusion import blend
from quire.core.search.lexical import lexical_scores
from quire.core.word_vectors import word_vectors
from tests.core.search.test_lexemes import HOSTILE_QUERIES
from tests.harness import Harness

CATALOG = {
    "news_headlines": "Read the latest news headlines about a company, a person or a topic.",
    "stock_quote": "Get the current price and recent performance of a stock on the market.",
    "weather_forecast": "Get the weather forecast for a city.",
    "translate_text": "Translate a text into another language.",
    "book_meeting_room": "Book a meeting room in an office.",
    "track_parcel": "Track a parcel by its tracking number.",
    "recipe_finder": "Find cooking recipes for the ingredients you have.",
    "flight_status": "Check whether a flight is delayed or on time.",
}
CATALOG_TOOLS = [ToolDescription(name=name, summary=summary) for name, summary in CATALOG.items()]


def _sync_catalog(session: Session, content: Harness, tools: list[ToolDescription]) -> None:
    sync_source(
        session,
        tenant_id=content.tenant_id,
        source="test",
        tools=tools,
        embedder=content.services.content.embedder,
    )


def test_a_compound_request_splits_into_its_parts_and_a_single_one_does_not() -> None:
    assert request_parts("Show the latest news about Tesla and how its stock price moved today.") == [
        "Show the latest news about Tesla",
        "how its stock price moved today.",
    ]
    assert request_parts("What is the weather in Oslo?") == []
    assert request_parts("Salt and pepper steak recipes") == []  # "and" inside a short phrase


def test_each_part_of_a_compound_request_finds_its_tool(content: Harness) -> None:
    embedder = content.services.content.embedder
    with content.database.tenant_session(content.tenant_id) as session:
        _sync_catalog(session, content, CATALOG_TOOLS)
        compound = "Will my flight to Oslo be on time, and what will the weather there be tomorrow?"
        found = search_tools(session, query=compound, embedder=embedder, k=2)
        assert {f.name for f in found} == {"flight_status", "weather_forecast"}
        # One request: its best match keeps the whole request's score, ahead of everything else.
        single = search_tools(session, query="translate this letter into German", embedder=embedder, k=3)
        assert single[0].name == "translate_text" and single[0].score > single[1].score


def test_a_tool_beyond_the_callers_role_is_never_found(content: Harness) -> None:
    embedder = content.services.content.embedder
    with content.database.tenant_session(content.tenant_id) as session:
        admin_only = ToolDescription(
            name="delete_parcel_records", summary="Delete the tracking records of a parcel.", role=Role.admin
        )
        tools = [*CATALOG_TOOLS, admin_only]
        _sync_catalog(session, content, tools)
        query = "delete the tracking records of my parcel"
        as_admin = search_tools(session, query=query, embedder=embedder, k=3, role=Role.admin)
        assert as_admin[0].name == "delete_parcel_records"
        as_reader = search_tools(session, query=query, embedder=embedder, k=len(tools), role=Role.reader)
        assert "delete_parcel_records" not in {f.name for f in as_reader}
        assert as_reader[0].name == "track_parcel"
        assert len(as_reader) == len(CATALOG)  # everything else the reader may use, best first
        assert [f.score for f in as_reader] == sorted((f.score for f in as_reader), reverse=True)


def test_the_search_statement_blends_as_core_search_does(content: Harness) -> None:
    # find_tools fuses inside its SQL statement (fusion.blend_sql); memory recall fuses with
    # fusion.blend. The two must agree: the same legs, the same scores. The word vectors' leg
    # adds its own min-max-scaled similarity, times its weight, on top.
    embedder = content.services.content.embedder
    query = "what will the weather be like for my flight"
    with content.database.tenant_session(content.tenant_id) as session:
        _sync_catalog(session, content, CATALOG_TOOLS)
        names = {row[0]: row[1] for row in session.execute(text("SELECT id, name FROM agent_tool"))}
        lexical = lexical_scores(session, index_name="tools", query=query, limit=50)

        def similarities(column: str, vector: list[float]) -> dict[uuid.UUID, float]:
            statement = f"SELECT id, 1 - ({column} <=> CAST(:v AS vector)) FROM agent_tool"
            return {
                row[0]: float(row[1])
                for row in session.execute(text(statement), {"v": vector_literal(vector)})
            }

        dense = similarities("embedding", embedder.embed_one(query))
        words = similarities("word_embedding", word_vectors().embed_one(query))
        two_legs = blend(lexical, dense, dense_weight=0.4)
        expected = [(names[f.id], round(f.score, 4)) for f in two_legs]
        found = search_tools(
            session, query=query, embedder=embedder, k=len(CATALOG), dense_weight=0.4, word_weight=0
        )
        assert [(f.name, f.score) for f in found] == expected
        assert lexical and set(lexical) != set(dense)  # both legs count, and they differ

        low, high = min(words.values()), max(words.values())
        three = {f.id: f.score + 0.3 * (words[f.id] - low) / (high - low) for f in two_legs}
        expected = sorted(((names[i], round(score, 4)) for i, score in three.items()), key=lambda x: -x[1])
        found = search_tools(
            session, query=query, embedder=embedder, k=len(CATALOG), dense_weight=0.4, word_weight=0.3
        )
        assert [(f.name, f.score) for f in found] == expected


def test_any_request_text_searches_the_catalog_without_an_error(content: Harness) -> None:
    embedder = content.services.content.embedder
    with content.database.tenant_session(content.tenant_id) as session:
        _sync_catalog(session, content, CATALOG_TOOLS)
        for query in [*HOSTILE_QUERIES, "lone \ud800 surrogate", "weather: forecast & Oslo!"]:
            search_tools(session, query=query, embedder=embedder, k=2)


def test_a_tool_is_found_by_what_its_parameters_say(content: Harness) -> None:
    embedder = content.services.content.embedder
    convert = ToolDescription(
        name="convert",
        summary="Convert a value.",
        parameters={
            "type": "object",
            "properties": {
                "amount": {"type": "number", "description": "How much money to change."},
                "targetCurrency": {"type": "string", "description": "ISO code such as EUR or JPY."},
            },
        },
    )
    assert parameter_texts(convert.parameters) == [
        "amount: How much money to change.",
        "target Currency: ISO code such as EUR or JPY.",
    ]

    class Address(BaseModel):
        postCode: str = Field(description="Where the parcel goes.")

    class Shipment(BaseModel):
        to: Address

    assert parameter_texts(Shipment.model_json_schema()) == ["to", "post Code: Where the parcel goes."]
    with content.database.tenant_session(content.tenant_id) as session:
        _sync_catalog(session, content, [*CATALOG_TOOLS, convert])
        found = search_tools(
            session, query="change dollars into yen, the JPY currency", embedder=embedder, k=1
        )
        assert found[0].name == "convert"
        assert lexical_scores(session, index_name="tools", query="JPY")  # the description's words are indexed


def test_a_long_request_is_cut_to_its_informative_part(content: Harness) -> None:
    embedder = content.services.content.embedder
    filler = "Hello there, I hope you are having a wonderful day, thank you so much for everything. " * 12
    request = filler + "Track my parcel with tracking number 1Z999, it is late. " + filler
    assert len(request) > REQUEST_LIMIT
    with content.database.tenant_session(content.tenant_id) as session:
        _sync_catalog(session, content, CATALOG_TOOLS)
        cut = informative_part(session, request)
        assert len(cut) <= REQUEST_LIMIT and "Track my parcel with tracking number 1Z999" in cut
        assert informative_part(session, "track my parcel") == "track my parcel"  # short ones stay whole
        assert len(informative_part(session, "x" * 2000)) <= REQUEST_LIMIT  # one long word
        found = search_tools(session, query=request, embedder=embedder, k=1)
        assert found[0].name == "track_parcel"


def test_a_tool_indexed_before_the_word_vectors_is_still_found_and_gains_them_on_the_next_sync(
    content: Harness,
) -> None:
    # Migration 0019 adds the column empty: tools synced before have no word vector until the
    # next sync re-indexes them (INDEXED_AS changed, so their digests no longer match).
    embedder = content.services.content.embedder
    with content.database.tenant_session(content.tenant_id) as session:
        _sync_catalog(session, content, CATALOG_TOOLS)
        session.execute(text("UPDATE agent_tool SET word_embedding = NULL, content_hash = 'pieces/1'"))
        found = search_tools(session, query="is my flight delayed", embedder=embedder, k=len(CATALOG))
        assert found[0].name == "flight_status" and len(found) == len(CATALOG)
        _sync_catalog(session, content, CATALOG_TOOLS)
        missing = session.execute(
            text("SELECT count(*) FROM agent_tool WHERE word_embedding IS NULL")
        ).scalar_one()
        assert missing == 0
