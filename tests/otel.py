"""OpenTelemetry for the tracing tests: the SDK's tracer provider, set once per process (the
global provider can only be set once), and a fixture that collects the spans of one test.

Spans are only kept while a test that asks for `spans` runs; other tests in the same process
make spans too once the provider is set (it cannot be unset), and those are dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["Spans", "by_kind", "spans_fixture"]


class Spans(InMemorySpanExporter):
    """The in-memory exporter, keeping spans only while `active`."""

    active = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.active:
            return SpanExportResult.SUCCESS
        return super().export(spans)

    def named(self, name: str) -> list[ReadableSpan]:
        """The finished spans called `name`."""
        return [span for span in self.get_finished_spans() if span.name == name]


@functools.cache
def installed() -> Spans:
    """Set the SDK's provider as the global one (once) and return its exporter."""
    exporter = Spans()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another tracer provider was set first"
    return exporter


@pytest.fixture(name="spans")
def spans_fixture() -> Iterator[Spans]:
    """The spans finished during this test (the SDK's provider is global from then on)."""
    exporter = installed()
    exporter.clear()
    exporter.active = True
    yield exporter
    exporter.active = False
    exporter.clear()


def by_kind(finished: Sequence[ReadableSpan], kind: Any) -> list[ReadableSpan]:
    """The spans of one SpanKind."""
    return [span for span in finished if span.kind is kind]
