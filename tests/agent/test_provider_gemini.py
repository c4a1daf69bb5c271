"""The Gemini adapter against a local server speaking the generateContent wire format."""

from __future__ import annotations

import base64
from collections.abc import Iterator

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
from quire.agent.providers.gemini import GeminiProvider
from tests.agent.fakes.gemini_server import (
    MODEL,
    GeminiServer,
    error_body,
    error_reply,
    function_call,
    quota_failure,
    response,
    response_reply,
    retry_info,
    stream_reply,
    text,
    text_chunks,
    usage,
)
from tests.agent.fakes.server import Reply, data_event, json_reply, sse_reply

# Real signatures are opaque standard base64; this one has no '+' or '/' (see the test below).
SIGNATURE = "CiQBH4dlSmFydGhvdWdodHNpZ25hdHVyZTEyMzQ1Njc4OTA="
TEXT_SIGNATURE = "Cj4BH4dlSnRleHRzaWduYXR1cmU="
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


@pytest.fixture
def server() -> Iterator[GeminiServer]:
    with GeminiServer() as fake:
        yield fake


@pytest.fixture
def provider(server: GeminiServer) -> GeminiProvider:
    return GeminiProvider(api_key="gm-test", base_url=server.url, timeout=5)


def ask(text: str = "Hello", **options: object) -> CompletionRequest:
    messages = [Message.system("Be brief."), Message.user(text)]
    return CompletionRequest.model_validate({"model": "gemini-test", "messages": messages, **options})


def test_plain_text(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(response_reply(text("Hi "), text("there.")))

    completion = provider.complete(ask(max_output_tokens=100, temperature=0.3))

    assert completion.message.content == "Hi there."
    assert completion.message.metadata == {}
    assert completion.finish_reason is FinishReason.stop
    assert completion.usage == Usage(input_tokens=10, output_tokens=5)
    assert (completion.provider, completion.model, completion.response_id) == (
        "gemini",
        MODEL,
        "resp-1",
    )
    sent = server.last
    assert sent.path == "/v1beta/models/gemini-test:generateContent"
    assert sent.headers["x-goog-api-key"] == "gm-test"
    body = sent.json()
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {"maxOutputTokens": 100, "temperature": 0.3}
    assert "tools" not in body


def test_tools_and_tool_choice(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(response_reply(text("ok")))

    provider.complete(ask(tools=[WEATHER], tool_choice="required"))

    body = server.last.json()
    [tool] = body["tools"]
    [declaration] = tool["functionDeclarations"]
    # Google's JSON parsers take a field's proto name as well as its camelCase one; the SDK
    # sends this one by its proto name so that the schema's own keys stay untouched.
    schema = declaration.pop("parametersJsonSchema", None) or declaration.pop("parameters_json_schema")
    assert schema == WEATHER.parameters
    assert declaration == {"name": "get_weather", "description": "Current weather in a city."}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_one_tool_call_with_an_id(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(response_reply(function_call("get_weather", {"city": "Paris"}, id="fc-1")))

    completion = provider.complete(ask(tools=[WEATHER]))

    assert completion.finish_reason is FinishReason.tool_calls
    assert completion.message.tool_calls == [
        ToolCall(id="fc-1", name="get_weather", arguments={"city": "Paris"})
    ]


def test_parallel_calls_without_ids_and_their_results(server: GeminiServer, provider: GeminiProvider) -> None:
    answer = response_reply(
        function_call("get_weather", {"city": "Paris"}, signature=SIGNATURE),
        function_call("get_weather", {"city": "Oslo"}),
        function_call("get_time", {"city": "Oslo"}),
    )
    server.reply(answer, response_reply(text("Done.")))
    first = provider.complete(ask(tools=[WEATHER]))
    paris, oslo, time = first.message.tool_calls
    assert len({paris.id, oslo.id, time.id}) == 3  # made up, distinct
    assert oslo.arguments == {"city": "Oslo"} and time.name == "get_time"

    # Results arrive out of order; they go back in the order of the calls, without the ids.
    follow_up = [
        *ask().messages,
        first.message,
        Message.tool_result(time, "09:00"),
        Message.tool_result(paris, "18C"),
        Message.tool_result(oslo, "unknown city", is_error=True),
        Message.user("Thanks."),
    ]
    provider.complete(CompletionRequest(model="gemini-test", messages=follow_up, tools=[WEATHER]))

    contents = server.last.json()["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": SIGNATURE,
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_time", "args": {"city": "Oslo"}}},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
            {"functionResponse": {"name": "get_weather", "response": {"error": "unknown city"}}},
            {"functionResponse": {"name": "get_time", "response": {"output": "09:00"}}},
            {"text": "Thanks."},
        ],
    }
    assert len(contents) == 3


def test_generated_ids_are_stable(server: GeminiServer, provider: GeminiProvider) -> None:
    answer = response(function_call("get_weather", {"city": "Paris"}))
    server.reply(json_reply(answer), json_reply(answer))

    first = provider.complete(ask(tools=[WEATHER])).message.tool_calls[0]
    again = provider.complete(ask(tools=[WEATHER])).message.tool_calls[0]

    assert first.id == again.id
    assert first.metadata == {"gemini": {"id_generated": True}}


def test_call_ids_gemini_gave_go_back(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(
        response_reply(function_call("get_weather", {"city": "Paris"}, id="fc-9")),
        response_reply(text("18C.")),
    )
    first = provider.complete(ask(tools=[WEATHER]))
    call = first.message.tool_calls[0]

    follow_up = [*ask().messages, first.message, Message.tool_result(call, "18C")]
    provider.complete(CompletionRequest(model="gemini-test", messages=follow_up))

    contents = server.last.json()["contents"]
    assert contents[1]["parts"][0]["functionCall"]["id"] == "fc-9"
    assert contents[2]["parts"][0]["functionResponse"]["id"] == "fc-9"


def test_thought_signatures_go_back_exactly(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(
        response_reply(
            text("Let me check.", signature=TEXT_SIGNATURE),
            function_call("get_weather", {"city": "Paris"}, signature=SIGNATURE),
        ),
        response_reply(text("18C in Paris.")),
    )
    first = provider.complete(ask(tools=[WEATHER]))
    assert first.message.metadata == {"gemini": {"thought_signature": TEXT_SIGNATURE}}
    call = first.message.tool_calls[0]
    assert call.metadata["gemini"]["thought_signature"] == SIGNATURE

    follow_up = [*ask().messages, first.message, Message.tool_result(call, "18C")]
    provider.complete(CompletionRequest(model="gemini-test", messages=follow_up, tools=[WEATHER]))

    model_turn = server.last.json()["contents"][1]
    assert model_turn["parts"][0] == {"text": "Let me check.", "thoughtSignature": TEXT_SIGNATURE}
    assert model_turn["parts"][1]["thoughtSignature"] == SIGNATURE


def test_signature_bytes_survive_the_sdk_alphabet(server: GeminiServer, provider: GeminiProvider) -> None:
    """The SDK decodes signatures to bytes and re-encodes them URL-safe: the bytes Gemini gets
    back are the ones it sent, though '+' and '/' travel as '-' and '_'."""
    signature = "Cj4B+/9xYzab+/8="
    server.reply(
        response_reply(function_call("get_weather", {"city": "Paris"}, signature=signature)),
        response_reply(text("ok")),
    )
    first = provider.complete(ask(tools=[WEATHER]))
    call = first.message.tool_calls[0]
    assert call.metadata["gemini"]["thought_signature"] == signature

    follow_up = [*ask().messages, first.message, Message.tool_result(call, "18C")]
    provider.complete(CompletionRequest(model="gemini-test", messages=follow_up))

    sent = server.last.json()["contents"][1]["parts"][0]["thoughtSignature"]
    assert base64.urlsafe_b64decode(sent) == base64.b64decode(signature)


def test_thought_parts_are_not_the_answer(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(response_reply(text("Thinking about it...", thought=True), text("42.")))

    assert provider.complete(ask()).message.content == "42."


def test_streamed_text(server: GeminiServer, provider: GeminiProvider) -> None:
    chunks = text_chunks(["Hel", "lo, ", "world."], usage_=usage(12, 3))
    chunks.append(response(text("", signature=TEXT_SIGNATURE), usage_=usage(12, 3)))
    server.reply(stream_reply(*chunks))
    deltas: list[Delta] = []

    completion = provider.complete(ask(stream=True), on_delta=deltas.append)

    assert [delta.text for delta in deltas] == ["Hel", "lo, ", "world."]
    assert completion.message.content == "Hello, world."
    assert completion.message.metadata == {"gemini": {"thought_signature": TEXT_SIGNATURE}}
    assert completion.usage == Usage(input_tokens=12, output_tokens=3)
    assert server.last.path == "/v1beta/models/gemini-test:streamGenerateContent"
    assert server.last.query == {"alt": ["sse"]}


def test_streamed_tool_calls(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(
        stream_reply(
            response(text("Checking."), finish_reason=None),
            response(
                function_call("get_weather", {"city": "Paris"}, signature=SIGNATURE), finish_reason=None
            ),
            response(function_call("get_weather", {"city": "Oslo"})),
        )
    )
    deltas: list[Delta] = []

    completion = provider.complete(ask(stream=True, tools=[WEATHER]), on_delta=deltas.append)

    calls = completion.message.tool_calls
    assert [(d.text, d.tool_call_id, d.tool_name, d.arguments_fragment) for d in deltas] == [
        ("Checking.", None, None, ""),
        ("", calls[0].id, "get_weather", '{"city": "Paris"}'),
        ("", calls[1].id, "get_weather", '{"city": "Oslo"}'),
    ]
    assert completion.finish_reason is FinishReason.tool_calls
    assert [call.arguments for call in calls] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert calls[0].metadata["gemini"]["thought_signature"] == SIGNATURE


def test_cached_and_thinking_tokens(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(response_reply(text("ok"), usage_=usage(5000, 40, cached=4096, thoughts=300)))

    completion = provider.complete(ask())

    assert completion.usage == Usage(
        input_tokens=5000, output_tokens=340, cached_input_tokens=4096, reasoning_tokens=300
    )


@pytest.mark.parametrize(("delay", "seconds"), [("3s", 3.0), ("3.5s", 3.5), ("0.250s", 0.25)])
def test_rate_limited_with_retry_info(
    server: GeminiServer, provider: GeminiProvider, delay: str, seconds: float
) -> None:
    server.reply(
        error_reply(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            details=[quota_failure(), retry_info(delay)],
        )
    )

    with pytest.raises(RateLimited) as caught:
        provider.complete(ask())

    assert caught.value.retry_after == pytest.approx(seconds)
    assert len(server.received) == 1


def test_rate_limited_with_a_retry_after_header(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(error_reply(429, "RESOURCE_EXHAUSTED", "Quota exceeded", headers={"retry-after": "9"}))

    with pytest.raises(RateLimited) as caught:
        provider.complete(ask())
    assert caught.value.retry_after == 9.0


@pytest.mark.parametrize(
    ("code", "status"), [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")]
)
def test_server_errors_are_unavailable(
    server: GeminiServer, provider: GeminiProvider, code: int, status: str
) -> None:
    server.reply(error_reply(code, status, "The model is overloaded. Please try again later."))

    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(ask())

    assert caught.value.status_code == code
    assert len(server.received) == 1


def test_a_503_with_retry_after_says_how_long_to_wait(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(error_reply(503, "UNAVAILABLE", "The model is overloaded.", headers={"retry-after": "20"}))

    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(ask())

    assert caught.value.retry_after == 20.0


def test_streamed_server_error(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(error_reply(503, "UNAVAILABLE", "The model is overloaded."))

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask(stream=True))
    assert len(server.received) == 1


def test_error_in_the_middle_of_a_stream(server: GeminiServer, provider: GeminiProvider) -> None:
    events = [data_event(response(text("Hel"), finish_reason=None))]
    events.append(data_event(error_body(503, "UNAVAILABLE", "The model is overloaded.")))
    server.reply(sse_reply(events))

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask(stream=True))
    assert len(server.received) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_function_call(server: GeminiServer, provider: GeminiProvider, stream: bool) -> None:
    answer = {
        "candidates": [
            {
                "content": {},
                "finishReason": "MALFORMED_FUNCTION_CALL",
                "finishMessage": "Malformed function call: print(default_api.get_weather(city=",
                "index": 0,
            }
        ],
        "usageMetadata": usage(10, 0),
        "modelVersion": MODEL,
        "responseId": "resp-2",
    }
    server.reply(stream_reply(answer) if stream else json_reply(answer))

    with pytest.raises(MalformedResponse, match="MALFORMED_FUNCTION_CALL") as caught:
        provider.complete(ask(stream=stream, tools=[WEATHER]))
    assert caught.value.retryable


@pytest.mark.parametrize("stream", [False, True])
def test_garbage_is_malformed(server: GeminiServer, provider: GeminiProvider, stream: bool) -> None:
    if stream:
        server.reply(sse_reply(["data: {not json\n\n"]))
    else:
        server.reply(Reply(headers={"content-type": "application/json"}, body=b"{not json"))

    with pytest.raises(MalformedResponse):
        provider.complete(ask(stream=stream))


def test_no_candidates_is_malformed(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(json_reply({"usageMetadata": usage(10, 0), "modelVersion": MODEL}))

    with pytest.raises(MalformedResponse):
        provider.complete(ask())


def test_candidate_without_content_is_malformed(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(json_reply({"candidates": [{"finishReason": "STOP", "index": 0}]}))

    with pytest.raises(MalformedResponse):
        provider.complete(ask())


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "RECITATION"])
def test_blocked_answer(server: GeminiServer, provider: GeminiProvider, reason: str) -> None:
    server.reply(response_reply(finish_reason=reason))

    with pytest.raises(ContentFiltered, match=reason):
        provider.complete(ask())


@pytest.mark.parametrize("stream", [False, True])
def test_blocked_prompt(server: GeminiServer, provider: GeminiProvider, stream: bool) -> None:
    blocked = {
        "promptFeedback": {
            "blockReason": "PROHIBITED_CONTENT",
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}],
        },
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": MODEL,
    }
    server.reply(stream_reply(blocked) if stream else json_reply(blocked))

    with pytest.raises(ContentFiltered, match="PROHIBITED_CONTENT"):
        provider.complete(ask(stream=stream))


def test_bad_api_key(server: GeminiServer, provider: GeminiProvider) -> None:
    detail = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
    }
    server.reply(
        error_reply(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=[detail]
        )
    )

    with pytest.raises(AuthenticationFailed):
        provider.complete(ask())


@pytest.mark.parametrize(("code", "status"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
def test_unauthorized(server: GeminiServer, provider: GeminiProvider, code: int, status: str) -> None:
    server.reply(error_reply(code, status, "The caller does not have permission"))

    with pytest.raises(AuthenticationFailed):
        provider.complete(ask())


def test_no_key_for_gemini_itself() -> None:
    with pytest.raises(AuthenticationFailed, match="no API key"):
        GeminiProvider(api_key=None).complete(ask())


def test_context_too_long(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(
        error_reply(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1204817) exceeds the maximum number of tokens allowed (1048576).",
        )
    )

    with pytest.raises(ContextTooLong):
        provider.complete(ask())


def test_unknown_model(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(error_reply(404, "NOT_FOUND", "models/gemini-nope is not found for API version v1beta"))

    with pytest.raises(InvalidProviderRequest):
        provider.complete(ask())


def test_truncated_answer_is_a_completion(server: GeminiServer, provider: GeminiProvider) -> None:
    server.reply(response_reply(text("Once upon a"), finish_reason="MAX_TOKENS"))

    assert provider.complete(ask()).finish_reason is FinishReason.length


def test_timeout_is_unavailable(server: GeminiServer) -> None:
    provider = GeminiProvider(api_key="gm-test", base_url=server.url, timeout=0.3)
    reply = response_reply(text("late"))
    reply.delay = 1.0
    server.reply(reply)

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask())
    assert len(server.received) == 1


def test_extra_headers_are_sent(server: GeminiServer) -> None:
    provider = GeminiProvider(
        api_key="gm-test", base_url=server.url, extra_headers={"x-goog-user-project": "quire"}
    )
    server.reply(response_reply(text("ok")))

    provider.complete(ask())

    assert server.last.headers["x-goog-user-project"] == "quire"
    assert server.last.headers["x-goog-api-key"] == "gm-test"


def test_connection_refused_is_unavailable() -> None:
    with GeminiServer() as gone:
        base_url = gone.url
    provider = GeminiProvider(api_key="gm-test", base_url=base_url, timeout=2)

    with pytest.raises(ProviderUnavailable):
        provider.complete(ask())
