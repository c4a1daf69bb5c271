"""Secrets kept encrypted at rest: a JSON value sealed with Fernet (AES-128-CBC and HMAC-SHA256)
under a 32-byte key derived from the installation's secret (`quire.core.secrets.derive`)."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from quire.core.errors import ConfigurationError


class UndecryptableSecret(ConfigurationError):
    """A stored secret does not open with this installation's key."""

    code = "undecryptable_secret"


class Encryptor:
    """Encrypts and decrypts JSON values with one purpose's key; `what` names them in errors."""

    def __init__(self, key: bytes, *, what: str) -> None:
        if len(key) != 32:
            raise ValueError("an encryption key is 32 bytes")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self.what = what

    def encrypt(self, value: Any) -> str:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode("ascii")

    def decrypt(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode("ascii")))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            raise UndecryptableSecret(
                f"the stored {self.what} cannot be decrypted with this installation's key: every API, "
                "worker and `quire migrate` process must see the QUIRE_SECRET_KEY they were encrypted "
                "with (or, without one, share the data folder's secret-key file)"
            ) from None

    def __repr__(self) -> str:
        return f"Encryptor({self.what})"
