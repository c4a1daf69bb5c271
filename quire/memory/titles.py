"""What a memory is called wherever it is listed or cited: the statement it makes.

Its text when that is short; otherwise its first sentence, or the text cut at a word boundary.
Subject keys (slots) are how the checks compare memories, never what a person reads.
"""

from __future__ import annotations

import re

TITLE_CHARS = 140

# A sentence ends at . ! or ? after a word, then a space and a capital: "e.g. 2.5 kg" goes on.
SENTENCE_END = re.compile(r"(?<=\w\w[.!?])\s+(?=[\"“(]?[A-Z])")


def title(text: str, *, size: int = TITLE_CHARS) -> str:
    """The statement `text` makes, in at most `size` characters."""
    statement = " ".join(text.split())
    if len(statement) <= size:
        return statement
    first = SENTENCE_END.split(statement, maxsplit=1)[0]
    if len(first) <= size:
        return first
    cut = statement[: size - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"
