"""Where the API is and the key to call it with: arguments first, then QUIRE_URL and QUIRE_API_KEY."""

from __future__ import annotations

import os

from quire.client.errors import QuireError


def resolve(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    url = base_url or os.environ.get("QUIRE_URL", "")
    key = api_key or os.environ.get("QUIRE_API_KEY", "")
    if not url:
        raise QuireError("give the API's URL: base_url= or QUIRE_URL", code="invalid_configuration")
    if not key:
        raise QuireError("give an API key: api_key= or QUIRE_API_KEY", code="invalid_configuration")
    if not url.startswith(("http://", "https://")):
        raise QuireError(f"QUIRE_URL {url!r} is not an http(s) URL", code="invalid_configuration")
    return url.rstrip("/"), key


def events_path(run_id: str) -> str:
    return f"/v1/agent/runs/{run_id}/events"
