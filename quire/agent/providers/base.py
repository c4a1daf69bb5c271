"""The provider interface the agent loop calls, and the little every adapter shares."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from quire.agent.messages import Completion, CompletionRequest, Delta, ToolCall
from quire.agent.providers.errors import AuthenticationFailed

DeltaCallback = Callable[[Delta], None]


class Provider(ABC):
    """A model provider behind one synchronous call.

    `complete` sends the request and returns a good answer as a `Completion`; every failure,
    refusal, filtered or malformed answer raises a `ProviderError` subclass instead. With
    `request.stream` set it calls `on_delta` with text and tool-argument fragments as they
    arrive and still returns the whole `Completion`. It never retries: the runtime does,
    guided by `ProviderError.retryable` and `RateLimited.retry_after`. Implementations keep
    the SDK's own retries off and put whatever the provider needs back on the next turn into
    the `metadata` of the messages and tool calls they return.
    """

    name: ClassVar[str]
    default_base_url: ClassVar[str]

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 120.0,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url or self.default_base_url
        self.timeout = timeout
        self.extra_headers = dict(extra_headers or {})

    @abstractmethod
    def complete(self, request: CompletionRequest, *, on_delta: DeltaCallback | None = None) -> Completion:
        """Send one request to the model and return its answer."""

    def warm_up(self) -> None:  # noqa: B027 (a hook; most providers need nothing)
        """Load now what the first call would load (the SDK's lazily imported parts), calling out
        to nobody: a worker does it when it starts."""

    @property
    def uses_default_endpoint(self) -> bool:
        return self.base_url.rstrip("/") == self.default_base_url.rstrip("/")

    def check_api_key(self) -> None:
        """Refuse to call the provider's own endpoint without a key (a proxy may not need one)."""
        if not self.api_key and self.uses_default_endpoint:
            raise AuthenticationFailed(f"no API key configured for {self.name}", provider=self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


def tool_call(
    *, id: str, name: str, arguments: str | dict[str, Any] | None, metadata: dict[str, Any] | None = None
) -> ToolCall:
    """A ToolCall from arguments as the provider gave them: a JSON text or an object.

    Text that is not a JSON object is no error here: the call keeps it in `raw_arguments`
    with a `parse_error`, so the loop can tell the model what went wrong.
    """
    metadata = metadata or {}
    if isinstance(arguments, dict):
        return ToolCall(id=id, name=name, arguments=arguments, metadata=metadata)
    raw = arguments or ""
    if not raw.strip():
        return ToolCall(id=id, name=name, metadata=metadata)
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as error:
        problem = f"arguments are not valid JSON: {error}"
    else:
        if isinstance(parsed, dict):
            return ToolCall(id=id, name=name, arguments=parsed, metadata=metadata)
        problem = f"arguments must be a JSON object, got {type(parsed).__name__}"
    return ToolCall(id=id, name=name, raw_arguments=raw, parse_error=problem, metadata=metadata)


def synthetic_call_id(prefix: str, *parts: object) -> str:
    """A stable id for a tool call the provider sent without one: the same answer, the same id."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
    return f"{prefix}{digest[:24]}"
