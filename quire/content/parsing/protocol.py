"""The messages between `Parser` and the parsing server, both ends in one place.

The server's first message says whether it could prepare itself: (READY, {"prepare_seconds": s})
or (UNAVAILABLE, message). After that the caller sends requests (`Request`: an id, the time limit
in seconds, the memory limit in bytes, whether the job is large, and the job: `(function, args)`
pickled on their own, so that the server forwards them to a child without unpickling them) and
gets exactly one `(id, reply)` for each, in the order the jobs finish: (OK, the job's result) or
(ERROR, code, message), where the code is a `ParseFailure`'s. A job is any importable function.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

from quire.content.parsing.errors import FAILURES, ParseFailure

READY = "ready"
UNAVAILABLE = "unavailable"
OK = "ok"
ERROR = "error"

Reply = tuple[Any, ...]


class Request(NamedTuple):
    """One job for the server: `job` is `pickle.dumps((function, args))`."""

    id: int
    timeout: float
    memory_limit: int
    large: bool
    job: bytes


def request(
    request_id: int,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    timeout: float,
    memory_limit: int,
    large: bool,
) -> Request:
    """The request that runs `function(*args)` in a child."""
    job = pickle.dumps((function, args), pickle.HIGHEST_PROTOCOL)
    return Request(request_id, timeout, memory_limit, large, job)


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
