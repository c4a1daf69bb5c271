"""How a Quire process's log lines look: text naming the process and the logger, or JSON.

`quire.app.logs` configures the processes that Quire's commands start; the parsing server, a
process of its own, uses the same handler so its lines read like the worker's.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from quire.core.logcontext import FIELDS as CONTEXT_FIELDS
from quire.core.logcontext import ContextFilter, redact

# The environment a process's children read to log as it does (the names Settings reads too).
FORMAT_VARIABLE = "QUIRE_LOG_FORMAT"
LEVEL_VARIABLE = "QUIRE_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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


def stderr_handler(*, log_format: str, process_name: str) -> logging.Handler:
    """A handler writing to stderr, "json" or text, with the log context and credentials masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter(f"%(asctime)s %(levelname)-7s {process_name}[%(process)d] %(name)s: %(message)s")
        )
    return handler
