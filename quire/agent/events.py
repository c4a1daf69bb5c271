"""The events the agent loop writes to its run's log (beside the runtime's own): what a client
following a run over SSE, the console's timeline and the metrics read."""

from __future__ import annotations

import enum


class AgentEventType(enum.StrEnum):
    model_call = "model.call"  # a model call completed: target, model, usage, cost, latency
    model_fallback = "model.fallback"  # a target failed and the route moved on: target, outcome
    model_delta = "model.delta"  # a streamed piece of the answer: text, seq, attempt
    # The text streamed so far for the step is void (its attempt failed, or its target failed
    # mid-stream and the route falls back): seq, attempt, target, error. Clients drop it.
    model_retry = "model.retry"
    tool_call = "tool.call"  # the model asked for a tool: id, name, arguments
    tool_result = "tool.result"  # a tool answered: id, name, sources or error
    tools_found = "tools.found"  # find_tools answered: query, names
    tools_loaded = "tools.loaded"  # tools loaded into the next turn: names, evicted, loaded
    answer = "answer"  # the final answer: text, citations
    answer_missing = "answer.missing"  # the loop ended without an answer: reason
