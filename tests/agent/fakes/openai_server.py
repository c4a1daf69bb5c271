"""A fake OpenAI Chat Completions endpoint and builders for its wire format."""

from __future__ import annotations

import json
from typing import Any

from tests.agent.fakes.server import FakeServer, Reply, data_event, json_reply, sse_reply

MODEL = "gpt-test-2025-01-01"


class OpenAIServer(FakeServer):
    route = r"/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def function_call(id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def usage(prompt: int = 10, completion: int = 5, *, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    refusal: str | None = None,
    usage_: dict[str, Any] | None = None,
    id: str = "chatcmpl-123",
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": refusal,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": usage_ or usage(),
        "service_tier": "default",
        "system_fingerprint": "fp_test",
    }


def completion_reply(*args: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
    return json_reply(chat_completion(*args, **kwargs), headers=headers)


def chunk(
    delta: dict[str, Any], *, finish_reason: str | None = None, id: str = "chatcmpl-123"
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }


def stream_reply(
    *,
    text: list[str] | None = None,
    tool_calls: list[tuple[str, str, list[str]]] | None = None,
    finish_reason: str | None = None,
    usage_: dict[str, Any] | None = None,
    id: str = "chatcmpl-123",
) -> Reply:
    """A streamed answer as OpenAI sends it with stream_options.include_usage: a role chunk,
    content pieces, tool calls (id and name first, then argument pieces), a finish chunk, a
    usage chunk with no choices, and `[DONE]`. tool_calls holds (id, name, argument pieces)."""
    chunks = [chunk({"role": "assistant", "content": "", "refusal": None}, id=id)]
    chunks += [chunk({"content": piece}, id=id) for piece in text or []]
    for index, (call_id, name, pieces) in enumerate(tool_calls or []):
        head = {"index": index, "id": call_id, "type": "function"}
        head["function"] = {"name": name, "arguments": ""}
        chunks.append(chunk({"tool_calls": [head]}, id=id))
        for piece in pieces:
            body = {"index": index, "function": {"arguments": piece}}
            chunks.append(chunk({"tool_calls": [body]}, id=id))
    finish = finish_reason or ("tool_calls" if tool_calls else "stop")
    chunks.append(chunk({}, finish_reason=finish, id=id))
    final = chunk({}, id=id)
    final["choices"] = []
    final["usage"] = usage_ or usage()
    chunks.append(final)
    return sse_reply([*map(data_event, chunks), "data: [DONE]\n\n"])


def error_reply(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return json_reply(body, status=status, headers=headers)


def sent_messages(body: bytes) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads(body)["messages"]
    return messages
