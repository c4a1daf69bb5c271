"""Rendering console pages: Jinja2 with autoescaping everywhere, strict headers, one message a page."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from quire.app.console.errors import ConsoleError, LoginRequired
from quire.app.console.session import COOKIE, ConsoleSession, Sessions
from quire.memory.titles import title

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# Documents and memories are hostile input: nothing they say may run, load or frame anything.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True
    )
    environment.filters["pretty"] = _pretty
    environment.filters["when"] = _when
    environment.filters["statement"] = title
    return environment


ENVIRONMENT = _environment()


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def render(
    request: Request,
    template: str,
    *,
    session: ConsoleSession | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    sessions = sessions_of(request)
    context.setdefault("refresh", None)
    body = ENVIRONMENT.get_template(template).render(
        session=session, flash=sessions.read_flash(request), **context
    )
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    sessions.clear_flash(request, response)
    return response


def redirect(request: Request, to: str, *, flash: str | None = None, kind: str = "ok") -> RedirectResponse:
    """See other: every form posts, then redirects, so a refresh never repeats a decision."""
    response = RedirectResponse(to, status_code=303, headers={"Cache-Control": "no-store"})
    if flash:
        sessions_of(request).flash(request, response, kind=kind, text=flash)
    return response


def safe_next(value: str | None, default: str) -> str:
    """A console path to go to after a form: never another site, never outside the console."""
    if not value or "\\" in value or value.startswith("//"):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not (parts.path == "/console" or parts.path.startswith("/console/")):
        return default
    return value


TITLES = {
    400: "Bad request",
    401: "Log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    422: "Malformed request",
    429: "Too many requests",
    500: "Something went wrong",
}


def _session_of(request: Request) -> ConsoleSession | None:
    """The session behind the request, for the error page's navigation; None without one."""
    database = getattr(request.app.state, "database", None)
    if database is None or COOKIE not in request.cookies:
        return None
    try:
        return sessions_of(request).resolve(request, database)
    except ConsoleError:
        return None


async def console_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ConsoleError)
    if isinstance(error, LoginRequired):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = "/console/login" if request.method != "GET" else f"/console/login?next={quote(here)}"
        # A first visit carries no session cookie: being asked to log in is no error then.
        kind = "error" if COOKIE in request.cookies else "info"
        return redirect(request, target, flash=str(error), kind=kind)
    response = render(
        request,
        "error.html",
        session=_session_of(request),
        status=error.status,
        message=str(error),
        code=error.status,
        title=TITLES.get(error.status, "Error"),
    )
    response.headers.update(error.headers)
    return response
