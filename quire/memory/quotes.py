"""Finding a quoted passage in a text, as evidence is checked against documents."""

from __future__ import annotations

import re


def find_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` is in `text`, ignoring differences of whitespace; None if it is not."""
    pattern = r"\s+".join(re.escape(word) for word in quote.split())
    match = re.search(pattern, text)
    return (match.start(), match.end()) if match else None
