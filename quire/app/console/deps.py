"""The console's dependencies: the session behind the cookie, and the reviewer role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from quire.app.console.pages import sessions_of
from quire.app.console.session import ConsoleSession
from quire.core.deps import DatabaseDep
from quire.core.models import Role


def get_console_session(request: Request, database: DatabaseDep) -> ConsoleSession:
    return sessions_of(request).resolve(request, database)


ConsoleSessionDep = Annotated[ConsoleSession, Depends(get_console_session)]


def get_reviewer(console: ConsoleSessionDep) -> ConsoleSession:
    console.require(Role.reviewer)
    return console


ReviewerConsoleDep = Annotated[ConsoleSession, Depends(get_reviewer)]
