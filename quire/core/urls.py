"""Connection URLs as a person can be shown them: as they were written, with the password masked."""

from __future__ import annotations

MASK = "***"


def without_password(url: str) -> str:
    """`url` exactly as written but for its password (scheme, user, host, query all kept), so
    what an error or a start-up banner echoes is what its reader typed."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return url
    return f"{scheme}://{user}:{MASK}@{host}{slash}{tail}"
