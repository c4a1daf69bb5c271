"""Errors met under /console shown as console pages, never as the API's JSON.

The API's handlers (app/errors.py) stay in charge everywhere else: each one is wrapped, so that a
request under /console gets the console's error page with the same status, and any other request
gets exactly what it got before.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quire.app.console.errors import ConsoleError
from quire.app.errors import status_for
from quire.core.errors import QuireError

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Any], Awaitable[Response]]

# What a path parameter names, for "no run “abc”".
NOUNS = {"run_id": "run", "item_id": "memory", "document_id": "document", "number": "version"}


def in_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def as_console_error(request: Request, error: Exception) -> ConsoleError:
    """The console page an error of the API's kinds becomes: its status, and its reason in words."""
    if isinstance(error, ConsoleError):
        return error
    if isinstance(error, RequestValidationError):
        problems = list(error.errors())
        for problem in problems:
            location = tuple(problem.get("loc", ()))
            if location[:1] == ("path",):
                name = str(location[1]) if len(location) > 1 else "id"
                noun = NOUNS.get(name, name)
                value = str(problem.get("input", ""))[:100]
                why = "versions are numbered from 1" if name == "number" else f"that is not a {noun}'s id"
                return ConsoleError(f"no {noun} “{value}” here: {why}", status=404)
        message = "; ".join(f"{_where(p.get('loc', ()))}: {p.get('msg', '')}" for p in problems)
        return ConsoleError(f"the request was malformed: {message}", status=422)
    if isinstance(error, StarletteHTTPException):
        if error.status_code == 404:
            return ConsoleError(f"there is no console page at {request.url.path}", status=404)
        return ConsoleError(str(error.detail), status=error.status_code, headers=dict(error.headers or {}))
    if isinstance(error, QuireError):
        return ConsoleError(str(error), status=status_for(error))
    if isinstance(error, DataError):
        return ConsoleError("a value in the request cannot be stored or compared", status=422)
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return ConsoleError("Quire hit an unexpected error; it is in the server log", status=500)


def _where(location: Any) -> str:
    """`start` for ("query", "start"): the input's name, without where it came from."""
    return ".".join(str(part) for part in tuple(location)[1:]) or "the request"


def install_error_pages(app: FastAPI, page: Handler) -> None:
    """Route the errors of console requests to `page` (which renders a ConsoleError)."""
    for error_type in (QuireError, RequestValidationError, StarletteHTTPException, DataError, Exception):
        fallback = app.exception_handlers.get(error_type)
        app.add_exception_handler(error_type, _wrapped(page, fallback))


def _wrapped(page: Handler, fallback: Callable[[Request, Any], Any] | None) -> Handler:
    async def handler(request: Request, error: Exception) -> Response:
        if fallback is not None and not in_console(request.url.path):
            response = fallback(request, error)
            if inspect.isawaitable(response):
                response = await response
            assert isinstance(response, Response)
            return response
        return await page(request, as_console_error(request, error))

    return handler
