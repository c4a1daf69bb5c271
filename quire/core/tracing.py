"""OpenTelemetry traces, off unless an exporter is configured (no network is needed to run).

A request's trace continues into the worker that runs what it started: the run keeps the
W3C `traceparent` of the request that created it, and each advance of the run is a span of
that trace, with a span per step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("quire")
_configured = False


def configure_tracing(*, exporter: str, endpoint: str, service: str) -> None:
    """exporter: "" (off), "console", or "otlp" (OTLP over HTTP to `endpoint`)."""
    global _configured
    if not exporter or _configured:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            logger.error(
                "QUIRE_OTEL_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http; tracing is off"
            )
            return
        span_exporter = OTLPSpanExporter(endpoint=endpoint or None)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span_from(traceparent: str | None, name: str, **attributes: Any) -> Iterator[Any]:
    """A span continuing the trace named by `traceparent` (a new trace when there is none)."""
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else otel_context.get_current()
    with tracer.start_as_current_span(name, context=parent, attributes=attributes) as span:
        yield span


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current
