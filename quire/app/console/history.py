"""An item's history as a reviewer reads it: who did what, by name rather than by id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlmodel import Session

from quire.core.tenancy import principals_by_id


def actor_names(session: Session, actors: Iterable[str | None]) -> dict[str, str]:
    """Readable names for actors that are principal ids; others ("system", "extractor:rules") stay."""
    ids: dict[uuid.UUID, str] = {}
    for actor in actors:
        if not actor:
            continue
        try:
            ids[uuid.UUID(actor)] = actor
        except ValueError:
            continue
    if not ids:
        return {}
    principals = principals_by_id(session=session, ids=list(ids))
    return {ids[p.id]: f"{p.name} ({p.role.value})" for p in principals.values()}
