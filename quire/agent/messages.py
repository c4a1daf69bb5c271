"""One message format for every provider.

The loop, context discipline, tools and storage speak only these types; each provider adapter
translates them to and from its wire format. `metadata` slots carry what a provider needs back
unchanged on the next turn (Gemini's thought signatures, Anthropic's thinking blocks, OpenAI's
reasoning items): adapters put it there and read it back, and nothing else touches it.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, Field


class Role(enum.StrEnum):
    system = "system"
    user = "user"
    assistant = "assistant"
    tool = "tool"


class ToolCall(BaseModel):
    """A call the model asked for. `arguments` is parsed JSON; when the model produced text that
    is not a JSON object, `arguments` is empty, `raw_arguments` keeps the text and `parse_error`
    says what is wrong, so the loop can hand the error back to the model."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str | None = None
    parse_error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)  # assistant messages
    tool_call_id: str | None = None  # tool results: the call answered
    name: str | None = None  # tool results: the tool's name
    is_error: bool = False  # tool results: the call failed
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role=Role.system, content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role=Role.user, content=content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: list[ToolCall] | None = None) -> Message:
        return cls(role=Role.assistant, content=content, tool_calls=tool_calls or [])

    @classmethod
    def tool_result(cls, call: ToolCall, content: str, *, is_error: bool = False) -> Message:
        return cls(role=Role.tool, content=content, tool_call_id=call.id, name=call.name, is_error=is_error)


class Usage(BaseModel):
    """Tokens of one call. `input_tokens` counts every prompt token, cached ones included;
    `cached_input_tokens` says how many of them were read from the provider's cache (priced
    lower), `cache_write_tokens` how many were written to it (priced higher, where charged)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # included in output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{field: getattr(self, field) + getattr(other, field) for field in Usage.model_fields})


class FinishReason(enum.StrEnum):
    stop = "stop"
    tool_calls = "tool_calls"
    length = "length"  # the output limit cut the answer short


class ToolSpec(BaseModel):
    """A tool as the model sees it: name, description and a JSON schema for the arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class CompletionRequest(BaseModel):
    model: str
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    max_output_tokens: int = 2048
    temperature: float | None = None
    tool_choice: Literal["auto", "none", "required"] = "auto"
    stream: bool = False


class Completion(BaseModel):
    """A good answer from a provider. Errors, refusals, filtered and malformed output never
    arrive as a Completion: adapters raise ProviderError subclasses for them."""

    message: Message
    usage: Usage
    finish_reason: FinishReason
    model: str
    provider: str
    response_id: str | None = None


class Delta(BaseModel):
    """A piece of a streamed answer, for live display only (the Completion is what counts)."""

    text: str = ""
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments_fragment: str = ""
