"""The parsing server's logging: its lines, and unstructured's, reach the worker's log named.

The server is a fresh Python process without logging of its own, where Python's last resort
would print a warning as its bare message ("Skipping attachment …"), with no logger or process
to tell where it came from. It logs as the process that started it does, in the format and at
the level that process exported (`quire.app.logs`), on the stderr it inherited.
"""

from __future__ import annotations

import logging
import os

from quire.core.logformat import FORMAT_VARIABLE, LEVEL_VARIABLE, LEVELS, stderr_handler

PROCESS_NAME = "quire-parser"


def configure_parsing_logs() -> None:
    """Log to stderr as the starting process does, unless this process has handlers already."""
    root = logging.getLogger()
    if root.handlers:  # a process that parses in-process and configured its own (a test)
        return
    level = os.environ.get(LEVEL_VARIABLE, "INFO").upper()
    log_format = os.environ.get(FORMAT_VARIABLE, "text")
    root.addHandler(stderr_handler(log_format=log_format, process_name=PROCESS_NAME))
    root.setLevel(level if level in LEVELS else "INFO")
    # pikepdf announces its logger bridge at INFO on import, once per parsing server.
    logging.getLogger("pikepdf").setLevel(max(logging.WARNING, root.level))
