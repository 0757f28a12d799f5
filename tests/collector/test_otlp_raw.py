"""A protobuf body gives the same span views through RawTraceRequest (attribute values left as bytes)
as through the generated classes, whatever its attribute values hold."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.otlp_builders import (
    ANY_VALUES,
    export_request,
    llm_span,
    otlp_json_to_protobuf,
    spans_kept_by_name,
)
from tokenpulse.collector import otlp_raw
from tokenpulse.collector.normalize import ENGINE
from tokenpulse.collector.otlp import PROTOBUF, BadRequest, decode_request
from tokenpulse.collector.otlp_proto import iter_raw_spans, iter_spans
from tokenpulse.collector.otlp_raw import RawTraceRequest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "interop"


def _views(body: bytes) -> tuple[list, list]:
    decode_request(body, PROTOBUF)  # accepted (a pure build then reads it as a RawTraceRequest)
    raw = RawTraceRequest.FromString(body)
    return list(iter_spans(raw)), list(iter_spans(ExportTraceServiceRequest.FromString(body)))


def test_every_kind_of_value_reads_alike() -> None:
    span = llm_span(**{"gen_ai.request.model": "gpt-4o"})
    for n, value in enumerate(ANY_VALUES):
        span.attributes.append(KeyValue(key=f"k{n}", value=value))
    event = span.events.add(name="gen_ai.evaluation.result", time_unix_nano=1)
    event.attributes.extend(KeyValue(key=f"e{n}", value=value) for n, value in enumerate(ANY_VALUES))
    for _ in range(2):  # the second time from the memo
        raw, generated = _views(export_request(span).SerializeToString())
        assert raw == generated
        assert type(raw[0].attributes["k11"]) is bool and type(raw[0].attributes["k4"]) is int


def test_a_remembered_array_is_a_list_of_each_span_its_own() -> None:
    reasons = AnyValue()
    reasons.array_value.values.extend([AnyValue(string_value="stop"), AnyValue(bool_value=True)])
    spans = []
    for _ in range(2):  # the second time from the memo of arrays
        span = llm_span(**{"gen_ai.request.model": "gpt-4o"})
        span.attributes.append(KeyValue(key="gen_ai.response.finish_reasons", value=reasons))
        raw, generated = _views(export_request(span).SerializeToString())
        assert raw == generated
        spans.append(raw[0])
    first, second = (s.attributes["gen_ai.response.finish_reasons"] for s in spans)
    assert first == second == ["stop", True] and first is not second
    first.append("changed")  # a list a span holds is its own
    (again,) = _views(export_request(span).SerializeToString())[0]
    assert again.attributes["gen_ai.response.finish_reasons"] == ["stop", True]


def test_a_long_value_is_read_and_not_kept() -> None:
    prompt = "Summarize the ticket: " + "x" * 4000  # an instrumentation recording the prompt itself
    span = llm_span(**{"gen_ai.prompt.0.content": prompt, "gen_ai.request.model": "gpt-4o"})
    raw, generated = _views(export_request(span).SerializeToString())
    assert raw == generated and raw[0].attributes["gen_ai.prompt.0.content"] == prompt
    assert "gpt-4o" in otlp_raw._memo.values()
    assert prompt not in otlp_raw._memo.values()


def test_nan_reads_as_nan() -> None:
    span = llm_span(**{"x": 1})
    span.attributes.append(KeyValue(key="x", value=AnyValue(double_value=float("nan"))))
    raw, _ = _views(export_request(span).SerializeToString())
    assert math.isnan(raw[0].attributes["x"])


def test_a_repeated_key_keeps_its_last_value() -> None:
    span = llm_span()
    span.attributes.append(KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="o3")))
    raw, generated = _views(export_request(span).SerializeToString())
    assert raw == generated and raw[0].attributes["gen_ai.request.model"] == "o3"


def _with_raw_value(key: str, value: bytes) -> bytes:
    """A request of one LLM span carrying ``key`` with ``value`` as its AnyValue's encoding."""
    request = RawTraceRequest.FromString(export_request(llm_span()).SerializeToString())
    request.resource_spans[0].scope_spans[0].spans[0].attributes[key] = value
    return request.SerializeToString()  # type: ignore[no-any-return]


def test_an_any_value_with_two_fields_keeps_the_last() -> None:
    # Two members of the oneof on the wire: the last one wins, by either route.
    two = AnyValue(string_value="a").SerializeToString() + AnyValue(int_value=7).SerializeToString()
    raw, generated = _views(_with_raw_value("both", two))
    assert raw == generated and raw[0].attributes["both"] == 7


def test_an_invalid_string_inside_an_attribute_is_still_refused() -> None:
    # The raw parse does not look inside a value; the generated classes' parse still refuses the body.
    body = _with_raw_value("bad", b"\x0a\x02\xff\xfe")  # string_value of invalid UTF-8
    RawTraceRequest.FromString(body)
    with pytest.raises(BadRequest):
        decode_request(body, PROTOBUF)


def _generated_keep(limit: int) -> Callable[[Span, str], bool]:
    """The prefilter's ``keep`` on the generated classes, with the attribute limit counted on distinct
    keys (a repeated key is one entry of the view's dict the limit is checked on)."""

    def keep(span: Span, scope_name: str) -> bool:
        return len({kv.key for kv in span.attributes}) > limit or ENGINE.prefilter.keep(span, scope_name)

    return keep


def test_the_inlined_prefilter_keeps_what_the_filter_keeps() -> None:
    # iter_raw_spans (the ingest path) against iter_spans of the generated classes with the prefilter's
    # keep and the attribute limit, on every span of the real captures, with a limit some of them exceed.
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            body = otlp_json_to_protobuf(line).SerializeToString()
            keyed = RawTraceRequest.FromString(body)
            generated = ExportTraceServiceRequest.FromString(body)
            for max_keys in (128, 4):
                inlined = list(iter_raw_spans(keyed, ENGINE.prefilter, max_keys))
                assert inlined == list(iter_spans(generated, _generated_keep(max_keys)))


def test_the_inlined_prefilter_keeps_by_name_and_by_an_implied_call_scope() -> None:
    # Spans none of whose keys claims them: kept by a rule's name or prefix, or as an ERROR span under
    # an implied-call scope (not an OK one, nor an ERROR one under another scope).
    prefilter = ENGINE.prefilter
    request = spans_kept_by_name(prefilter)
    keyed = RawTraceRequest.FromString(request.SerializeToString())
    inlined = list(iter_raw_spans(keyed, prefilter, 128))
    assert inlined == list(iter_spans(request, _generated_keep(128)))
    assert [(v.scope_name, v.name) for v in inlined if v.name == "GET /"] == [
        (f"{s}openai", "GET /") for s in prefilter.implied_scopes
    ]
