"""The messages between `Parser` and the parsing server, both ends in one place.

The server's first message says whether it could prepare itself: (READY, {"prepare_seconds": s})
or (UNAVAILABLE, message). After that, each request (job, args, time limit in seconds, memory
limit in bytes) gets exactly one reply: (OK, the job's result) or (ERROR, code, message), where
the code is a `ParseFailure`'s. Messages are pickled, so a job is any importable function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quire.content.parsing.errors import FAILURES, ParseFailure

READY = "ready"
UNAVAILABLE = "unavailable"
OK = "ok"
ERROR = "error"

Request = tuple[Callable[..., Any], tuple[Any, ...], float, int]
Reply = tuple[Any, ...]


def ok(result: Any) -> Reply:
    """The reply to a job that returned `result`."""
    return (OK, result)


def error(code: str, message: str) -> Reply:
    """The reply to a job that failed with the ParseFailure whose code is `code`."""
    return (ERROR, code, message)


def result_of(reply: Reply) -> Any:
    """The job's result, or the ParseFailure its reply names, raised (an unknown code: the base)."""
    if reply[0] == OK:
        return reply[1]
    _, code, message = reply
    raise FAILURES.get(code, ParseFailure)(message)
