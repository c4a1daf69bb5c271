"""Whether a memory's text is supported by the passages its evidence quotes.

A reviewer's edit keeps the proposal's evidence. An edit that rewords or trims a statement is
fine; one that changes a number or says something the passages never mention would approve
text nobody quoted, so it needs an explicit override with a reason (the audit records it).

The test is deliberately plain and explainable: every number in the text (in digits or in
words) must appear in the quotes, and most of its content words must too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_SHARE = 0.6  # of the text's content words that the quotes must contain

# Spelled-out numbers count as numbers. (Plain strings split once: easier to read and extend.)
_NUMBERS = """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
hundred thousand million billion half quarter first second third fourth fifth"""
_STOPWORDS = """a an the and or but if then than that this these those of to in on at by for with from
as is are was were be been being it its their there they them he she his her we our you your i not
no do does did has have had will would shall should can could may might must per via into onto up
out over under about after before each every all any some such only also more most less least"""
NUMBER_WORDS = frozenset(_NUMBERS.split())
STOPWORDS = frozenset(_STOPWORDS.split())
WORD = re.compile(r"[^\W_]+(?:[.,][0-9]+)*", re.UNICODE)


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s", "ing", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def unsupported(text: str, quotes: Iterable[str | None]) -> str | None:
    """Why the quotes do not support `text`, in words; None when they do."""
    quoted = " ".join(q for q in quotes if q)
    if not quoted.strip():
        return "its evidence quotes no passage to compare it with"
    have = _words(quoted)
    have_set = set(have) | {_stem(w) for w in have}
    words = _words(text)
    numbers = [w for w in words if w[0].isdigit() or w in NUMBER_WORDS]
    missing_numbers = sorted({n for n in numbers if n not in have_set})
    if missing_numbers:
        return f"the quoted passages never mention {', '.join(missing_numbers)}"
    content = [w for w in words if w not in STOPWORDS and w not in NUMBER_WORDS and not w[0].isdigit()]
    if not content:
        return None
    found = [w for w in content if w in have_set or _stem(w) in have_set]
    if len(found) / len(content) < MIN_SHARE:
        absent = sorted({w for w in content if w not in found})
        return (
            f"only {len(found)} of its {len(content)} content words appear in the quoted passages "
            f"(not: {', '.join(absent[:8])})"
        )
    return None
