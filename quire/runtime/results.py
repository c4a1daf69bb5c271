"""How a step's result is recorded and read back.

The recorded JSON is what every later replay of the run returns, so its shape is a contract
with runs recorded before: a step's typed result is stored as its JSON form and validated
back into its type; a signal as `{"payload", "timed_out", "sender"}`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import TypeAdapter

from quire.core.db import dumps


@functools.lru_cache(maxsize=1024)
def _result_adapter(function: Callable[..., Any]) -> TypeAdapter[Any] | None:
    try:
        annotation = get_type_hints(function).get("return")
    except Exception:  # lambdas, builtins, forward references that do not resolve
        return None
    if annotation is None or annotation is type(None):
        return None
    return TypeAdapter(annotation)


def encode_result(function: Callable[..., Any], value: Any) -> str:
    """`value`, returned by `function`, as the JSON a step records."""
    adapter = _result_adapter(function)
    if adapter is not None:
        return dumps(adapter.dump_python(value, mode="json"))
    return dumps(value)


def decode_result(function: Callable[..., Any], stored: Any) -> Any:
    """A recorded result as `function` returned it (its declared return type, when it has one)."""
    adapter = _result_adapter(function)
    return adapter.validate_python(stored) if adapter is not None else stored


@dataclass(frozen=True)
class Received:
    """A signal as a run took it: its payload and who sent it (sender None: Quire itself)."""

    payload: Any
    sender_id: uuid.UUID | None = None
    sender_role: str | None = None

    def record(self) -> dict[str, Any]:
        sender = {"id": str(self.sender_id), "role": self.sender_role} if self.sender_id else None
        return {"payload": self.payload, "timed_out": False, "sender": sender}

    @classmethod
    def from_record(cls, result: dict[str, Any]) -> Received | None:
        if result.get("timed_out"):
            return None
        sender = result.get("sender") or {}
        return cls(
            payload=result.get("payload"),
            sender_id=uuid.UUID(sender["id"]) if sender.get("id") else None,
            sender_role=sender.get("role"),
        )

    @staticmethod
    def timed_out_record() -> dict[str, Any]:
        return {"payload": None, "timed_out": True}
