"""The offline extractive provider: the default when no model is configured.

It is not a language model and says so. It drives the same loop with real tool calls: first it
searches the documents and recalls memory for the question, then reads the section of the best
passage, then answers with the sentences of what it found that best match the question, quoted
word for word, each with its citation number. Deterministic: the same inputs give the same answer.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, ClassVar

from quire.agent.messages import Completion, CompletionRequest, FinishReason, Message, Role, ToolCall, Usage
from quire.agent.providers.base import DeltaCallback, Provider

DISCLAIMER = (
    "Extractive answer: no language model is configured, so these are quoted passages, not a summary."
)
STOP = set(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "may",
        "might",
        "must",
        "i",
        "you",
        "we",
        "they",
        "he",
        "she",
        "my",
        "our",
        "your",
        "their",
        "there",
        "here",
        "from",
        "as",
        "about",
        "into",
        "than",
        "then",
        "so",
        "not",
        "no",
        "yes",
    ]
)
SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|(?=\n)|$)")


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP and len(w) > 1]


def stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


class OfflineProvider(Provider):
    name: ClassVar[str] = "offline"
    default_base_url: ClassVar[str] = "offline://"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(api_key=None, base_url="offline://")

    def complete(self, request: CompletionRequest, *, on_delta: DeltaCallback | None = None) -> Completion:
        question = next((m.content for m in reversed(request.messages) if m.role == Role.user), "")
        available = {tool.name for tool in request.tools}
        called = [call.name for m in request.messages if m.role == Role.assistant for call in m.tool_calls]
        results = [m for m in request.messages if m.role == Role.tool]
        message = self._next_message(question, available, called, results)
        if on_delta is not None and message.content:
            for piece in re.findall(r"\S+\s*", message.content):
                on_delta_text(on_delta, piece)
        prompt_chars = sum(len(m.content) for m in request.messages) + sum(
            len(t.description) for t in request.tools
        )
        return Completion(
            message=message,
            usage=Usage(input_tokens=prompt_chars // 4, output_tokens=len(message.content) // 4),
            finish_reason=FinishReason.tool_calls if message.tool_calls else FinishReason.stop,
            model="extractive",
            provider=self.name,
        )

    def _next_message(
        self, question: str, available: set[str], called: list[str], results: list[Message]
    ) -> Message:
        turn = len([name for name in called if name in ("search_content", "recall_memory")])
        if turn == 0:
            calls = [
                ToolCall(id=f"call_{name}_1", name=name, arguments={"query": question})
                for name in ("search_content", "recall_memory")
                if name in available
            ]
            if calls:
                return Message.assistant(tool_calls=calls)
        if "read_section" in available and "read_section" not in called:
            best = self._best_content_hit(results)
            if best is not None:
                return Message.assistant(
                    tool_calls=[ToolCall(id="call_read_section_1", name="read_section", arguments=best)]
                )
        return Message.assistant(self._answer(question, results))

    @staticmethod
    def _best_content_hit(results: list[Message]) -> dict[str, Any] | None:
        for message in results:
            for citation in message.metadata.get("quire", {}).get("citations", []):
                if citation.get("kind") == "content" and citation.get("element_ids"):
                    return {"document_id": citation["document_id"], "element_id": citation["element_ids"][0]}
        return None

    def _answer(self, question: str, results: list[Message]) -> str:
        numbered: list[tuple[int, dict[str, Any]]] = []
        for message in results:
            for citation in message.metadata.get("quire", {}).get("citations", []):
                numbered.append((int(citation.get("ref", len(numbered) + 1)), citation))
        if not numbered:
            return f"{DISCLAIMER}\n\nI found nothing about this in the documents or in approved memory."
        query = Counter(stem(w) for w in words(question))
        documents = [[stem(w) for w in words(str(c.get("quote", "")))] for _, c in numbered]
        frequency = Counter(w for doc in documents for w in set(doc))
        # A sentence found twice (an approved memory quotes the passage search found too) is
        # cited once, from its best-scored source: the memory, thanks to its bonus.
        best_of: dict[str, tuple[float, int, str]] = {}
        for (ref, citation), _ in zip(numbered, documents, strict=True):
            bonus = 0.25 if citation.get("kind") == "memory" else 0.0
            for match in SENTENCE.finditer(str(citation.get("quote", ""))):
                sentence = match.group(0).strip()
                key = sentence.lower()
                if len(sentence) < 12:
                    continue
                terms = [stem(w) for w in words(sentence)]
                overlap = sum(
                    math.log(1 + len(documents) / frequency.get(t, 1)) for t in set(terms) if t in query
                )
                if overlap > 0 and (key not in best_of or overlap + bonus > best_of[key][0]):
                    best_of[key] = (overlap + bonus, ref, sentence)
        scored = sorted(best_of.values(), key=lambda item: (-item[0], item[1]))
        best = scored[:3]
        if not best:
            return (
                f"{DISCLAIMER}\n\nThe passages I found do not mention {question!r} directly; see the sources."
            )
        lines = [DISCLAIMER, ""]
        lines += [f'- "{sentence}" [{ref}]' for _, ref, sentence in best]
        return "\n".join(lines)


def on_delta_text(callback: DeltaCallback, text: str) -> None:
    from quire.agent.messages import Delta

    callback(Delta(text=text))
