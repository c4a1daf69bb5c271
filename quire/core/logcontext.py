"""What a log line is about (tenant, principal, request, run, step), carried in context variables
and added to every record; and a last line of defence that masks credentials in messages."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

FIELDS = ("tenant_id", "principal_id", "request_id", "run_id", "step")
_context: ContextVar[dict[str, Any] | None] = ContextVar("quire_log_context", default=None)

SECRETS = re.compile(
    r"(qk_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+"  # Quire API keys: keep a recognisable prefix
    r"|(sk-(?:ant-)?[A-Za-z0-9]{2})[A-Za-z0-9_-]{8,}"  # OpenAI / Anthropic style keys
    r"|(AIza[0-9A-Za-z_-]{2})[0-9A-Za-z_-]{20,}"  # Google API keys
    r"|((?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|((?:password|passwd|secret|api[_-]?key|token)\s*[:=]\s*)\S{4,}"
    r"|(://[^:/@\s]+:)[^@\s/]+(?=@)",  # the password in a URL: postgresql://user:…@host
    re.IGNORECASE,
)


def redact(message: str) -> str:
    return SECRETS.sub(lambda m: next(g for g in m.groups() if g is not None) + "…[redacted]", message)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Attach values (run_id=…, step=…) to every log record made inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**values: Any) -> None:
    """Attach values for the rest of the enclosing log_context (an HTTP request, say).

    The enclosing block's dict is updated in place, not replaced: FastAPI runs each dependency
    in a worker thread with a copy of the context, and a copy shares the dict but not a new one.
    """
    current = _context.get()
    if current is None:
        _context.set(current := {})
    current.update({k: v for k, v in values.items() if v is not None})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
