"""OpenAI Chat Completions, and every server that speaks it (Ollama, vLLM, llama.cpp, LM Studio,
OpenRouter), through the official `openai` SDK with its retries off."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

from quire.agent.messages import (
    Completion,
    CompletionRequest,
    Delta,
    FinishReason,
    Message,
    Role,
    ToolCall,
    Usage,
)
from quire.agent.providers.base import DeltaCallback, Provider, synthetic_call_id, tool_call
from quire.agent.providers.errors import (
    ContentFiltered,
    ContextTooLong,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    error_for_status,
)
from quire.agent.providers.retry_after import retry_after_seconds

_FINISH = {
    "stop": FinishReason.stop,
    "tool_calls": FinishReason.tool_calls,
    "function_call": FinishReason.tool_calls,
    "length": FinishReason.length,
}
_FILTERED_CODES = {"content_filter", "content_policy_violation", "invalid_prompt"}


class OpenAIProvider(Provider):
    name = "openai"
    default_base_url = "https://api.openai.com/v1"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 120.0,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, extra_headers=extra_headers)
        # Local OpenAI-compatible servers take no key, but the SDK insists on one (and would
        # otherwise read OPENAI_API_KEY from the environment).
        self.client = openai.OpenAI(
            api_key=api_key or "unused",
            base_url=self.base_url,
            timeout=timeout,
            max_retries=0,
            default_headers=self.extra_headers or None,
        )

    def warm_up(self) -> None:
        _ = self.client.chat.completions  # the SDK imports a resource's modules on first use

    def complete(self, request: CompletionRequest, *, on_delta: DeltaCallback | None = None) -> Completion:
        self.check_api_key()
        params = self._params(request)
        with self._errors():
            if request.stream:
                stream = self.client.chat.completions.create(**params, stream=True)
                with stream:
                    return self._assemble(stream, on_delta)
            response = self.client.chat.completions.create(**params)
            return self._completion(response)

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(message) for message in request.messages],
        }
        # OpenAI's reasoning models refuse `max_tokens`; many compatible servers only know it.
        limit = "max_completion_tokens" if _is_openai(self.base_url) else "max_tokens"
        params[limit] = request.max_output_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in request.tools
            ]
            params["tool_choice"] = request.tool_choice
        if request.stream:
            params["stream_options"] = {"include_usage": True}
        return params

    def _completion(self, response: ChatCompletion) -> Completion:
        if not response.choices:
            raise MalformedResponse("the response has no choices", provider=self.name)
        choice = response.choices[0]
        message = choice.message
        if message.refusal:
            raise ContentFiltered(f"the model refused: {message.refusal}", provider=self.name)
        calls = []
        for index, call in enumerate(message.tool_calls or []):
            function = getattr(call, "function", None)
            if function is None:
                raise MalformedResponse(f"unsupported tool call type {call.type!r}", provider=self.name)
            call_id = call.id or synthetic_call_id(
                "call_", response.id, index, function.name, function.arguments
            )
            calls.append(tool_call(id=call_id, name=function.name, arguments=function.arguments))
        return self._finish(
            text=message.content or "",
            calls=calls,
            finish_reason=choice.finish_reason,
            usage=response.usage,
            model=response.model,
            response_id=response.id,
        )

    def _assemble(self, chunks: Iterable[ChatCompletionChunk], on_delta: DeltaCallback | None) -> Completion:
        stream = _Stream(on_delta)
        for chunk in chunks:
            stream.add(chunk)
        if not stream.seen:
            raise MalformedResponse("the stream ended without a chunk", provider=self.name)
        if stream.refusal:
            raise ContentFiltered(f"the model refused: {stream.refusal}", provider=self.name)
        calls = [
            tool_call(
                id=call.id
                or synthetic_call_id("call_", stream.response_id, index, call.name, call.arguments),
                name=call.name,
                arguments="".join(call.arguments),
            )
            for index, call in sorted(stream.calls.items())
        ]
        return self._finish(
            text="".join(stream.text),
            calls=calls,
            finish_reason=stream.finish_reason,
            usage=stream.usage,
            model=stream.model,
            response_id=stream.response_id,
        )

    def _finish(
        self,
        *,
        text: str,
        calls: list[ToolCall],
        finish_reason: str | None,
        usage: CompletionUsage | None,
        model: str,
        response_id: str | None,
    ) -> Completion:
        if finish_reason == "content_filter":
            raise ContentFiltered("the provider's content filter stopped the answer", provider=self.name)
        finish = _FINISH.get(finish_reason or "stop")
        if finish is None:
            raise MalformedResponse(f"unknown finish_reason {finish_reason!r}", provider=self.name)
        if calls and finish is FinishReason.stop:
            finish = FinishReason.tool_calls  # some compatible servers say "stop" for tool calls
        if not text and not calls and finish is not FinishReason.length:
            raise MalformedResponse("the answer has neither text nor tool calls", provider=self.name)
        return Completion(
            message=Message.assistant(text, calls),
            usage=_usage(usage),
            finish_reason=finish,
            model=model,
            provider=self.name,
            response_id=response_id,
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ProviderError:
            raise
        except openai.APIStatusError as error:
            raise _status_error(error, self.name) from error
        except openai.APIConnectionError as error:  # includes timeouts
            raise ProviderUnavailable(str(error), provider=self.name) from error
        except openai.APIError as error:  # an error event in the middle of a stream
            raise _body_error(error, self.name) from error
        except (openai.OpenAIError, json.JSONDecodeError) as error:
            raise MalformedResponse(f"unreadable response: {error}", provider=self.name) from error


@dataclass
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Stream:
    on_delta: DeltaCallback | None
    seen: bool = False
    text: list[str] = field(default_factory=list)
    refusal: str = ""
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: CompletionUsage | None = None
    model: str = ""
    response_id: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.seen = True
        self.model = chunk.model or self.model
        self.response_id = chunk.id or self.response_id
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            if delta.refusal:
                self.refusal += delta.refusal
            if delta.content:
                self.text.append(delta.content)
                self._emit(Delta(text=delta.content))
            for piece in delta.tool_calls or []:
                index = piece.index if piece.index is not None else len(self.calls)
                call = self.calls.setdefault(index, _PartialCall())
                call.id = call.id or piece.id
                function = piece.function
                if function is None:
                    continue
                call.name = call.name or function.name or ""
                if function.arguments:
                    call.arguments.append(function.arguments)
                    self._emit(
                        Delta(
                            tool_call_id=call.id,
                            tool_name=call.name,
                            arguments_fragment=function.arguments,
                        )
                    )

    def _emit(self, delta: Delta) -> None:
        if self.on_delta is not None:
            self.on_delta(delta)


def _is_openai(base_url: str) -> bool:
    """Whether the endpoint is OpenAI's own or Azure OpenAI, rather than a compatible server."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith(".openai.azure.com")


def _message(message: Message) -> dict[str, Any]:
    if message.role is Role.tool:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role is Role.assistant and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _arguments_text(call)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role.value, "content": message.content}


def _arguments_text(call: ToolCall) -> str:
    if call.parse_error is not None and call.raw_arguments is not None:
        return call.raw_arguments  # what the model wrote, so it can see its mistake
    return json.dumps(call.arguments)


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


def _status_error(error: openai.APIStatusError, provider: str) -> ProviderError:
    code, message = _code_and_message(error)
    status = error.status_code
    if code in _FILTERED_CODES:
        return ContentFiltered(message, provider=provider, status_code=status)
    if code == "context_length_exceeded":
        return ContextTooLong(message, provider=provider, status_code=status)
    retry_after = retry_after_seconds(error.response.headers, error.body, resets=status == 429)
    return error_for_status(status, message, provider=provider, retry_after=retry_after)


def _body_error(error: openai.APIError, provider: str) -> ProviderError:
    code, message = _code_and_message(error)
    if code in _FILTERED_CODES:
        return ContentFiltered(message, provider=provider)
    if code in ("rate_limit_exceeded", "rate_limit_error"):
        return RateLimited(message, provider=provider)
    if code == "context_length_exceeded":
        return ContextTooLong(message, provider=provider)
    return ProviderUnavailable(message, provider=provider)


def _code_and_message(error: openai.APIError) -> tuple[str | None, str]:
    body = error.body if isinstance(error.body, Mapping) else {}
    code = body.get("code") or body.get("type")
    message = body.get("message")
    return (str(code) if code else None), (message if isinstance(message, str) else error.message)
