"""What the client raises: the API's error object, or why the API could not be reached."""

from __future__ import annotations

from typing import Any

import httpx

from quire.core.errors import QuireError as ServerQuireError


class QuireError(ServerQuireError):
    """The API answered an error (`{"error": {"code", "message", "details"}}`) or could not be
    reached (status 0). It derives from the server's QuireError so that the CLI reports both
    the same way; that module imports nothing."""

    def __init__(self, message: str, *, status: int = 0, code: str = "error", details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status else ""
        return f"{self.message} ({where}{self.code})"

    @classmethod
    def from_response(cls, response: httpx.Response) -> QuireError:
        """The error a response carries, in the API's shape or, from a proxy say, any other."""
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "message" in error:
            return cls(
                str(error["message"]),
                status=response.status_code,
                code=str(error.get("code") or "error"),
                details=error.get("details"),
            )
        text = response.text.strip()[:200] or response.reason_phrase
        return cls(
            f"{response.request.method} {response.request.url.path}: {text}", status=response.status_code
        )


def unreachable(base_url: str, error: httpx.TransportError) -> QuireError:
    return QuireError(
        f"cannot reach Quire at {base_url} (QUIRE_URL): {error or type(error).__name__}", code="unreachable"
    )
