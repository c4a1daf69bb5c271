"""What the console raises: shown as HTML pages, not as the API's JSON errors."""

from __future__ import annotations


class ConsoleError(Exception):
    """A console page that cannot be shown; `status` and the message say why."""

    status = 400

    def __init__(
        self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.headers = headers or {}


class LoginRequired(ConsoleError):
    """No session, or one that expired or whose key was revoked: the login page follows."""

    status = 401


class CsrfRefused(ConsoleError):
    """A form came without the session's token: perhaps from another site, perhaps an old tab."""

    status = 403


class TooManyRequests(ConsoleError):
    """Forms came faster than the console's rate limit allows; its Retry-After says when to resume."""

    status = 429
