"""The pre-filter: spans that cannot be calls, tools or agents are dropped before their attributes are
decoded, and no span of any dialect that normalization would keep (or reject) is ever dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector.test_fuzz_normalize import CONFIG, PRICER, normalized, spans
from tests.otlp_builders import export_request, llm_span, otlp_json_line, otlp_json_to_protobuf, span_with
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector import otlp, otlp_proto
from tokenpulse.collector import pipeline as pipeline_module
from tokenpulse.collector.limits import Limits
from tokenpulse.collector.normalize import ENGINE, InvalidSpan, NormalizeConfig, normalize_span
from tokenpulse.collector.otlp_proto import iter_spans
from tokenpulse.collector.pipeline import Pipeline
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import SpanView

FIXTURES = Path(__file__).parent.parent / "fixtures" / "interop"
PREFILTER = ENGINE.prefilter


def fixture_spans(path: Path) -> list[tuple[Span, str, SpanView]]:
    """Every span of a capture: (protobuf span, its scope name, its decoded view)."""
    found = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        # The captures are OTLP/JSON; the pre-filter sees protobuf spans (the JSON path decodes in full).
        request = otlp_json_to_protobuf(line)
        views = iter(iter_spans(request))
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for proto in scope_spans.spans:
                    found.append((proto, scope_spans.scope.name, next(views)))
    return found


def matters(view: SpanView) -> bool:
    """Normalization keeps the span (call, tool or agent) or rejects it: either way it must reach it."""
    try:
        return normalize_span(view, NormalizeConfig(), Pricer()) is not None
    except InvalidSpan:
        return True


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.jsonl")), ids=lambda p: p.stem)
def test_every_llm_tool_and_agent_span_of_the_real_captures_passes(path: Path) -> None:
    captured = fixture_spans(path)
    kept = [view for proto, scope, view in captured if PREFILTER.keep(proto, scope)]
    needed = [view for _, _, view in captured if matters(view)]
    assert needed, "the capture holds calls"
    assert {v.span_id for v in needed} <= {v.span_id for v in kept}
    for proto, scope, view in captured:
        assert PREFILTER.keep(proto, scope) == PREFILTER.keeps_view(view)


def test_the_captures_hold_spans_the_filter_drops() -> None:
    """Not vacuous: the app and HTTP spans around the calls are dropped undecoded."""
    captured = [s for path in sorted(FIXTURES.glob("*.jsonl")) for s in fixture_spans(path)]
    dropped = [view.name for proto, scope, view in captured if not PREFILTER.keep(proto, scope)]
    assert len(dropped) >= len(captured) // 3
    assert any(name.startswith(("POST", "GET", "scenario")) for name in dropped)


def as_proto(view: SpanView) -> Span:
    """The protobuf span of a view, attribute keys as they are (values: only their keys matter here)."""
    proto = Span(name=view.name)
    proto.status.code = view.status_code  # type: ignore[assignment]
    proto.attributes.extend(KeyValue(key=k, value=AnyValue(string_value="x")) for k in view.attributes)
    return proto


@given(span=spans())
def test_a_span_the_filter_drops_is_one_normalization_ignores(span: SpanView) -> None:
    if not PREFILTER.keeps_view(span):
        assert normalized(span) is None
        assert normalize_span(span, CONFIG, PRICER) is None  # not even rejected
    assert PREFILTER.keep(as_proto(span), span.scope_name) == PREFILTER.keeps_view(span)


@pytest.mark.parametrize(
    ("name", "scope", "attributes", "status"),
    [
        ("execute_tool search", "", {}, 0),  # the span name alone makes a tool
        ("invoke_agent planner", "", {}, 0),
        ("agent run", "pydantic-ai", {}, 0),
        ("chat claude-sonnet-4-5", "openlit.instrumentation.anthropic", {}, 2),  # a failed OpenLIT call
        ("x", "", {"gen_ai.request.model": "gpt-4o"}, 0),  # model (+ usage) makes a call
        ("x", "", {"tool.name": "search"}, 0),
        ("x", "", {"ai.operationId": "ai.toolCall"}, 0),
    ],
)
def test_what_can_make_a_call_tool_or_agent_passes(
    name: str, scope: str, attributes: dict[str, Any], status: int
) -> None:
    proto = span_with(attributes)
    proto.name = name
    proto.status.code = status  # type: ignore[assignment]
    assert PREFILTER.keep(proto, scope)


def test_http_db_and_queue_spans_are_dropped() -> None:
    for attributes in (
        {"http.request.method": "GET", "url.full": "https://api.openai.com/v1/models", "server.port": 443},
        {"db.system": "postgresql", "db.query.text": "SELECT 1"},
        {"messaging.system": "kafka", "messaging.destination.name": "jobs"},
    ):
        assert not PREFILTER.keep(span_with(attributes), "opentelemetry.instrumentation.httpx")
    # An HTTP span of an OpenLIT app that did not fail is not a call either.
    assert not PREFILTER.keep(span_with({"http.request.method": "POST"}), "openlit.instrumentation.anthropic")


def test_pipeline_counts_dropped_spans_as_ignored_without_decoding_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    real = otlp_proto.attributes_dict

    def counting(attributes: Any) -> dict[str, Any]:
        decoded.append(len(attributes))
        return real(attributes)

    monkeypatch.setattr(otlp_proto, "attributes_dict", counting)
    http = [span_with({"http.request.method": "GET", "http.response.status_code": 200}) for _ in range(9)]
    request = export_request(llm_span(), *http)
    pipeline = Pipeline(WriteAheadLog(tmp_path), NormalizeConfig(), Pricer())
    result = pipeline.ingest(request, "test")
    assert (result.calls, result.ignored, result.rejected) == (1, 9, 0)
    assert len(decoded) == 2  # the resource and the one LLM span: no HTTP span was decoded
    pipeline.wal.close()


def test_a_non_llm_span_over_the_attribute_limit_is_still_rejected(tmp_path: Path) -> None:
    limits = Limits(max_attributes_per_span=3)
    pipeline = Pipeline(WriteAheadLog(tmp_path), NormalizeConfig(), Pricer(), limits)
    noisy = span_with({f"http.header.{i}": "v" for i in range(5)})
    result = pipeline.ingest(export_request(noisy), "test")
    assert (result.rejected, result.ignored) == (1, 0)
    assert "over the limit of 3" in result.message
    pipeline.wal.close()


def test_json_requests_count_dropped_spans_as_ignored_without_normalizing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTLP/JSON spans are decoded (and checked) whole, then filtered as protobuf spans are."""
    normalized_names: list[str] = []
    real = pipeline_module.normalize_span

    def counting(span: SpanView, *args: Any) -> Any:
        normalized_names.append(span.name)
        return real(span, *args)

    monkeypatch.setattr(pipeline_module, "normalize_span", counting)
    http = [span_with({"http.request.method": "GET", "http.response.status_code": 200}) for _ in range(9)]
    for span in http:
        span.name = "GET /"
    body = otlp_json_line(llm_span(), *http).encode()
    pipeline = Pipeline(WriteAheadLog(tmp_path), NormalizeConfig(), Pricer())
    result = pipeline.ingest(otlp.decode_request(body, otlp.JSON), "test")
    assert (result.calls, result.ignored, result.rejected) == (1, 9, 0)
    assert normalized_names == ["chat gpt-4o"]
    pipeline.wal.close()
    # A malformed span is a malformed request, whatever the span is about.
    document = json.loads(body)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "zz"
    with pytest.raises(otlp.BadRequest, match=r"spans\[1\].traceId: 'zz' is not hex"):
        otlp.decode_request(json.dumps(document).encode(), otlp.JSON)
