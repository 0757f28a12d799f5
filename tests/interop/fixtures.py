"""The captured interop fixtures (`tests/fixtures/interop/<library>.jsonl`, written by
`python -m tests.interop.capture`) read back as the collector reads a request."""

from __future__ import annotations

from pathlib import Path

from tokenpulse.collector.otlp import JSON, decode_request
from tokenpulse.collector.otlp_proto import iter_spans
from tokenpulse.collector.spans import SpanView

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "interop"


def fixture_spans(library: str) -> list[SpanView]:
    """Every span ``library`` exported in the interop run, decoded as the collector decodes it."""
    lines = (FIXTURES / f"{library}.jsonl").read_bytes().splitlines()
    return [span for line in lines if line.strip() for span in iter_spans(decode_request(line, JSON))]
