"""Request body limits, enforced while the body arrives: a body over its limit is refused with
413 before it is stored anywhere (not even in a temporary file).

Every route takes bodies up to QUIRE_MAX_REQUEST_KB, read whole before the route runs (so a route,
or the MCP endpoint, never sees part of a body and stores it). Document uploads have their own,
larger limit (QUIRE_MAX_UPLOAD_MB) and stream through to their route, counted on the way.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Room for the multipart envelope and the form fields beside the file.
ENVELOPE_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    """An upload went over its limit while its route was reading it.

    An HTTPException, so that FastAPI's form parsing passes it on to the app's error handlers
    (which answer 413 in the API's error shape) instead of answering 400 "error parsing the body".
    """

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, *, limit_bytes: int, upload_limit_bytes: int, upload_paths: tuple[str, ...]
    ) -> None:
        self.app = app
        self.limit = limit_bytes
        self.upload_limit = upload_limit_bytes + ENVELOPE_BYTES
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] in ("POST", "PUT") and scope["path"] in self.upload_paths
        limit = self.upload_limit if upload else self.limit
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(send, upload=upload)
            return
        if upload:
            await self._stream(scope, receive, send)
        else:
            await self._read_whole(scope, receive, send)

    async def _read_whole(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body up to the limit, then hand it to the app as if it were arriving."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was complete: nobody to answer
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._refuse(send, upload=False)
                return
            parts.append(body)
            if not message.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(parts), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()  # after the body: the disconnect, whenever it comes

        await self.app(scope, replay, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.upload_limit:
                    raise BodyTooLarge(self._message(upload=True))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, upload=True)

    def _message(self, *, upload: bool) -> str:
        if upload:
            return (
                f"the upload is over the limit of {self.upload_limit - ENVELOPE_BYTES} bytes "
                "(QUIRE_MAX_UPLOAD_MB); nothing was stored"
            )
        return (
            f"the request body is over the limit of {self.limit} bytes (QUIRE_MAX_REQUEST_KB); "
            "nothing was stored"
        )

    async def _refuse(self, send: Send, *, upload: bool) -> None:
        body = {"error": {"code": "too_large", "message": self._message(upload=upload)}}
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})
