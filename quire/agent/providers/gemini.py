"""Google Gemini (generateContent / streamGenerateContent) through the official `google-genai`
SDK, with its retries, automatic function calling and automatic continuation off.

Thought signatures are kept as the base64 text Gemini sent: a function call's in its ToolCall's
`metadata["gemini"]["thought_signature"]`, a text part's in the message's. They go back on the
same kind of part next turn, as Gemini requires. Function calls without an id get a stable one
(`metadata["gemini"]["id_generated"]`), which is never sent to Gemini; results are matched to
calls by id and go back in the order of the calls.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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
    AuthenticationFailed,
    ContentFiltered,
    InvalidProviderRequest,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    error_for_status,
)
from quire.agent.providers.retry_after import retry_after_seconds

_FILTERED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "ESCALATION",
    "PUP_LIMITED_DISABLED",
    "MODEL_ARMOR",
}
_MALFORMED = {
    "MALFORMED_FUNCTION_CALL",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
    "MALFORMED_RESPONSE",
    "OTHER",
    "FINISH_REASON_UNSPECIFIED",
}
_FINISH = {
    "STOP": FinishReason.stop,
    "MAX_TOKENS": FinishReason.length,
    "CONTINUATION": FinishReason.length,
}
_MODE = {
    "auto": types.FunctionCallingConfigMode.AUTO,
    "required": types.FunctionCallingConfigMode.ANY,
    "none": types.FunctionCallingConfigMode.NONE,
}
_TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)


class GeminiProvider(Provider):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 120.0,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, extra_headers=extra_headers)
        options = types.HttpOptions(
            base_url=self.base_url,
            api_version="v1beta",
            timeout=int(timeout * 1000),
            headers=self.extra_headers or None,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        # vertexai=False and an explicit key keep the SDK from choosing by environment variables.
        self.client = genai.Client(api_key=api_key or "unused", vertexai=False, http_options=options)

    def warm_up(self) -> None:
        _ = self.client.models  # the SDK imports a resource's modules on first use

    def complete(self, request: CompletionRequest, *, on_delta: DeltaCallback | None = None) -> Completion:
        self.check_api_key()
        contents = _contents(request.messages)
        config = _config(request)
        with self._errors():
            if request.stream:
                chunks = self.client.models.generate_content_stream(
                    model=request.model, contents=contents, config=config
                )
                return self._assemble(chunks, on_delta)
            response = self.client.models.generate_content(
                model=request.model, contents=contents, config=config
            )
            return self._assemble([response], None)

    def _assemble(
        self, responses: Iterable[types.GenerateContentResponse], on_delta: DeltaCallback | None
    ) -> Completion:
        """One completion from a response, or from the chunks of a streamed one."""
        answer = _Answer()
        seen = False
        for response in responses:
            seen = True
            feedback = response.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                reason = feedback.block_reason.value
                raise ContentFiltered(f"the prompt was blocked: {reason}", provider=self.name)
            answer.usage = response.usage_metadata or answer.usage
            answer.model = response.model_version or answer.model
            answer.response_id = response.response_id or answer.response_id
            if not response.candidates:
                continue
            candidate = response.candidates[0]
            if candidate.finish_reason is not None:
                answer.finish = candidate.finish_reason.value
            parts = candidate.content.parts if candidate.content is not None else None
            for part in parts or []:
                answer.add(part, on_delta)
        if not seen:
            raise MalformedResponse("the stream ended without a response", provider=self.name)
        return self._completion(answer)

    def _completion(self, answer: _Answer) -> Completion:
        finish = answer.finish
        if finish in _FILTERED:
            raise ContentFiltered(f"the answer was blocked: {finish}", provider=self.name)
        if finish in _MALFORMED:
            raise MalformedResponse(f"the model's answer was unusable: {finish}", provider=self.name)
        if finish == "LANGUAGE":
            raise InvalidProviderRequest("the model does not support the language", provider=self.name)
        result = _FINISH.get(finish or "STOP")
        if result is None:
            raise MalformedResponse(f"unexpected finishReason {finish!r}", provider=self.name)
        text = "".join(answer.text)
        if answer.calls and result is FinishReason.stop:
            result = FinishReason.tool_calls
        if not text and not answer.calls and result is not FinishReason.length:
            raise MalformedResponse("the answer has neither text nor tool calls", provider=self.name)
        message = Message.assistant(text, answer.calls)
        if answer.text_signature is not None:
            message.metadata = {"gemini": {"thought_signature": answer.text_signature}}
        return Completion(
            message=message,
            usage=_usage(answer.usage),
            finish_reason=result,
            model=answer.model,
            provider=self.name,
            response_id=answer.response_id,
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ProviderError:
            raise
        except genai_errors.APIError as error:
            raise _api_error(error, self.name) from error
        except _TRANSPORT_ERRORS as error:  # timeouts, refused and dropped connections
            raise ProviderUnavailable(f"{type(error).__name__}: {error}", provider=self.name) from error
        except (
            genai_errors.UnknownApiResponseError,
            pydantic.ValidationError,
            json.JSONDecodeError,
        ) as error:
            raise MalformedResponse(f"unreadable response: {error}", provider=self.name) from error


@dataclass
class _Answer:
    text: list[str] = field(default_factory=list)
    text_signature: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    finish: str | None = None
    usage: types.GenerateContentResponseUsageMetadata | None = None
    model: str = ""
    response_id: str | None = None

    def add(self, part: types.Part, on_delta: DeltaCallback | None) -> None:
        if part.thought:
            return  # a thought summary, not part of the answer
        if part.function_call is not None:
            call = _tool_call(part, self.response_id, len(self.calls))
            self.calls.append(call)
            if on_delta is not None:
                # Gemini sends each call whole: its arguments are one fragment.
                fragment = json.dumps(call.arguments)
                on_delta(Delta(tool_call_id=call.id, tool_name=call.name, arguments_fragment=fragment))
        elif part.text is not None:
            self.text.append(part.text)
            self.text_signature = _signature(part) or self.text_signature
            if on_delta is not None and part.text:
                on_delta(Delta(text=part.text))


def _config(request: CompletionRequest) -> types.GenerateContentConfig:
    system = [message.content for message in request.messages if message.role is Role.system]
    config = types.GenerateContentConfig(
        max_output_tokens=request.max_output_tokens,
        temperature=request.temperature,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
    )
    if system:
        config.system_instruction = types.Content(parts=[types.Part(text=text) for text in system])
    if request.tools:
        declarations = [
            types.FunctionDeclaration(
                name=tool.name,
                description=tool.description,
                parameters_json_schema=tool.parameters,
            )
            for tool in request.tools
        ]
        config.tools = [types.Tool(function_declarations=declarations)]
        config.tool_config = types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode=_MODE[request.tool_choice])
        )
    return config


def _contents(messages: list[Message]) -> list[types.Content]:
    """Our messages as Gemini turns: tool results of consecutive tool messages become one user
    turn of functionResponse parts in the order of the calls, and consecutive turns of one role
    merge."""
    calls = {call.id: call for m in messages if m.role is Role.assistant for call in m.tool_calls}
    order = {call_id: index for index, call_id in enumerate(calls)}
    contents: list[types.Content] = []
    pending_results: list[Message] = []

    def add(role: str, parts: list[types.Part]) -> None:
        if contents and contents[-1].role == role and contents[-1].parts is not None:
            contents[-1].parts.extend(parts)
        elif parts:
            contents.append(types.Content(role=role, parts=parts))

    def flush_results() -> None:
        pending_results.sort(key=lambda result: order.get(result.tool_call_id or "", len(order)))
        add("user", [_function_response(result, calls) for result in pending_results])
        pending_results.clear()

    for message in messages:
        if message.role is Role.tool:
            pending_results.append(message)
            continue
        flush_results()
        if message.role is Role.user:
            add("user", [types.Part(text=message.content)])
        elif message.role is Role.assistant:
            add("model", _model_parts(message))
    flush_results()
    return contents


def _model_parts(message: Message) -> list[types.Part]:
    parts = []
    signature = message.metadata.get("gemini", {}).get("thought_signature")
    if message.content or signature:
        parts.append(types.Part(text=message.content, thought_signature=_decode(signature)))
    for call in message.tool_calls:
        gemini = call.metadata.get("gemini", {})
        function_call = types.FunctionCall(
            id=None if gemini.get("id_generated") else call.id,
            name=call.name,
            args=call.arguments,
        )
        parts.append(
            types.Part(
                function_call=function_call, thought_signature=_decode(gemini.get("thought_signature"))
            )
        )
    return parts


def _function_response(result: Message, calls: Mapping[str, ToolCall]) -> types.Part:
    call = calls.get(result.tool_call_id or "")
    generated = call is not None and call.metadata.get("gemini", {}).get("id_generated", False)
    return types.Part(
        function_response=types.FunctionResponse(
            id=None if generated else result.tool_call_id,
            name=result.name or (call.name if call else None),
            response={"error" if result.is_error else "output": result.content},
        )
    )


def _tool_call(part: types.Part, response_id: str | None, index: int) -> ToolCall:
    function_call = part.function_call
    assert function_call is not None
    name = function_call.name or ""
    arguments = function_call.args or {}
    gemini: dict[str, Any] = {}
    signature = _signature(part)
    if signature is not None:
        gemini["thought_signature"] = signature
    call_id = function_call.id
    if not call_id:
        call_id = synthetic_call_id("gemini_call_", response_id, index, name, arguments)
        gemini["id_generated"] = True
    return tool_call(
        id=call_id, name=name, arguments=arguments, metadata={"gemini": gemini} if gemini else None
    )


def _signature(part: types.Part) -> str | None:
    # The SDK hands over the decoded bytes; Gemini writes them in standard base64.
    if part.thought_signature is None:
        return None
    return base64.b64encode(part.thought_signature).decode("ascii")


def _decode(signature: str | None) -> bytes | None:
    if signature is None:
        return None
    # Either alphabet, padded or not: what Google's JSON parsers accept for bytes.
    return base64.b64decode(signature + "=" * (-len(signature) % 4), altchars=b"-_")


def _usage(usage: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    if usage is None:
        return Usage()
    thoughts = usage.thoughts_token_count or 0
    return Usage(
        input_tokens=usage.prompt_token_count or 0,  # cached content included
        output_tokens=(usage.candidates_token_count or 0) + thoughts,
        cached_input_tokens=usage.cached_content_token_count or 0,
        reasoning_tokens=thoughts,
    )


def _api_error(error: genai_errors.APIError, provider: str) -> ProviderError:
    status = error.code or 500
    message = error.message or str(error)
    body = error.details
    if _is_bad_key(body, message):
        return AuthenticationFailed(message, provider=provider, status_code=status)
    headers = getattr(error.response, "headers", None)
    retry_after = retry_after_seconds(
        dict(headers) if headers is not None else None, body, resets=status == 429
    )
    return error_for_status(status, message, provider=provider, retry_after=retry_after)


def _is_bad_key(body: object, message: str) -> bool:
    """Gemini answers a wrong key with 400 INVALID_ARGUMENT and an ErrorInfo API_KEY_INVALID."""
    details = body.get("error", {}).get("details", []) if isinstance(body, Mapping) else []
    reasons = {detail.get("reason") for detail in details if isinstance(detail, Mapping)}
    return "API_KEY_INVALID" in reasons or "API key not valid" in message
