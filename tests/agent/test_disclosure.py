"""Progressive disclosure: tools defined by the decorator, found in the catalog, loaded on demand."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field, ValidationError

from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.messages import CompletionRequest, Message, Role, ToolCall
from quire.agent.state import AgentState
from quire.agent.tools.base import Tool, ToolContext, ToolOutput, tool
from quire.core.models import Role as UserRole
from tests.agent.scripted import ScriptedProvider, install
from tests.harness import Harness
from tests.services import use_models


class ConvertArgs(BaseModel):
    amount: float = Field(gt=0, description="How much money.")
    source: str = Field(pattern="^[A-Z]{3}$", description="ISO currency code, like EUR.")
    target: str = Field(pattern="^[A-Z]{3}$")


@tool(summary="Convert an amount of money from one currency to another.", tags=("finance", "currency"))
def convert_currency(ctx: ToolContext, args: ConvertArgs) -> ToolOutput:
    """Uses a fixed demo rate table."""
    rate = {("EUR", "NOK"): 11.5, ("USD", "EUR"): 0.9}.get((args.source, args.target), 1.0)
    return ToolOutput(content=f"{args.amount} {args.source} = {round(args.amount * rate, 2)} {args.target}")


class CityArgs(BaseModel):
    city: str


FILLER = {
    "weather_forecast": "Get the weather forecast for a city.",
    "book_meeting_room": "Book a meeting room in an office.",
    "translate_text": "Translate a text into another language.",
    "track_parcel": "Track a parcel by its tracking number.",
    "stock_quote": "Get the latest price of a stock.",
}


def _answer_ok(ctx: ToolContext, args: CityArgs) -> ToolOutput:
    return ToolOutput(content=f"ok for {args.city}")


DEMO_TOOLS: list[Tool] = [convert_currency] + [
    tool(name, summary=summary, tags=("demo",))(_answer_ok) for name, summary in FILLER.items()
]


@pytest.fixture(autouse=True)
def demo_tools(request: pytest.FixtureRequest) -> None:
    """The demo tools are built-ins of this module's runs (other tests, the MCP ones say, have
    tools of the same names): added to the test harness's agent environment."""
    if "content" in request.fixturenames:
        content: Harness = request.getfixturevalue("content")
        for made in DEMO_TOOLS:
            content.services.agent.tools[made.name] = made


def test_the_decorator_makes_a_valid_schema_and_refuses_bad_arguments() -> None:
    spec = convert_currency.spec()
    assert spec.parameters["required"] == ["amount", "source", "target"]
    assert spec.parameters["properties"]["source"]["pattern"] == "^[A-Z]{3}$"
    assert spec.description.startswith("Convert an amount") and "fixed demo rate" in spec.description
    assert convert_currency.parse({"amount": 5, "source": "EUR", "target": "NOK"}).amount == 5
    with pytest.raises(ValidationError):
        convert_currency.parse({"amount": -1, "source": "euro", "target": "NOK"})


def test_a_model_finds_loads_and_calls_a_tool_it_did_not_have(content: Harness) -> None:
    def script(request: CompletionRequest) -> Message:
        done = [m for m in request.messages if m.role == Role.tool]
        offered = {t.name for t in request.tools}
        if not done:
            return Message.assistant(
                tool_calls=[
                    ToolCall(
                        id="f1", name="find_tools", arguments={"query": "convert money between currencies"}
                    )
                ]
            )
        if len(done) == 1:
            names = [line[2:].split(":")[0] for line in done[0].content.splitlines() if line.startswith("- ")]
            return Message.assistant(
                tool_calls=[ToolCall(id="l1", name="load_tools", arguments={"names": names[:1]})]
            )
        if "convert_currency" in offered and len(done) == 2:
            return Message.assistant(
                tool_calls=[
                    ToolCall(
                        id="c1",
                        name="convert_currency",
                        arguments={"amount": 100, "source": "EUR", "target": "NOK"},
                    )
                ]
            )
        if len(done) == 3:  # load two more: the cap of 2 evicts the least recently used
            return Message.assistant(
                tool_calls=[
                    ToolCall(
                        id="l2", name="load_tools", arguments={"names": ["weather_forecast", "track_parcel"]}
                    )
                ]
            )
        return Message.assistant(done[2].content)

    install(script)
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    run_id = content.start(
        "agent.answer", AgentState(question="How much is 100 EUR in NOK?", role=UserRole.reader, max_loaded=2)
    )
    content.drive()
    run = content.run(run_id)
    state = AgentState.model_validate(run.state)
    assert state.answer == "100.0 EUR = 1150.0 NOK"
    assert state.loaded == ["weather_forecast", "track_parcel"]

    requests = ScriptedProvider.requests
    core = [t.name for t in requests[0].tools]
    assert "convert_currency" not in core and {"find_tools", "load_tools", "tool_help"} <= set(core)
    assert "convert_currency" in [t.name for t in requests[2].tools]  # loaded from the next turn on
    prefix = json.dumps([requests[0].messages[0].model_dump(), [t.model_dump() for t in requests[0].tools]])
    for request in requests:
        assert len(request.tools) <= len(core) + 2  # the cap
        assert request.tools[: len(core)] == requests[0].tools  # core tools first, unchanged
        assert (
            json.dumps(
                [request.messages[0].model_dump(), [t.model_dump() for t in request.tools[: len(core)]]]
            )
            == prefix
        )
    events = content.events(run_id)
    assert "tools.found" in events and events.count("tools.loaded") == 2


def test_preloading_puts_the_best_matches_in_the_first_prompt(content: Harness) -> None:
    install(lambda request: Message.assistant("fine"))
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    run_id = content.start(
        "agent.answer",
        AgentState(question="What is the weather forecast for Oslo?", role=UserRole.reader, preload=2),
    )
    content.drive()
    first = [t.name for t in ScriptedProvider.requests[0].tools]
    assert "weather_forecast" in first
    assert AgentState.model_validate(content.run(run_id).state).loaded[0] == "weather_forecast"


def test_find_tools_takes_a_request_of_any_length() -> None:
    # The search cuts a long one to its informative part (tests/agent/test_catalog_search.py).
    from quire.agent.tools.disclosure import FindArgs

    assert len(FindArgs(query="convert currencies " * 200).query) > 500
