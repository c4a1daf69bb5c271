"""Idempotency keys are bound to the request they started a run for.

A key names one run of one program in a tenant. The same key with the same request (the same
hash) returns that run; with another request it is refused (IdempotencyMismatch, a 409), so that
a client that reused a key by mistake hears of it instead of silently getting another question's
answer. The hash is sha256 of the request as canonical JSON: sorted keys, no spaces, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from quire.core.db import dumps


def canonical_json(value: Any) -> str:
    plain = json.loads(dumps(value.model_dump(mode="json") if isinstance(value, BaseModel) else value))
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_hash(value: Any) -> str:
    """sha256 (hex) of `value` as canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
