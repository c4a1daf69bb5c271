"""The Anthropic adapter against a local server speaking the Messages wire format."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from quire.agent.messages import (
    CompletionRequest,
    Delta,
    FinishReason,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)
from quire.agent.providers.anthropic import AnthropicProvider
from quire.agent.providers.errors import (
    AuthenticationFailed,
    ContentFiltered,
    ContextTooLong,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
)
from tests.agent.fakes.anthropic_server import (
    MODEL,
    AnthropicServer,
    error_reply,
    event,
    message,
    message_reply,
    redacted_thinking,
    stream_events,
    stream_reply,
    text,
    thinking,
    tool_use,
    usage,
)
from tests.agent.fakes.server import Reply, sse_reply

CACHE = {"type": "ephemeral"}
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as fake:
        yield fake


@pytest.fixture
def provider(server: AnthropicServer) -> AnthropicProvider:
    return AnthropicProvider(api_key="sk-ant-test", base_url=server.url, timeout=5)


def ask(text: str = "Hello", **options: object) -> CompletionRequest:
    messages = [Message.system("Be brief."), Message.user(text)]
    return CompletionRequest.model_validate({"model": "claude-test", "messages": messages, **options})


def test_plain_text(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(message_reply(text("Hi "), text("there.")))

    completion = provider.complete(ask(max_output_tokens=100, temperature=0.5))

    assert completion.message.content == "Hi there."
    assert completion.message.metadata == {}
    assert completion.finish_reason is FinishReason.stop
    assert completion.usage == Usage(input_tokens=10, output_tokens=5)
    assert (completion.provider, completion.model, completion.response_id) == (
        "anthropic",
        MODEL,
        "msg_01",
    )
    sent = server.last
    key_headers = (sent.headers.get("x-api-key"), sent.headers.get("authorization"))
    assert key_headers in {("sk-ant-test", None), (None, "Bearer sk-ant-test")}  # by SDK version
    assert sent.headers["anthropic-version"]
    assert sent.json() == {
        "model": "claude-test",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": CACHE}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": CACHE}]}
        ],
    }


def test_tools_and_tool_choice(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(message_reply(text("ok")))

    provider.complete(ask(tools=[WEATHER], tool_choice="required"))

    body = server.last.json()
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert body["tool_choice"] == {"type": "any"}


def test_one_tool_call(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(message_reply(text("Let me check."), tool_use("toolu_1", "get_weather", {"city": "Paris"})))

    completion = provider.complete(ask(tools=[WEATHER]))

    assert completion.finish_reason is FinishReason.tool_calls
    assert completion.message.content == "Let me check."
    assert completion.message.tool_calls == [
        ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Paris"})
    ]


def test_parallel_tool_calls_and_their_results(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(
        message_reply(
            tool_use("toolu_a", "get_weather", {"city": "Paris"}),
            tool_use("toolu_b", "get_weather", {"city": "Oslo"}),
        ),
        message_reply(text("Done.")),
    )
    first = provider.complete(ask(tools=[WEATHER]))
    paris, oslo = first.message.tool_calls

    follow_up = [
        *ask().messages,
        first.message,
        Message.tool_result(paris, "18C"),
        Message.tool_result(oslo, "unknown city", is_error=True),
        Message.user("Also, be quick."),
    ]
    provider.complete(CompletionRequest(model="claude-test", messages=follow_up, tools=[WEATHER]))

    sent = server.last.json()["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_b",
                "content": "unknown city",
                "is_error": True,
            },
            {"type": "text", "text": "Also, be quick.", "cache_control": CACHE},
        ],
    }
    assert len(sent) == 3


def test_streamed_text(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(stream_reply(text("Hello, world."), usage_=usage(20, 4, cache_read=100)))
    deltas: list[Delta] = []

    completion = provider.complete(ask(stream=True), on_delta=deltas.append)

    assert [delta.text for delta in deltas] == ["Hell", "o, w", "orld", "."]
    assert completion.message.content == "Hello, world."
    assert completion.finish_reason is FinishReason.stop
    assert completion.usage == Usage(input_tokens=120, output_tokens=4, cached_input_tokens=100)
    assert server.last.json()["stream"] is True


def test_streamed_tool_call_argument_fragments(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(
        stream_reply(
            text("Checking."),
            tool_use("toolu_a", "get_weather", {"city": "Paris"}),
            tool_use("toolu_b", "get_weather", {"city": "Oslo"}),
            piece=8,
        )
    )
    deltas: list[Delta] = []

    completion = provider.complete(ask(stream=True, tools=[WEATHER]), on_delta=deltas.append)

    fragments = [(d.tool_call_id, d.tool_name, d.arguments_fragment) for d in deltas if d.tool_call_id]
    assert fragments == [
        ("toolu_a", "get_weather", '{"city":'),
        ("toolu_a", "get_weather", ' "Paris"'),
        ("toolu_a", "get_weather", "}"),
        ("toolu_b", "get_weather", '{"city":'),
        ("toolu_b", "get_weather", ' "Oslo"}'),
    ]
    assert completion.finish_reason is FinishReason.tool_calls
    assert completion.message.content == "Checking."
    assert completion.message.tool_calls == [
        ToolCall(id="toolu_a", name="get_weather", arguments={"city": "Paris"}),
        ToolCall(id="toolu_b", name="get_weather", arguments={"city": "Oslo"}),
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_blocks_go_back_unchanged(
    server: AnthropicServer, provider: AnthropicProvider, stream: bool
) -> None:
    blocks = [
        thinking("The user wants the weather; I should call the tool.", "EqQBCkgIARABGAIiQL+/sig=="),
        redacted_thinking("EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"),
        tool_use("toolu_1", "get_weather", {"city": "Paris"}),
    ]
    answer = message(*blocks)
    reply = sse_reply(stream_events(answer)) if stream else message_reply(*blocks)
    server.reply(reply, message_reply(text("18C in Paris.")))

    first = provider.complete(ask(stream=stream, tools=[WEATHER]))
    assert first.message.metadata == {"anthropic": {"thinking": blocks[:2]}}
    follow_up = [*ask().messages, first.message, Message.tool_result(first.message.tool_calls[0], "18C")]
    provider.complete(CompletionRequest(model="claude-test", messages=follow_up, tools=[WEATHER]))

    assert server.last.json()["messages"][1] == {"role": "assistant", "content": blocks}


def test_cached_tokens_are_part_of_the_input(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(message_reply(text("ok"), usage_=usage(50, 7, cache_read=1000, cache_write=200)))

    completion = provider.complete(ask())

    assert completion.usage == Usage(
        input_tokens=1250, output_tokens=7, cached_input_tokens=1000, cache_write_tokens=200
    )


def test_rate_limited_with_retry_after(server: AnthropicServer, provider: AnthropicProvider) -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=40)).isoformat().replace("+00:00", "Z")
    headers = {
        "retry-after": "12",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
    }
    server.reply(error_reply(429, "rate_limit_error", "Number of requests exceeded", headers=headers))

    with pytest.raises(RateLimited) as caught:
        provider.complete(ask())

    assert caught.value.retry_after == 12.0  # retry-after is the one Anthropic says to obey
    assert len(server.received) == 1


def test_rate_limited_with_only_reset_timestamps(
    server: AnthropicServer, provider: AnthropicProvider
) -> None:
    now = datetime.now(UTC)
    headers = {
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-requests-reset": (now + timedelta(seconds=2)).isoformat(),
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": (now + timedelta(seconds=45)).isoformat(),
    }
    server.reply(error_reply(429, "rate_limit_error", "Input tokens per minute exceeded", headers=headers))

    with pytest.raises(RateLimited) as caught:
        provider.complete(ask())
    after = datetime.now(UTC)

    # The exhausted limit's reset, 45 s from `now`, seen from the provider's clock, which it
    # reads somewhere between `now` and `after`.
    retry_after = timedelta(seconds=caught.value.retry_after or 0)
    assert timedelta(seconds=45) - (after - now) <= retry_after <= timedelta(seconds=45)
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("status", "type"),
    [(500, "api_error"), (529, "overloaded_error"), (503, "api_error"), (504, "timeout_error")],
)
def test_server_errors_and_overload_are_unavailable(
    server: AnthropicServer, provider: AnthropicProvider, status: int, type: str
) -> None:
    server.reply(error_reply(status, type, "Overloaded" if status == 529 else "Internal error"))

    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(ask())

    assert caught.value.retryable and caught.value.status_code == status
    assert len(server.received) == 1


def test_a_503_with_retry_after_says_how_long_to_wait(
    server: AnthropicServer, provider: AnthropicProvider
) -> None:
    server.reply(error_reply(503, "api_error", "Unavailable", headers={"retry-after": "20"}))

    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(ask())

    assert caught.value.retry_after == 20.0


def test_overload_in_the_middle_of_a_stream(server: AnthropicServer, provider: AnthropicProvider) -> None:
    events = stream_events(message(text("Hello there")))[:4]
    events.append(event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
    server.reply(sse_reply(events))

    with pytest.raises(ProviderUnavailable, match="Overloaded") as caught:
        provider.complete(ask(stream=True))
    assert caught.value.status_code == 529


@pytest.mark.parametrize("stream", [False, True])
def test_refusal_is_filtered(server: AnthropicServer, provider: AnthropicProvider, stream: bool) -> None:
    answer = message(text("I can't"), stop_reason="refusal")
    server.reply(
        sse_reply(stream_events(answer))
        if stream
        else message_reply(*answer["content"], stop_reason="refusal")
    )

    with pytest.raises(ContentFiltered):
        provider.complete(ask(stream=stream))


@pytest.mark.parametrize(("status", "type"), [(401, "authentication_error"), (403, "permission_error")])
def test_unauthorized(server: AnthropicServer, provider: AnthropicProvider, status: int, type: str) -> None:
    server.reply(error_reply(status, type, "invalid x-api-key"))

    with pytest.raises(AuthenticationFailed):
        provider.complete(ask())


def test_no_key_for_anthropic_itself() -> None:
    with pytest.raises(AuthenticationFailed, match="no API key"):
        AnthropicProvider(api_key=None).complete(ask())


@pytest.mark.parametrize(
    "text_",
    [
        "prompt is too long: 208630 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 197626 + 21333 > 200000, "
        "decrease input length or `max_tokens` and try again",
    ],
)
def test_context_too_long(server: AnthropicServer, provider: AnthropicProvider, text_: str) -> None:
    server.reply(error_reply(400, "invalid_request_error", text_))

    with pytest.raises(ContextTooLong):
        provider.complete(ask())


@pytest.mark.parametrize("stream", [False, True])
def test_garbage_is_malformed(server: AnthropicServer, provider: AnthropicProvider, stream: bool) -> None:
    if stream:
        server.reply(sse_reply(["event: message_start\ndata: {not json\n\n"]))
    else:
        server.reply(Reply(headers={"content-type": "application/json"}, body=b"{not json"))

    with pytest.raises(MalformedResponse):
        provider.complete(ask(stream=stream))


def test_empty_answer_is_malformed(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(message_reply())

    with pytest.raises(MalformedResponse):
        provider.complete(ask())


def test_truncated_answer_is_a_completion(server: AnthropicServer, provider: AnthropicProvider) -> None:
    server.reply(message_reply(text("Once upon a"), stop_reason="max_tokens"))

    assert provider.complete(ask()).finish_reason is FinishReason.length


def test_streamed_arguments_that_are_not_json(server: AnthropicServer, provider: AnthropicProvider) -> None:
    broken = tool_use("toolu_1", "get_weather", {})
    broken["input"] = '{"city": "Par'  # the fake streams a string input as is
    server.reply(stream_reply(broken))

    completion = provider.complete(ask(stream=True, tools=[WEATHER]))

    call = completion.message.tool_calls[0]
    assert call.arguments == {} and call.raw_arguments == '{"city": "Par'
    assert call.parse_error is not None


def test_extra_headers_are_sent(server: AnthropicServer) -> None:
    provider = AnthropicProvider(
        api_key="sk-ant-test", base_url=server.url, extra_headers={"anthropic-beta": "x-2026"}
    )
    server.reply(message_reply(text("ok")))

    provider.complete(ask())

    assert server.last.headers["anthropic-beta"] == "x-2026"


def test_timeout_is_unavailable(server: AnthropicServer) -> None:
    provider = AnthropicProvider(api_key="sk-ant-test", base_url=server.url, timeout=0.3)
    reply = message_reply(text("late"))
    reply.delay = 1.0
    server.reply(reply)

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask())
    assert len(server.received) == 1


def test_connection_refused_is_unavailable() -> None:
    with AnthropicServer() as gone:
        base_url = gone.url
    provider = AnthropicProvider(api_key="sk-ant-test", base_url=base_url, timeout=2)

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask())
