"""Console sessions: an API key logs in once; a signed cookie carries the session after that.

Each login is a row of `core_console_session` (see `quire.core.sessions`); the cookie holds that session's
random token and the time of login, signed with HMAC-SHA256. Every request finds its row through
a function that answers only for a session that was not ended (logout), has not expired and whose
API key is live, and turns it into the API's `Caller`: a revoked key ends its sessions at once, a
copied cookie dies with its session, and role checks are the API's. A session's CSRF token is an
HMAC of its token, sent back in a hidden field of each form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request, Response

from quire.app.console.errors import ConsoleError, CsrfRefused, LoginRequired
from quire.core.db import Database
from quire.core.models import Role
from quire.core.secrets import load_or_create
from quire.core.sessions import end_console_session, find_console_session, open_console_session
from quire.core.tenancy import Caller, hash_key

COOKIE = "quire_console"
LOGIN_COOKIE = "quire_console_login"
FLASH_COOKIE = "quire_console_flash"
COOKIE_PATH = "/console"
SESSION_SECONDS = 8 * 3600
LOGIN_FORM_SECONDS = 3600
FLASH_SECONDS = 120
SECRET_FILE = "console-secret"


def load_secret(data_dir: Path) -> bytes:
    """The signing key, kept in the data folder so that sessions survive restarts."""
    return load_or_create(data_dir / SECRET_FILE)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass(frozen=True)
class ConsoleSession:
    """A logged-in reviewer: their session's row, the API's caller, and the token their forms must carry."""

    id: uuid.UUID
    caller: Caller
    csrf: str

    def require(self, role: Role) -> None:
        """The API's role check, as a console page."""
        if not self.caller.allows(role):
            raise ConsoleError(
                f"this needs the {role.value} role; the key's role is {self.caller.role.value}", status=403
            )


@dataclass(frozen=True)
class Flash:
    kind: str  # "ok" or "error"
    text: str


class Sessions:
    """Issues, reads and ends console sessions; one per app, in `app.state.console_sessions`."""

    def __init__(self, secret: bytes, *, max_age: int = SESSION_SECONDS) -> None:
        self._secret = secret
        self.max_age = max_age

    # Signed values.

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode() + b"|" + data, hashlib.sha256).digest()

    def sign(self, purpose: str, payload: dict[str, Any]) -> str:
        data = json.dumps(payload, separators=(",", ":")).encode()
        return f"{_b64(data)}.{_b64(self._mac(purpose, data))}"

    def unsign(self, purpose: str, token: str | None, *, max_age: int) -> dict[str, Any] | None:
        """The payload of a token this app signed for `purpose` less than `max_age` ago, else None."""
        if not token or token.count(".") != 1:
            return None
        encoded, mac = token.split(".")
        try:
            data, signature = _unb64(encoded), _unb64(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._mac(purpose, data)):
            return None
        try:
            payload = json.loads(data)
        except ValueError:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("t"), int):
            return None
        if not 0 <= time.time() - payload["t"] <= max_age:
            return None
        return payload

    def csrf_token(self, nonce: str) -> str:
        return _b64(self._mac("csrf", nonce.encode()))

    # Cookies.

    def _set(self, request: Request, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def log_in(
        self, request: Request, response: Response, *, database: Database, caller: Caller, key: str
    ) -> None:
        """Open a session for `caller`, who just showed `key`, and set its cookie."""
        token = secrets.token_urlsafe(32)
        with database.tenant_session(caller.tenant_id) as session:
            opened = open_console_session(
                session=session, key_hash=hash_key(key), token_hash=hash_key(token), seconds=self.max_age
            )
            session.commit()
        if opened is None:
            raise LoginRequired("the API key was revoked while logging in")
        payload = {"s": token, "t": int(time.time())}
        self._set(request, response, COOKIE, self.sign("session", payload), self.max_age)
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)

    def log_out(self, response: Response, *, database: Database, console: ConsoleSession | None) -> None:
        """End the session on the server, so that a copy of its cookie opens nothing, and drop the cookie."""
        if console is not None:
            with database.tenant_session(console.caller.tenant_id) as session:
                end_console_session(session=session, session_id=console.id)
                session.commit()
        response.delete_cookie(COOKIE, path=COOKIE_PATH)

    def resolve(self, request: Request, database: Database) -> ConsoleSession:
        """The session of this request, or LoginRequired."""
        raw = request.cookies.get(COOKIE)
        payload = self.unsign("session", raw, max_age=self.max_age)
        if payload is None or not isinstance(payload.get("s"), str):
            raise LoginRequired("your session expired; log in again" if raw else "log in with an API key")
        with database.system_session() as session:
            stored = find_console_session(session=session, token_hash=hash_key(payload["s"]))
        if stored is None:
            raise LoginRequired(
                "this session was logged out or expired, or its API key was revoked; log in again"
            )
        request.state.caller = stored.caller
        return ConsoleSession(id=stored.id, caller=stored.caller, csrf=self.csrf_token(payload["s"]))

    def check_csrf(self, session: ConsoleSession, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, session.csrf):
            raise CsrfRefused("the form did not carry this session's token; reload the page and try again")

    # The login form's own token (double submit: a cookie and a hidden field that must match).

    def login_token(self, request: Request) -> str:
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if self.unsign("login", token, max_age=LOGIN_FORM_SECONDS) is None:
            token = self.sign("login", {"n": secrets.token_urlsafe(16), "t": int(time.time())})
        return token

    def set_login_token(self, request: Request, response: Response, token: str) -> None:
        self._set(request, response, LOGIN_COOKIE, token, LOGIN_FORM_SECONDS)

    def check_login_token(self, request: Request, token: str | None) -> None:
        cookie = request.cookies.get(LOGIN_COOKIE)
        if (
            not token
            or not cookie
            or not hmac.compare_digest(token, cookie)
            or self.unsign("login", cookie, max_age=LOGIN_FORM_SECONDS) is None
        ):
            raise CsrfRefused("the login form expired or came from elsewhere; reload it and try again")

    # One message for the next page (after a redirect).

    def flash(self, request: Request, response: Response, *, kind: str, text: str) -> None:
        value = self.sign("flash", {"kind": kind, "text": text[:1500], "t": int(time.time())})
        self._set(request, response, FLASH_COOKIE, value, FLASH_SECONDS)

    def read_flash(self, request: Request) -> Flash | None:
        payload = self.unsign("flash", request.cookies.get(FLASH_COOKIE), max_age=FLASH_SECONDS)
        if payload is None:
            return None
        return Flash(kind=str(payload.get("kind")), text=str(payload.get("text")))

    def clear_flash(self, request: Request, response: Response) -> None:
        if FLASH_COOKIE in request.cookies:
            response.delete_cookie(FLASH_COOKIE, path=COOKIE_PATH)
