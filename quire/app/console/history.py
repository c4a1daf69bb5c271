"""An item's history as a reviewer reads it: who did what, by name rather than by id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlmodel import Session, col, select

from quire.core.models import Principal


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
    principals = session.exec(select(Principal).where(col(Principal.id).in_(list(ids)))).all()
    return {ids[p.id]: f"{p.name} ({p.role.value})" for p in principals}
