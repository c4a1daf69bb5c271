"""A fake Gemini API (generateContent and streamGenerateContent) and builders for its wire format."""

from __future__ import annotations

import json
from typing import Any

from tests.agent.fakes.server import FakeServer, Reply, data_event, json_reply, sse_reply

MODEL = "gemini-test-2.5"


class GeminiServer(FakeServer):
    route = r"/v1(beta)?/models/[^/:]+:(generateContent|streamGenerateContent)"


def text(value: str, *, signature: str | None = None, thought: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = {"text": value}
    if thought:
        part["thought"] = True
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def function_call(
    name: str, args: dict[str, Any], *, signature: str | None = None, id: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args}
    if id is not None:
        call["id"] = id
    part: dict[str, Any] = {"functionCall": call}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def usage(prompt: int = 10, candidates: int = 5, *, cached: int = 0, thoughts: int = 0) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached:
        metadata["cachedContentTokenCount"] = cached
        metadata["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts:
        metadata["thoughtsTokenCount"] = thoughts
    return metadata


def response(
    *parts: dict[str, Any],
    finish_reason: str | None = "STOP",
    usage_: dict[str, Any] | None = None,
    id: str = "resp-1",
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    return {
        "candidates": [candidate],
        "usageMetadata": usage_ or usage(),
        "modelVersion": MODEL,
        "responseId": id,
    }


def response_reply(*parts: dict[str, Any], **kwargs: Any) -> Reply:
    return json_reply(response(*parts, **kwargs))


def stream_reply(*chunks: dict[str, Any]) -> Reply:
    """Each chunk is a whole GenerateContentResponse, sent as one `data:` event."""
    return sse_reply([data_event(chunk) for chunk in chunks])


def text_chunks(pieces: list[str], *, usage_: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A streamed text answer: one chunk per piece, the finish reason and usage on the last."""
    chunks = [response(text(piece), finish_reason=None, usage_=usage(10, 0)) for piece in pieces]
    chunks[-1] = response(text(pieces[-1]), usage_=usage_ or usage())
    return chunks


def error_body(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_reply(
    code: int,
    status: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    return json_reply(error_body(code, status, message, details), status=code, headers=headers)


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure() -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
            }
        ],
    }


def sent_contents(body: bytes) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = json.loads(body)["contents"]
    return contents
