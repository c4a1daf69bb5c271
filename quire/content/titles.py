"""A document's title: the one its upload named, else its version's first heading, else the
file name without its extension. The file name itself stays the document's source key and its
versions' `filename`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath

from quire.content.models import Version

HEADING_TYPES = frozenset({"title"})
MAX_TITLE = 1000  # content_document.title's length


def first_heading(elements: Iterable[tuple[str, str]]) -> str | None:
    """The text of the first heading among (type, text) elements, on one line; None without one."""
    for element_type, text in elements:
        line = " ".join(text.split())
        if element_type in HEADING_TYPES and line:
            return line[:MAX_TITLE]
    return None


def title_of(version: Version) -> str:
    """The title a version gives its document once it is the document's searchable version."""
    return (version.title or PurePath(version.filename).stem or version.filename)[:MAX_TITLE]
