"""Putting the console into the API's app: its routers, its static files, its error pages."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from quire.app.console import documents, favicon, login, memory, operations, runs
from quire.app.console.error_pages import install_error_pages
from quire.app.console.errors import ConsoleError
from quire.app.console.pages import STATIC, console_error
from quire.app.console.session import Sessions, load_secret
from quire.app.console.throttle import ConsoleThrottle, throttle_forms
from quire.core.settings import Settings

ROUTERS = (login.router, memory.router, documents.router, runs.router, operations.router)


def mount_console(app: FastAPI, *, secret: bytes | None = None) -> None:
    """Serve the review console under /console; a second call does nothing."""
    if getattr(app.state, "console_sessions", None) is not None:
        return
    settings: Settings = app.state.settings
    # Several API hosts behind a load balancer must sign with one key (QUIRE_CONSOLE_SECRET);
    # one host keeps its own in the data folder.
    configured = settings.console_secret.encode() or None
    app.state.console_sessions = Sessions(secret or configured or load_secret(settings.data_dir))
    app.state.console_throttle = ConsoleThrottle.per_minute(
        forms=settings.console_rate_limit_per_minute, failed_logins=settings.login_rate_limit_per_minute
    )
    for router in ROUTERS:
        app.include_router(router, dependencies=[Depends(throttle_forms)])
    app.include_router(favicon.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(ConsoleError, console_error)
    install_error_pages(app, console_error)
