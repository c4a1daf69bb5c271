"""The OpenAI adapter against a local server speaking the Chat Completions wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

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
from quire.agent.providers.errors import (
    AuthenticationFailed,
    ContentFiltered,
    ContextTooLong,
    InvalidProviderRequest,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
)
from quire.agent.providers.openai import OpenAIProvider
from tests.agent.fakes.openai_server import (
    MODEL,
    OpenAIServer,
    chat_completion,
    chunk,
    completion_reply,
    error_reply,
    function_call,
    stream_reply,
    usage,
)
from tests.agent.fakes.server import Reply, data_event, json_reply, sse_reply

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as fake:
        yield fake


@pytest.fixture
def provider(server: OpenAIServer) -> OpenAIProvider:
    return OpenAIProvider(api_key="sk-test", base_url=server.base_url, timeout=5)


def ask(text: str = "Hello", **options: object) -> CompletionRequest:
    messages = [Message.system("Be brief."), Message.user(text)]
    return CompletionRequest.model_validate({"model": "gpt-test", "messages": messages, **options})


def test_plain_text(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(completion_reply("Hi there."))

    completion = provider.complete(ask(max_output_tokens=100))

    assert completion.message.content == "Hi there."
    assert completion.message.tool_calls == []
    assert completion.finish_reason is FinishReason.stop
    assert completion.usage == Usage(input_tokens=10, output_tokens=5)
    assert (completion.provider, completion.model) == ("openai", MODEL)
    assert completion.response_id == "chatcmpl-123"
    sent = server.last
    assert sent.method == "POST"
    assert sent.headers["authorization"] == "Bearer sk-test"
    body = sent.json()
    assert body["model"] == "gpt-test"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert body["max_tokens"] == 100  # a compatible server: the widely known name
    assert "tools" not in body and "stream" not in body and "temperature" not in body


@pytest.mark.parametrize(
    "base_url", [None, "https://api.openai.com/v1/", "https://team.openai.azure.com/openai/v1"]
)
def test_openai_itself_gets_max_completion_tokens(base_url: str | None) -> None:
    """OpenAI's reasoning models refuse `max_tokens` (checked offline: no request is sent)."""
    provider = OpenAIProvider(api_key="sk-test", base_url=base_url)

    params = provider._params(ask(max_output_tokens=300))

    assert params["max_completion_tokens"] == 300 and "max_tokens" not in params


def test_options_and_tools_are_sent(server: OpenAIServer) -> None:
    provider = OpenAIProvider(api_key="sk-test", base_url=server.base_url, extra_headers={"x-team": "quire"})
    server.reply(completion_reply("ok"))

    provider.complete(ask(tools=[WEATHER], tool_choice="required", temperature=0.2))

    body = server.last.json()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["tool_choice"] == "required"
    assert body["temperature"] == 0.2
    assert server.last.headers["x-team"] == "quire"


def test_one_tool_call(server: OpenAIServer, provider: OpenAIProvider) -> None:
    call = function_call("call_1", "get_weather", '{"city": "Paris"}')
    server.reply(completion_reply(None, tool_calls=[call]))

    completion = provider.complete(ask("Weather in Paris?", tools=[WEATHER]))

    assert completion.finish_reason is FinishReason.tool_calls
    assert completion.message.content == ""
    assert completion.message.tool_calls == [
        ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})
    ]


def test_parallel_tool_calls_and_their_results(server: OpenAIServer, provider: OpenAIProvider) -> None:
    calls = [
        function_call("call_a", "get_weather", '{"city": "Paris"}'),
        function_call("call_b", "get_weather", '{"city": "Oslo"}'),
    ]
    server.reply(completion_reply("Checking both.", tool_calls=calls), completion_reply("Done."))
    first = provider.complete(ask("Paris and Oslo?", tools=[WEATHER]))
    paris, oslo = first.message.tool_calls
    assert (paris.id, oslo.id) == ("call_a", "call_b")
    assert oslo.arguments == {"city": "Oslo"}

    follow_up = [
        *ask("Paris and Oslo?", tools=[WEATHER]).messages,
        first.message,
        Message.tool_result(paris, "18C"),
        Message.tool_result(oslo, "unknown city", is_error=True),
    ]
    provider.complete(CompletionRequest(model="gpt-test", messages=follow_up, tools=[WEATHER]))

    sent = server.last.json()["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": "Checking both.",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
        ],
    }
    assert sent[3:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "unknown city"},
    ]


def test_streamed_text(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(stream_reply(text=["Hel", "lo, ", "world."], usage_=usage(12, 3)))
    deltas: list[Delta] = []

    completion = provider.complete(ask(stream=True), on_delta=deltas.append)

    assert [delta.text for delta in deltas] == ["Hel", "lo, ", "world."]
    assert completion.message.content == "Hello, world."
    assert completion.finish_reason is FinishReason.stop
    assert completion.usage == Usage(input_tokens=12, output_tokens=3)
    body = server.last.json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_streamed_tool_call_argument_fragments(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(
        stream_reply(
            tool_calls=[
                ("call_a", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']),
                ("call_b", "get_weather", ['{"city"', ': "Oslo"}']),
            ]
        )
    )
    deltas: list[Delta] = []

    completion = provider.complete(ask(stream=True, tools=[WEATHER]), on_delta=deltas.append)

    assert [(d.tool_call_id, d.tool_name, d.arguments_fragment) for d in deltas] == [
        ("call_a", "get_weather", '{"ci'),
        ("call_a", "get_weather", 'ty": "Pa'),
        ("call_a", "get_weather", 'ris"}'),
        ("call_b", "get_weather", '{"city"'),
        ("call_b", "get_weather", ': "Oslo"}'),
    ]
    assert completion.finish_reason is FinishReason.tool_calls
    assert completion.message.tool_calls == [
        ToolCall(id="call_a", name="get_weather", arguments={"city": "Paris"}),
        ToolCall(id="call_b", name="get_weather", arguments={"city": "Oslo"}),
    ]


def test_cached_and_reasoning_tokens(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(completion_reply("ok", usage_=usage(2000, 300, cached=1536, reasoning=256)))

    completion = provider.complete(ask())

    assert completion.usage == Usage(
        input_tokens=2000, output_tokens=300, cached_input_tokens=1536, reasoning_tokens=256
    )


def test_compatible_server_without_usage_or_ids(server: OpenAIServer, provider: OpenAIProvider) -> None:
    """Ollama-style answers: no usage, tool calls without ids and finish_reason "stop"."""
    body = chat_completion(None, tool_calls=[{"function": {"name": "get_weather", "arguments": "{}"}}])
    body["choices"][0]["finish_reason"] = "stop"
    del body["usage"]
    server.reply(json_reply(body), json_reply(body))

    completion = provider.complete(ask(tools=[WEATHER]))
    again = provider.complete(ask(tools=[WEATHER]))

    assert completion.finish_reason is FinishReason.tool_calls
    assert completion.usage == Usage()
    call = completion.message.tool_calls[0]
    assert call.id.startswith("call_") and call.arguments == {}
    assert again.message.tool_calls[0].id == call.id  # stable


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        (
            {
                "x-ratelimit-remaining-requests": "59",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "6m0s",
            },
            360.0,
        ),
        ({"x-ratelimit-reset-requests": "250ms"}, 0.25),
    ],
)
def test_rate_limited_with_retry_after(
    server: OpenAIServer, provider: OpenAIProvider, headers: dict[str, str], seconds: float
) -> None:
    server.reply(
        error_reply(429, "Rate limit reached", type="requests", code="rate_limit_exceeded", headers=headers)
    )

    with pytest.raises(RateLimited) as caught:
        provider.complete(ask())

    assert caught.value.retry_after == pytest.approx(seconds)
    assert caught.value.retryable and caught.value.status_code == 429
    assert len(server.received) == 1  # the SDK's own retries are off


def test_rate_limited_with_an_http_date(server: OpenAIServer, provider: OpenAIProvider) -> None:
    before = datetime.now(UTC)
    when = before + timedelta(seconds=30)
    server.reply(error_reply(429, "slow down", headers={"retry-after": format_datetime(when, usegmt=True)}))

    with pytest.raises(RateLimited) as caught:
        provider.complete(ask())
    after = datetime.now(UTC)

    # The HTTP date drops the fraction of a second (up to 1 s earlier than `when`), and the
    # provider reads its clock somewhere between `before` and `after`.
    retry_after = timedelta(seconds=caught.value.retry_after or 0)
    assert timedelta(seconds=29) - (after - before) < retry_after <= timedelta(seconds=30)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_unavailable(server: OpenAIServer, provider: OpenAIProvider, status: int) -> None:
    server.reply(error_reply(status, "The server had an error", type="server_error"))

    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(ask())

    assert caught.value.retryable and caught.value.status_code == status
    assert len(server.received) == 1


def test_a_503_with_retry_after_says_how_long_to_wait(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(error_reply(503, "Overloaded", type="server_error", headers={"retry-after": "20"}))

    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(ask())

    assert caught.value.retry_after == 20.0 and caught.value.status_code == 503


def test_a_500_does_not_wait_for_rate_limit_resets(server: OpenAIServer, provider: OpenAIProvider) -> None:
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
    server.reply(error_reply(500, "The server had an error", type="server_error", headers=headers))

    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(ask())

    assert caught.value.retry_after is None  # the reset times belong to rate limits, not outages


def test_arguments_that_are_not_a_json_object(server: OpenAIServer, provider: OpenAIProvider) -> None:
    calls = [
        function_call("call_1", "get_weather", '{"city": "Par'),
        function_call("call_2", "get_weather", '["Paris"]'),
    ]
    server.reply(completion_reply(None, tool_calls=calls), completion_reply("ok"))

    completion = provider.complete(ask(tools=[WEATHER]))

    broken, listed = completion.message.tool_calls
    assert broken.arguments == {} and broken.raw_arguments == '{"city": "Par'
    assert broken.parse_error is not None and "JSON" in broken.parse_error
    assert listed.arguments == {} and listed.raw_arguments == '["Paris"]'
    assert listed.parse_error is not None and "object" in listed.parse_error

    follow_up = [*ask().messages, completion.message, Message.tool_result(broken, "bad JSON")]
    provider.complete(CompletionRequest(model="gpt-test", messages=follow_up))
    sent_call = server.last.json()["messages"][2]["tool_calls"][0]
    assert sent_call["function"]["arguments"] == '{"city": "Par'  # what the model wrote


def test_content_filter_finish_reason(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(completion_reply("", finish_reason="content_filter"))

    with pytest.raises(ContentFiltered) as caught:
        provider.complete(ask())
    assert not caught.value.retryable


def test_refusal(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(completion_reply(None, refusal="I can't help with that."))

    with pytest.raises(ContentFiltered, match="can't help"):
        provider.complete(ask())


def test_streamed_content_filter(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(stream_reply(text=["Once"], finish_reason="content_filter"))

    with pytest.raises(ContentFiltered):
        provider.complete(ask(stream=True))


def test_prompt_blocked_by_azure_filter(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(
        error_reply(
            400,
            "The response was filtered due to the prompt triggering content management policy.",
            code="content_filter",
            param="prompt",
        )
    )

    with pytest.raises(ContentFiltered):
        provider.complete(ask())


def test_unauthorized(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(error_reply(401, "Incorrect API key provided: sk-test.", code="invalid_api_key"))

    with pytest.raises(AuthenticationFailed) as caught:
        provider.complete(ask())
    assert not caught.value.retryable and caught.value.code == "provider_authentication_failed"


def test_no_key_for_openai_itself() -> None:
    with pytest.raises(AuthenticationFailed, match="no API key"):
        OpenAIProvider(api_key=None).complete(ask())


@pytest.mark.parametrize(
    "reply",
    [
        error_reply(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130004 tokens. Please reduce the length of the messages.",
            code="context_length_exceeded",
            param="messages",
        ),
        # vLLM names no code
        error_reply(
            400,
            "This model's maximum context length is 4096 tokens. However, you requested "
            "5000 tokens (4000 in the messages, 1000 in the completion).",
            type="BadRequestError",
        ),
        # llama.cpp
        error_reply(
            400,
            "the request exceeds the available context size, try increasing it",
            type="exceed_context_size_error",
        ),
    ],
)
def test_context_too_long(server: OpenAIServer, provider: OpenAIProvider, reply: Reply) -> None:
    server.reply(reply)

    with pytest.raises(ContextTooLong) as caught:
        provider.complete(ask())
    assert not caught.value.retryable


def test_other_bad_requests(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(error_reply(404, "The model `gpt-nope` does not exist", code="model_not_found"))

    with pytest.raises(InvalidProviderRequest):
        provider.complete(ask())


def test_no_choices_is_malformed(server: OpenAIServer, provider: OpenAIProvider) -> None:
    body = chat_completion("x")
    body["choices"] = []
    server.reply(json_reply(body))

    with pytest.raises(MalformedResponse) as caught:
        provider.complete(ask())
    assert caught.value.retryable


def test_empty_answer_is_malformed(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(completion_reply(""))

    with pytest.raises(MalformedResponse):
        provider.complete(ask())


def test_truncated_answer_is_a_completion(server: OpenAIServer, provider: OpenAIProvider) -> None:
    server.reply(completion_reply("Once upon a", finish_reason="length"))

    assert provider.complete(ask()).finish_reason is FinishReason.length


def test_error_in_the_middle_of_a_stream(server: OpenAIServer, provider: OpenAIProvider) -> None:
    error = {"error": {"message": "The server is overloaded", "type": "server_error", "code": None}}
    server.reply(sse_reply([data_event(chunk({"content": "Hi"})), data_event(error)]))

    with pytest.raises(ProviderUnavailable, match="overloaded"):
        provider.complete(ask(stream=True))


@pytest.mark.parametrize("stream", [False, True])
def test_garbage_is_malformed(server: OpenAIServer, provider: OpenAIProvider, stream: bool) -> None:
    if stream:
        server.reply(sse_reply(["data: {not json\n\n"]))
    else:
        server.reply(Reply(headers={"content-type": "application/json"}, body=b"{not json"))

    with pytest.raises(MalformedResponse):
        provider.complete(ask(stream=stream))


def test_timeout_is_unavailable(server: OpenAIServer) -> None:
    provider = OpenAIProvider(api_key="sk-test", base_url=server.base_url, timeout=0.3)
    reply = completion_reply("late")
    reply.delay = 1.0
    server.reply(reply)

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask())
    assert len(server.received) == 1


def test_connection_refused_is_unavailable() -> None:
    with OpenAIServer() as gone:
        base_url = gone.base_url
    provider = OpenAIProvider(api_key="sk-test", base_url=base_url, timeout=2)

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask())


def test_request_body_is_json_serialisable_tool_arguments(
    server: OpenAIServer, provider: OpenAIProvider
) -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Zürich", "days": [1, 2]})
    messages = [Message.user("Weather?"), Message.assistant("", [call])]
    server.reply(completion_reply("ok"))

    provider.complete(CompletionRequest(model="gpt-test", messages=messages))

    sent = server.last.json()["messages"][1]
    assert sent["content"] is None
    assert json.loads(sent["tool_calls"][0]["function"]["arguments"]) == call.arguments
