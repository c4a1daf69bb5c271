"""Extractors propose memories from documents; every proposal quotes the passage it comes from.

The deterministic extractor works offline: definitions ("X is a …", "X means …"), rules and
procedures ("must", "shall", "is required", "may not" …) and facts that carry a figure or a date.
Its subject keys leave out figures, so a changed figure in a new version of a document lands in
the same slot and is proposed as a supersede. Other extractors (an LLM one, when a provider is
configured) register themselves under their own name; the extractor of each proposal is recorded.
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from quire.memory.models import MemoryKind

NUMBER_WORDS = {
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "hundred",
    "thousand",
    "million",
    "half",
    "first",
    "second",
    "third",
    "once",
    "twice",
}
STOP_WORDS = {
    "a",
    "an",
    "the",
    "is",
    "are",
    "be",
    "to",
    "of",
    "and",
    "or",
    "for",
    "in",
    "on",
    "at",
    "by",
    "with",
    "must",
    "shall",
    "should",
    "may",
    "not",
    "can",
    "will",
    "all",
    "any",
    "each",
    "every",
    "this",
    "that",
    "it",
    "its",
    "their",
    "our",
    "your",
    "from",
    "as",
    "than",
    "within",
    "most",
    "least",
    "no",
}
RULE = re.compile(
    r"\b(must|shall|is required|are required|required to|may not|must not|need to|needs to|"
    r"is prohibited|are prohibited|is not allowed|are not allowed|is mandatory|should)\b",
    re.IGNORECASE,
)
DEFINITION = re.compile(
    r"^(?:an?\s+|the\s+)?(?P<term>[A-Z][\w&/\- ]{1,60}?)\s+(?:is|are|means|refers to|is defined as)\s+"
    r"(?:an?|the|any|every)\s+\S",
)
FIGURE = re.compile(
    r"\b\d[\d,.:]*\b|\b(january|february|march|april|may|june|july|august|september|october|"
    r"november|december)\b|\b(" + "|".join(sorted(NUMBER_WORDS)) + r")\b",
    re.IGNORECASE,
)
SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
MAX_CANDIDATES = 25
TEXT_TYPES = {"narrative_text", "list_item", "uncategorized_text", "text"}


@dataclass(frozen=True)
class Passage:
    element_id: uuid.UUID
    type: str
    text: str
    section_path: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    text: str
    kind: MemoryKind
    subject_key: str | None
    element_id: uuid.UUID
    quote: str  # an exact substring of the element's text
    confidence: float


class Extractor(ABC):
    """Turns a document's passages into candidate memories, each with its quote."""

    name: str
    version: str

    @abstractmethod
    def extract(self, *, title: str, passages: Sequence[Passage]) -> list[Candidate]: ...


def subject_key(sentence: str, section_path: Sequence[str]) -> str:
    """The slot a statement fills: its section and its words, without figures."""
    words = [
        w
        for w in re.findall(r"[a-z][a-z'\-]+", sentence.lower())
        if w not in STOP_WORDS and w not in NUMBER_WORDS and not FIGURE.fullmatch(w)
    ]
    section = " / ".join(s.lower() for s in section_path[-2:])
    return (f"{section}: " if section else "") + " ".join(words[:8])


class RuleExtractor(Extractor):
    name = "rules"
    version = "1"

    def extract(self, *, title: str, passages: Sequence[Passage]) -> list[Candidate]:
        found: list[Candidate] = []
        seen: set[str] = set()
        for passage in passages:
            if passage.type not in TEXT_TYPES:
                continue
            for match in SENTENCE.finditer(passage.text):
                sentence = match.group(0).strip()
                if len(sentence) < 25 or len(sentence) > 400 or sentence.lower() in seen:
                    continue
                candidate = self._classify(sentence, passage)
                if candidate is not None:
                    seen.add(sentence.lower())
                    found.append(candidate)
                if len(found) >= MAX_CANDIDATES:
                    return found
        return found

    def _classify(self, sentence: str, passage: Passage) -> Candidate | None:
        definition = DEFINITION.match(sentence)
        if definition is not None:
            term = definition.group("term").strip().lower()
            return Candidate(
                sentence, MemoryKind.fact, f"definition: {term}", passage.element_id, sentence, 0.8
            )
        if RULE.search(sentence):
            return Candidate(
                sentence,
                MemoryKind.procedure,
                subject_key(sentence, passage.section_path),
                passage.element_id,
                sentence,
                0.7,
            )
        if FIGURE.search(sentence) and re.search(
            r"\b(is|are|was|were|has|have|costs?|takes?|lasts?)\b", sentence
        ):
            return Candidate(
                sentence,
                MemoryKind.fact,
                subject_key(sentence, passage.section_path),
                passage.element_id,
                sentence,
                0.5,
            )
        return None


extractors: dict[str, Extractor] = {RuleExtractor.name: RuleExtractor()}
preferred: list[str] = []  # names of extractors to use before the rules (an LLM one, when configured)


def active_extractor() -> Extractor:
    for name in preferred:
        if name in extractors:
            return extractors[name]
    return extractors[RuleExtractor.name]
