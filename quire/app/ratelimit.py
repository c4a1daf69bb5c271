"""Rate limits per API key, on /v1/ and /mcp alike: a token bucket per key in each API process,
answered with 429 and Retry-After when empty. (Several API processes each keep their own buckets:
the effective limit is the configured one times the number of processes behind the load balancer.)"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_TRACKED_KEYS = 10_000


class TokenBuckets:
    def __init__(self, *, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or max(1, per_minute // 6))
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self.lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if the request may go now (and it uses a token), else the seconds until it may."""
        return self._wait(key, use=True)

    def peek(self, key: str) -> float:
        """What `take` would answer, without using a token."""
        return self._wait(key, use=False)

    def _wait(self, key: str, *, use: bool) -> float:
        if len(self.buckets) > MAX_TRACKED_KEYS:
            self.forget_full()
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                if use:
                    self.buckets[key] = (tokens - 1, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def forget_full(self) -> None:
        """Drops buckets that have refilled: they hold nothing a fresh bucket would not. Keeps
        memory bounded when clients send many different (possibly bogus) keys."""
        now = time.monotonic()
        with self.lock:
            self.buckets = {
                key: (tokens, last)
                for key, (tokens, last) in self.buckets.items()
                if tokens + (now - last) * self.rate < self.capacity
            }


def retry_after(wait: float) -> int:
    """Whole seconds for a Retry-After header: at least one."""
    return max(1, math.ceil(wait))


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, per_minute: int, roots: tuple[str, ...] = ("/v1", "/mcp")) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute=per_minute)
        self.roots = roots

    def limits(self, path: str) -> bool:
        return any(path == root or path.startswith(root + "/") for root in self.roots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limits(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not header:
            await self.app(scope, receive, send)  # refused by authentication anyway
            return
        key = hashlib.sha256(header).hexdigest()
        wait = self.buckets.take(key)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        seconds = str(retry_after(wait))
        body = json.dumps(
            {
                "error": {
                    "code": "rate_limited",
                    "message": f"too many requests for this API key; retry in {seconds} s",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", seconds.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
