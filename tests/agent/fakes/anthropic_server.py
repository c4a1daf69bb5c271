"""A fake Anthropic Messages endpoint and builders for its wire format."""

from __future__ import annotations

import json
from typing import Any

from tests.agent.fakes.server import FakeServer, Reply, json_reply, sse_reply

MODEL = "claude-test-4-5"


class AnthropicServer(FakeServer):
    route = r"/v1/messages"


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(id: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def thinking(value: str, signature: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": signature}


def redacted_thinking(data: str) -> dict[str, Any]:
    return {"type": "redacted_thinking", "data": data}


def usage(input: int = 10, output: int = 5, *, cache_read: int = 0, cache_write: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input,
        "output_tokens": output,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
        "service_tier": "standard",
    }


def message(
    *content: dict[str, Any],
    stop_reason: str | None = None,
    usage_: dict[str, Any] | None = None,
    id: str = "msg_01",
) -> dict[str, Any]:
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": list(content),
        "stop_reason": stop_reason or ("tool_use" if has_tool_use else "end_turn"),
        "stop_sequence": None,
        "usage": usage_ or usage(),
    }


def message_reply(*content: dict[str, Any], **kwargs: Any) -> Reply:
    return json_reply(message(*content, **kwargs))


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


def _pieces(value: str, size: int) -> list[str]:
    return [value[start : start + size] for start in range(0, len(value), size)] or [""]


def stream_events(answer: dict[str, Any], *, piece: int = 4) -> list[str]:
    """The event stream Anthropic sends for `answer`: message_start (empty content, input
    usage), a ping, for each block content_block_start / deltas of `piece` characters
    (text_delta, input_json_delta, thinking_delta then signature_delta) / content_block_stop,
    then message_delta with the stop reason and output tokens, and message_stop."""
    start = {**answer, "content": [], "stop_reason": None}
    start["usage"] = {**answer["usage"], "output_tokens": 1}
    events = [event("message_start", {"message": start}), event("ping", {})]
    for index, block in enumerate(answer["content"]):
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            opening = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _pieces(block["text"], piece)]
        elif kind == "tool_use":
            opening = {**block, "input": {}}
            arguments = json.dumps(block["input"]) if isinstance(block["input"], dict) else block["input"]
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [
                {"type": "input_json_delta", "partial_json": part} for part in _pieces(arguments, piece)
            ]
        elif kind == "thinking":
            opening = {**block, "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": part} for part in _pieces(block["thinking"], piece)
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            opening = block
        events.append(event("content_block_start", {"index": index, "content_block": opening}))
        events += [event("content_block_delta", {"index": index, "delta": d}) for d in deltas]
        events.append(event("content_block_stop", {"index": index}))
    events.append(
        event(
            "message_delta",
            {
                "delta": {"stop_reason": answer["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": answer["usage"]["output_tokens"]},
            },
        )
    )
    events.append(event("message_stop", {}))
    return events


def stream_reply(*content: dict[str, Any], piece: int = 4, **kwargs: Any) -> Reply:
    return sse_reply(stream_events(message(*content, **kwargs), piece=piece))


def error_body(type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type, "message": message}, "request_id": "req_01"}


def error_reply(status: int, type: str, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(error_body(type, message), status=status, headers=headers)
