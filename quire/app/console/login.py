"""Logging in to the console with an API key, and out again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from quire.app.console.errors import LoginRequired
from quire.app.console.pages import redirect, render, safe_next, sessions_of
from quire.app.console.throttle import count_failed_login
from quire.core.deps import DatabaseDep
from quire.core.errors import Unauthenticated
from quire.core.models import Role
from quire.core.tenancy import authenticate

router = APIRouter(prefix="/console", include_in_schema=False)

HOME = "/console/memory"


@router.get("")
def console_home() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


def login_form(request: Request, *, next: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    sessions = sessions_of(request)
    token = sessions.login_token(request)
    response = render(request, "login.html", status=status, next=next, token=token, error=error)
    sessions.set_login_token(request, response, token)
    return response


@router.get("/login")
def login_page(request: Request, next: str = HOME) -> HTMLResponse:
    return login_form(request, next=safe_next(next, HOME))


@router.post("/login", response_model=None)
def log_in(
    request: Request,
    database: DatabaseDep,
    key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> HTMLResponse | RedirectResponse:
    sessions = sessions_of(request)
    sessions.check_login_token(request, csrf)
    target = safe_next(next, HOME)
    try:
        with database.system_session() as session:
            caller = authenticate(session=session, key=key.strip())
    except Unauthenticated as refused:
        count_failed_login(request)
        return login_form(request, next=target, error=str(refused), status=401)
    if target == HOME and not caller.allows(Role.reviewer):
        target = "/console/runs"  # the review queue is for reviewers; everyone may inspect runs
    response = redirect(request, target, flash=f"Logged in as {caller.name} ({caller.role.value}).")
    sessions.log_in(request, response, database=database, caller=caller, key=key.strip())
    return response


@router.post("/logout")
def log_out(
    request: Request, database: DatabaseDep, csrf: Annotated[str, Form(max_length=500)] = ""
) -> RedirectResponse:
    sessions = sessions_of(request)
    try:
        console = sessions.resolve(request, database)
    except LoginRequired:
        console = None  # nothing live to end: only the cookie is left to drop
    if console is not None:
        sessions.check_csrf(console, csrf)
    response = redirect(request, "/console/login", flash="Logged out.")
    sessions.log_out(response, database=database, console=console)
    return response
