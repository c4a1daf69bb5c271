"""Context discipline: the prompt stays inside the target's token budget.

- Turns are kept whole: an assistant message with tool calls and the results of those calls form
  one unit, so compaction never separates a call from its result.
- When the history would not fit, the oldest units become one summary message (deterministic,
  quoting what each call asked and the start of what it got), placed after the question; the
  system prompt (with its pinned facts) and the question are never compacted.
- A tool result longer than a limit is cut, with a handle the model can pass to `read_result`.
- The system prompt and the order of the core tools never change between turns, so providers'
  prompt caches keep working; tools loaded later are appended after them.

Token counts are estimated (about four characters a token, plus a little per message): exact
counts differ by provider, and a margin of the budget absorbs the difference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from quire.agent.messages import Message, Role, ToolSpec

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
RESULT_LIMIT_CHARS = 6000
SUMMARY_QUOTE_CHARS = 160


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_tokens(message: Message) -> int:
    tokens = MESSAGE_OVERHEAD + estimate_tokens(message.content)
    for call in message.tool_calls:
        tokens += estimate_tokens(call.name) + estimate_tokens(json.dumps(call.arguments)) + MESSAGE_OVERHEAD
    return tokens


def tools_tokens(tools: Sequence[ToolSpec]) -> int:
    return sum(estimate_tokens(json.dumps(t.model_dump())) for t in tools)


def units(history: Sequence[Message]) -> list[list[Message]]:
    """The history after the system prompt and the question, in unbreakable units."""
    grouped: list[list[Message]] = []
    for message in history:
        if message.role == Role.tool and grouped and grouped[-1][0].role == Role.assistant:
            grouped[-1].append(message)
        else:
            grouped.append([message])
    return grouped


def _summary_line(unit: list[Message]) -> list[str]:
    head = unit[0]
    if head.role == Role.assistant and head.tool_calls:
        results = {m.tool_call_id: m for m in unit[1:]}
        lines = []
        for call in head.tool_calls:
            result = results.get(call.id)
            got = (result.content if result else "").strip().replace("\n", " ")
            arguments = json.dumps(call.arguments, ensure_ascii=False)[:200]
            lines.append(f"- called {call.name}({arguments}) -> {_clip(got)}")
        return lines
    return (
        [f"- {head.role.value} said: {_clip(head.content.strip().replace(chr(10), ' '))}"]
        if head.content
        else []
    )


def _clip(text: str) -> str:
    return text[:SUMMARY_QUOTE_CHARS] + ("…" if len(text) > SUMMARY_QUOTE_CHARS else "")


def summarise(dropped: Sequence[list[Message]], *, budget_tokens: int) -> Message:
    """One message standing for the dropped units: the newest ones line by line, within budget."""
    header = "Summary of earlier steps of this task (older turns were compacted to save space):"
    lines: list[str] = []
    used = estimate_tokens(header) + MESSAGE_OVERHEAD
    omitted = 0
    for index in range(len(dropped) - 1, -1, -1):
        unit_lines = _summary_line(dropped[index])
        cost = sum(estimate_tokens(line) + 1 for line in unit_lines)
        if used + cost > budget_tokens - 12:
            omitted = index + 1
            break
        lines = unit_lines + lines
        used += cost
    if omitted:
        lines.insert(0, f"- ({omitted} earlier steps are not shown)")
    return Message.user("\n".join([header, *lines]))


def _shrink(unit: list[Message], room: int) -> list[Message]:
    """The unit with its tool results cut so that it fits `room` tokens (calls stay whole)."""
    results = [m for m in unit if m.role == Role.tool]
    if not results:
        return unit
    fixed = sum(message_tokens(m) for m in unit if m.role != Role.tool) + MESSAGE_OVERHEAD * len(results)
    share = max(8, (room - fixed) // len(results))
    return [
        m.model_copy(
            update={"content": m.content[: share * CHARS_PER_TOKEN - 40] + " [cut to fit the context]"}
        )
        if m.role == Role.tool and message_tokens(m) > share
        else m
        for m in unit
    ]


def fit(history: Sequence[Message], *, tools: Sequence[ToolSpec], budget_tokens: int) -> list[Message]:
    """The messages to send: all of them if they fit, else the newest whole units and a summary."""
    system = [m for m in history[:1] if m.role == Role.system]
    rest = list(history[len(system) :])
    question, rest = rest[:1], rest[1:]
    fixed = sum(message_tokens(m) for m in system + question) + tools_tokens(tools)
    grouped = units(rest)
    if fixed + sum(message_tokens(m) for unit in grouped for m in unit) <= budget_tokens:
        return list(history)
    room = budget_tokens - fixed
    summary_budget = max(40, room // 4)
    kept: list[list[Message]] = []
    used = 0
    for unit in reversed(grouped):
        size = sum(message_tokens(m) for m in unit)
        if used + size > room - summary_budget:
            if not kept:  # the newest unit is always sent, cut down if it must be
                kept.insert(0, _shrink(unit, room - summary_budget))
            break
        kept.insert(0, unit)
        used += size
    dropped = grouped[: len(grouped) - len(kept)]
    summary = summarise(dropped, budget_tokens=summary_budget)
    return [*system, *question, summary, *(m for unit in kept for m in unit)]


def truncate_result(content: str, *, handle: str, limit: int = RESULT_LIMIT_CHARS) -> str:
    """A tool result cut to `limit` characters, telling the model how to read on."""
    if len(content) <= limit:
        return content
    return (
        content[:limit] + f"\n[truncated: {len(content) - limit} more characters; "
        f"call read_result(handle='{handle}', offset={limit})]"
    )
