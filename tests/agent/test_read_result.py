"""A tool result cut short in the conversation can be read on with the handle the note gives
(issue 18, finding 2)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from quire.agent.citations import SourceCitation
from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.context import RESULT_LIMIT_CHARS
from quire.agent.messages import CompletionRequest, Message, Role, ToolCall
from quire.agent.state import AgentState
from quire.agent.tools.base import ToolContext, ToolOutput, tool
from quire.core.models import Role as UserRole
from tests.agent.scripted import install
from tests.harness import Harness
from tests.services import use_models

LONG = "".join(f"line {n:05d}: the quick brown fox\n" for n in range(600))  # about 18,600 characters
NOTE = re.compile(r"call read_result\(handle='([^']+)', offset=(\d+)\)")  # the conversation's cut
READ_ON = re.compile(r"more characters: read_result\(handle='([^']+)', offset=(\d+)\)")  # read_result's


class Nothing(BaseModel):
    pass


@tool(summary="Returns a very long text.", tags=("test",))
def long_text(ctx: ToolContext, args: Nothing) -> ToolOutput:
    return ToolOutput(content=LONG)


@pytest.fixture
def with_long_text(content: Harness) -> Iterator[None]:
    content.services.agent.tools[long_text.name] = long_text
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    yield
    content.services.agent.tools.pop(long_text.name, None)


def test_a_cut_result_is_read_on_with_the_handle_its_note_gives(
    content: Harness, with_long_text: None
) -> None:
    pieces: list[str] = []

    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            return Message.assistant(tool_calls=[ToolCall(id="call_abc", name="long_text", arguments={})])
        latest = results[-1].content
        pieces.append(latest)
        note = NOTE.search(latest) or READ_ON.search(latest)
        if note is None:
            return Message.assistant("read it all")
        arguments = {"handle": note.group(1), "offset": int(note.group(2)), "length": 20000}
        return Message.assistant(
            tool_calls=[ToolCall(id=f"call_{len(results)}", name="read_result", arguments=arguments)]
        )

    install(script)
    run_id = content.start(
        "agent.answer",
        AgentState(question="q", role=UserRole.reader, tools=["long_text", "read_result"]),
    )
    content.drive()
    assert content.run(run_id).status == "completed"
    first, *rest = pieces
    assert first.startswith(LONG[:RESULT_LIMIT_CHARS]) and "[truncated:" in first
    assert rest and not rest[0].startswith("'call_abc' is not a result handle"), rest[0]
    assert rest[-1].endswith("\n[end of result]"), rest[-1][-200:]
    read = "".join(re.sub(r"\n\[(\d+ more characters: read_result.*|end of result)\]$", "", p) for p in rest)
    assert LONG[:RESULT_LIMIT_CHARS] + read == LONG
    # Every piece is the result's own text: none was cut again with a handle of its own.
    assert all(NOTE.search(p) is None for p in rest)


# A cut result with sources reads on under the run's numbers (issue 21): the numbers the model
# reads are the ones its answer's citations carry, one sequence per answer.

PASSAGE = "".join(f"clause {n:04d} of the long policy\n" for n in range(250))  # about 7,750 characters


@tool(summary="Returns one short passage with its source.", tags=("test",))
def short_source(ctx: ToolContext, args: Nothing) -> ToolOutput:
    citation = SourceCitation(kind="content", title="Short", quote="a short passage", chunk_id=uuid.uuid4())
    return ToolOutput(content="1 passage:", citations=[citation])


@tool(summary="Returns two long passages with their sources.", tags=("test",))
def long_sources(ctx: ToolContext, args: Nothing) -> ToolOutput:
    citations = [
        SourceCitation(kind="content", title=f"Long {n}", quote=PASSAGE, chunk_id=uuid.UUID(int=n))
        for n in (1, 2)
    ]
    return ToolOutput(content="2 passages:", citations=citations)


def test_a_cut_result_reads_on_under_the_numbers_of_the_run(content: Harness, with_long_text: None) -> None:
    tools = content.services.agent.tools
    tools[short_source.name], tools[long_sources.name] = short_source, long_sources
    pieces: list[str] = []

    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            return Message.assistant(tool_calls=[ToolCall(id="c1", name="short_source", arguments={})])
        if len(results) == 1:
            return Message.assistant(tool_calls=[ToolCall(id="c2", name="long_sources", arguments={})])
        pieces.append(results[-1].content)
        note = NOTE.search(results[-1].content) or READ_ON.search(results[-1].content)
        if note is None:
            return Message.assistant("Both long passages agree [2][3].")
        arguments = {"handle": note.group(1), "offset": int(note.group(2)), "length": 20000}
        return Message.assistant(
            tool_calls=[ToolCall(id=f"c{len(results) + 1}", name="read_result", arguments=arguments)]
        )

    install(script)
    try:
        run_id = content.start(
            "agent.answer",
            AgentState(
                question="q", role=UserRole.reader, tools=["short_source", "long_sources", "read_result"]
            ),
        )
        content.drive()
    finally:
        tools.pop(short_source.name, None)
        tools.pop(long_sources.name, None)
    state = AgentState.model_validate(content.run(run_id).state)
    assert [(c.n, c.title) for c in state.citations] == [(2, "Long 1"), (3, "Long 2")]
    first, *rest = pieces
    assert "\n[2] Long 1" in first and "[truncated:" in first
    read = "".join(re.sub(r"\n\[(\d+ more characters: read_result.*|end of result)\]$", "", p) for p in rest)
    whole = first[:RESULT_LIMIT_CHARS] + read
    assert re.findall(r"^\[(\d+)\] (Long \d)", whole, re.MULTILINE) == [("2", "Long 1"), ("3", "Long 2")]
    assert "[1]" not in whole
