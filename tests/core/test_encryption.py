"""Values encrypted at rest: they round-trip with the installation's key, and the wrong key is an
error that names QUIRE_SECRET_KEY."""

from __future__ import annotations

import pytest

from quire.core.encryption import Encryptor, UndecryptableSecret
from quire.core.secrets import derive


def encryptor(secret: bytes) -> Encryptor:
    return Encryptor(derive(secret, "mcp-credentials"), what="MCP server credentials")


def test_values_round_trip_and_the_token_holds_no_plain_text() -> None:
    box = encryptor(b"k" * 32)
    token = box.encrypt({"headers": {"Authorization": "Bearer abc-123-secret"}})
    assert "abc-123-secret" not in token
    assert box.decrypt(token) == {"headers": {"Authorization": "Bearer abc-123-secret"}}
    assert box.encrypt({"a": 1}) != box.encrypt({"a": 1})  # a fresh IV each time


def test_the_wrong_key_says_which_setting_to_fix() -> None:
    token = encryptor(b"k" * 32).encrypt({"env": {"TOKEN": "x"}})
    with pytest.raises(UndecryptableSecret, match="QUIRE_SECRET_KEY") as refused:
        encryptor(b"j" * 32).decrypt(token)
    assert "MCP server credentials" in str(refused.value)
    with pytest.raises(UndecryptableSecret, match="QUIRE_SECRET_KEY"):
        encryptor(b"k" * 32).decrypt("not a token")
