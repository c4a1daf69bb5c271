"""Anthropic's Messages API through the official `anthropic` SDK, with its retries off.

Thinking and redacted-thinking blocks travel in the assistant message's
`metadata["anthropic"]["thinking"]`, exactly as received, and go back first in that message's
content on the next turn, as the API requires when tools are in use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anthropic
from anthropic.types import RawMessageStreamEvent

from quire.agent.messages import (
    Completion,
    CompletionRequest,
    Delta,
    FinishReason,
    Message,
    Role,
    Usage,
)
from quire.agent.providers.base import DeltaCallback, Provider, tool_call
from quire.agent.providers.errors import (
    ContentFiltered,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    error_for_status,
)
from quire.agent.providers.retry_after import retry_after_seconds

_FINISH = {
    "end_turn": FinishReason.stop,
    "stop_sequence": FinishReason.stop,
    "tool_use": FinishReason.tool_calls,
    "max_tokens": FinishReason.length,
    "model_context_window_exceeded": FinishReason.length,
}
_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
# The status each error type comes with, for errors sent as an event inside a 200 stream.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_THINKING = ("thinking", "redacted_thinking")
_CACHE = {"type": "ephemeral"}


class AnthropicProvider(Provider):
    name = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 120.0,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, extra_headers=extra_headers)
        # An explicit key (a placeholder for a gateway that authenticates by header) keeps the
        # SDK from reading credentials from the environment or its profile files.
        self.client = anthropic.Anthropic(
            api_key=api_key or "unused",
            base_url=self.base_url,
            timeout=timeout,
            max_retries=0,
            default_headers=self.extra_headers or None,
        )

    def warm_up(self) -> None:
        _ = self.client.messages  # the SDK imports a resource's modules on first use

    def complete(self, request: CompletionRequest, *, on_delta: DeltaCallback | None = None) -> Completion:
        self.check_api_key()
        params = _params(request)
        with self._errors():
            if request.stream:
                with self.client.messages.create(**params, stream=True) as events:
                    answer = _assemble(events, on_delta)
            else:
                answer = self.client.messages.create(**params).to_dict()
        return self._completion(answer)

    def _completion(self, answer: Mapping[str, Any]) -> Completion:
        stop_reason = answer.get("stop_reason")
        if stop_reason == "refusal":
            raise ContentFiltered("the model refused to answer", provider=self.name)
        text: list[str] = []
        calls = []
        thinking = []
        for block in answer.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text", ""))
            elif kind == "tool_use":
                calls.append(tool_call(id=block["id"], name=block["name"], arguments=block["input"]))
            elif kind in _THINKING:
                thinking.append(dict(block))
        finish = _FINISH.get(stop_reason or ("tool_use" if calls else "end_turn"))
        if finish is None:
            raise MalformedResponse(f"unexpected stop_reason {stop_reason!r}", provider=self.name)
        if not "".join(text) and not calls and finish is not FinishReason.length:
            raise MalformedResponse("the answer has neither text nor tool calls", provider=self.name)
        message = Message.assistant("".join(text), calls)
        if thinking:
            message.metadata = {"anthropic": {"thinking": thinking}}
        return Completion(
            message=message,
            usage=_usage(answer.get("usage") or {}),
            finish_reason=finish,
            model=answer.get("model") or "",
            provider=self.name,
            response_id=answer.get("id"),
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ProviderError:
            raise
        except anthropic.APIStatusError as error:
            raise _status_error(error, self.name) from error
        except anthropic.APIConnectionError as error:  # includes timeouts
            raise ProviderUnavailable(str(error), provider=self.name) from error
        except (anthropic.AnthropicError, json.JSONDecodeError) as error:
            raise MalformedResponse(f"unreadable response: {error}", provider=self.name) from error


def _params(request: CompletionRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_output_tokens,
        "messages": _messages(request.messages),
    }
    system: list[dict[str, Any]] = [
        {"type": "text", "text": message.content}
        for message in request.messages
        if message.role is Role.system and message.content
    ]
    if system:
        system[-1]["cache_control"] = _CACHE
        params["system"] = system
    # No temperature: the Messages API of this SDK generation has no sampling parameters.
    if request.tools:
        params["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
            for tool in request.tools
        ]
        params["tool_choice"] = _TOOL_CHOICE[request.tool_choice]
    return params


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Our messages as Anthropic turns: tool results become `tool_result` blocks of a user turn,
    and consecutive turns of one role merge, tool results first."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.system:
            continue
        role = "assistant" if message.role is Role.assistant else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    if turns and turns[-1]["content"][-1]["type"] not in _THINKING:
        # A breakpoint on the newest block caches the whole conversation for the next turn.
        turns[-1]["content"][-1] = {**turns[-1]["content"][-1], "cache_control": _CACHE}
    return turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role is Role.tool:
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.content,
        }
        if message.is_error:
            result["is_error"] = True
        return [result]
    blocks: list[dict[str, Any]] = []
    if message.role is Role.assistant:
        blocks += [dict(block) for block in message.metadata.get("anthropic", {}).get("thinking", [])]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    ]
    return blocks


def _assemble(events: Iterable[RawMessageStreamEvent], on_delta: DeltaCallback | None) -> dict[str, Any]:
    """The message a stream of events spells out, in the shape of a non-streamed answer."""
    answer: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    json_parts: dict[int, list[str]] = {}
    for event in events:
        if event.type == "message_start":
            answer = event.message.to_dict()
        elif event.type == "content_block_start":
            blocks[event.index] = event.content_block.to_dict()
        elif event.type == "content_block_delta":
            block = blocks[event.index]
            delta = event.delta
            if delta.type == "text_delta":
                block["text"] = block.get("text", "") + delta.text
                if on_delta is not None:
                    on_delta(Delta(text=delta.text))
            elif delta.type == "input_json_delta":
                json_parts.setdefault(event.index, []).append(delta.partial_json)
                if on_delta is not None and delta.partial_json:
                    on_delta(
                        Delta(
                            tool_call_id=block["id"],
                            tool_name=block["name"],
                            arguments_fragment=delta.partial_json,
                        )
                    )
            elif delta.type == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.thinking
            elif delta.type == "signature_delta":
                block["signature"] = block.get("signature", "") + delta.signature
        elif event.type == "message_delta":
            answer["stop_reason"] = event.delta.stop_reason
            usage = answer.setdefault("usage", {})
            usage.update({key: value for key, value in event.usage.to_dict().items() if value is not None})
    if not answer:
        raise MalformedResponse("the stream ended without a message_start", provider="anthropic")
    for index, parts in json_parts.items():
        blocks[index]["input"] = "".join(parts)  # tool_call() parses it, or says what is wrong
    answer["content"] = [blocks[index] for index in sorted(blocks)]
    return answer


def _usage(usage: Mapping[str, Any]) -> Usage:
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    details = usage.get("output_tokens_details") or {}
    return Usage(
        # Anthropic's input_tokens leaves out the tokens read from and written to the cache.
        input_tokens=(usage.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=usage.get("output_tokens") or 0,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=details.get("thinking_tokens") or 0,
    )


def _status_error(error: anthropic.APIStatusError, provider: str) -> ProviderError:
    body: Mapping[str, Any] = error.body if isinstance(error.body, Mapping) else {}
    detail = body.get("error")
    if not isinstance(detail, Mapping):
        detail = {}
    message = detail.get("message")
    if not isinstance(message, str):
        message = error.message
    status = error.status_code
    if status < 400:  # an error event inside a stream that began well
        status = _ERROR_STATUS.get(str(detail.get("type")), 500)
    retry_after = retry_after_seconds(error.response.headers, body, resets=status == 429)
    return error_for_status(status, message, provider=provider, retry_after=retry_after)
