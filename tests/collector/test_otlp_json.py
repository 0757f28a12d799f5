"""The OTLP/JSON fast decoder gives the very spans protobuf's generic route gave, and names what is wrong.

Two oracles: a protobuf request decoded by ``otlp_proto.iter_spans`` (any request hypothesis builds, written
as OTLP/JSON the way protobuf's own JSON printer writes it, in both field-name styles and both enum
forms), and the ``json_format.ParseDict`` route the decoder replaced (on every recorded interop fixture,
on simulated traffic and on documents of any shape).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.collector.test_fuzz_otlp import VALID_JSON, json_values, otlp_shaped
from tokenpulse.collector import otlp
from tokenpulse.collector.otlp_proto import iter_spans
from tokenpulse.collector.spans import SpanView
from tokenpulse.simulate.emit import JsonLinesExporter, emit
from tokenpulse.simulate.incidents import build_scenario
from tokenpulse.simulate.traffic import generate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "interop"
_IDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def parse_dict_views(document: Any) -> list[SpanView]:
    """The route the fast decoder replaced: hex ids to base64, ParseDict, then the protobuf view."""
    document = json.loads(json.dumps(document))  # a copy: the ids are rewritten in place
    for resource_spans in document.get("resourceSpans") or document.get("resource_spans") or []:
        for scope_spans in resource_spans.get("scopeSpans") or resource_spans.get("scope_spans") or []:
            for span in scope_spans.get("spans") or []:
                for field in _IDS:
                    if isinstance(span.get(field), str) and span[field]:
                        span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()
    request = ExportTraceServiceRequest()
    json_format.ParseDict(document, request, ignore_unknown_fields=True)
    return list(iter_spans(request))


def otlp_json(request: ExportTraceServiceRequest, proto_names: bool, enum_numbers: bool) -> dict[str, Any]:
    """``request`` as OTLP/JSON: protobuf's JSON mapping with hex instead of base64 ids."""
    document = json_format.MessageToDict(
        request, preserving_proto_field_name=proto_names, use_integers_for_enums=enum_numbers
    )
    for resource_spans in document.get("resourceSpans") or document.get("resource_spans") or []:
        for scope_spans in resource_spans.get("scopeSpans") or resource_spans.get("scope_spans") or []:
            for span in scope_spans.get("spans") or []:
                for field in _IDS:
                    if field in span:
                        span[field] = base64.b64decode(span[field]).hex()
    return document


def same_views(left: list[SpanView], right: list[SpanView]) -> bool:
    """Equal views, NaN equal to NaN (a double attribute may be NaN)."""
    return _canonical(left) == _canonical(right)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, SpanView):
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        fields["events"] = [[e.name, e.time_unix_nano, e.attributes] for e in value.events]
        return _canonical(fields)
    return value


# Protobuf requests of any content hypothesis can build.
scalars = st.one_of(
    st.text(max_size=8).map(lambda s: AnyValue(string_value=s)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats(allow_nan=True).map(lambda f: AnyValue(double_value=f)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.binary(max_size=6).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)
any_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(st.text(max_size=4), children), max_size=3).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
        ),
    ),
    max_leaves=6,
)
key_values = st.lists(
    st.tuples(st.sampled_from(["gen_ai.request.model", "a", "b", ""]), any_values), max_size=4
).map(lambda kvs: [KeyValue(key=k, value=v) for k, v in kvs])
uint64 = st.integers(0, 2**64 - 1)
spans = st.builds(
    Span,
    trace_id=st.binary(max_size=16),
    span_id=st.binary(max_size=8),
    parent_span_id=st.binary(max_size=8),
    name=st.text(max_size=8),
    kind=st.integers(0, 5),
    start_time_unix_nano=uint64,
    end_time_unix_nano=uint64,
    attributes=key_values,
    events=st.lists(
        st.builds(Span.Event, time_unix_nano=uint64, name=st.text(max_size=4), attributes=key_values),
        max_size=2,
    ),
    status=st.builds(Status, code=st.integers(0, 2), message=st.text(max_size=6)),
)


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(draw(key_values))
        for _ in range(draw(st.integers(0, 2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = draw(st.text(max_size=6))
            scope_spans.spans.extend(draw(st.lists(spans, max_size=3)))
    return request


@settings(max_examples=300)
@given(request=requests(), proto_names=st.booleans(), enum_numbers=st.booleans())
def test_any_request_decodes_from_json_to_the_views_of_its_protobuf(
    request: ExportTraceServiceRequest, proto_names: bool, enum_numbers: bool
) -> None:
    body = json.dumps(otlp_json(request, proto_names, enum_numbers)).encode()
    assert same_views(otlp.decode_request(body, otlp.JSON), list(iter_spans(request)))


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("library", sorted(p.stem for p in FIXTURES.glob("*.jsonl")))
def test_recorded_interop_exports_decode_as_parse_dict_decoded_them(library: str) -> None:
    lines = _lines(FIXTURES / f"{library}.jsonl")
    assert lines
    for line in lines:
        assert same_views(otlp.decode_request(line, otlp.JSON), parse_dict_views(json.loads(line)))


def test_simulated_traffic_decodes_as_parse_dict_decoded_it(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    scenario = build_scenario("demo", datetime(2026, 1, 5, tzinfo=UTC), timedelta(minutes=20), 4)
    path = tmp_path / "traffic.jsonl"
    emit(list(generate(scenario, 60)), JsonLinesExporter(path))
    decoded = 0
    for line in _lines(path):
        views = otlp.decode_request(line, otlp.JSON)
        assert same_views(views, parse_dict_views(json.loads(line)))
        decoded += len(views)
    assert decoded > 100


def _parse_dict_or_none(document: Any) -> list[SpanView] | None:
    try:
        return parse_dict_views(document)
    except (ValueError, TypeError, AttributeError, OverflowError, json_format.ParseError, RecursionError):
        return None


@settings(max_examples=500)
@given(document=json_values | otlp_shaped)
def test_documents_parse_dict_accepted_decode_to_the_same_views(document: Any) -> None:
    """Where ParseDict made spans of a document, the fast decoder makes the same ones (it may reject
    more: a wrong type in a field tokenpulse reads is malformed either way, and it does not check the
    fields it does not read, which ParseDict did)."""
    expected = _parse_dict_or_none(document)
    try:
        views = otlp.decode_request(json.dumps(document).encode(), otlp.JSON)
    except otlp.BadRequest:
        assert expected is None
        return
    if expected is not None:
        assert same_views(views, expected)


def _with_span_field(field: str, value: Any) -> bytes:
    document = json.loads(VALID_JSON)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append(dict(spans[0], **{field: value}))
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spanId", "zz", "resourceSpans[0].scopeSpans[0].spans[1].spanId: 'zz' is not hex"),
        ("traceId", 12, "spans[1].traceId: expected a hex string, got int"),
        ("name", ["chat"], "spans[1].name: expected a string, got list"),
        ("startTimeUnixNano", "soon", "spans[1].startTimeUnixNano: 'soon' is not an integer"),
        ("endTimeUnixNano", "-1", "spans[1].endTimeUnixNano: -1 is out of range"),
        ("kind", 2.5, "spans[1].kind: expected an enum number or name, got 2.5"),
        ("attributes", {"a": 1}, "spans[1].attributes: expected a list, got dict"),
        (
            "attributes",
            [{"key": "n", "value": {"intValue": "12x"}}],
            "spans[1].attributes['n']: '12x' is not an integer",
        ),
        (
            "attributes",
            [{"key": "n", "value": {"stringValue": "a", "intValue": 1}}],
            "spans[1].attributes['n']: both stringValue and intValue set",
        ),
        ("events", [{"name": 1}], "spans[1].events[0].name: expected a string, got int"),
    ],
)
def test_a_malformed_field_is_a_400_that_says_where(field: str, value: Any, message: str) -> None:
    with pytest.raises(otlp.BadRequest) as raised:
        otlp.decode_request(_with_span_field(field, value), otlp.JSON)
    assert message in raised.value.message


def test_an_unpaired_surrogate_is_rejected_and_a_paired_one_kept() -> None:
    with pytest.raises(otlp.BadRequest, match="unpaired surrogate"):
        otlp.decode_request(_with_span_field("name", "\ud800"), otlp.JSON)
    (_, span) = otlp.decode_request(_with_span_field("name", "chat \U0001f600"), otlp.JSON)
    assert span.name == "chat \U0001f600"


def test_values_take_every_json_form_protobuf_accepts() -> None:
    attributes = [
        {"key": "int_as_number", "value": {"intValue": 7}},
        {"key": "int_as_float", "value": {"intValue": 7.0}},
        {"key": "int_as_exponent", "value": {"intValue": "1e3"}},
        {"key": "double_as_int", "value": {"doubleValue": 2}},
        {"key": "double_infinity", "value": {"doubleValue": "-Infinity"}},
        {"key": "snake", "value": {"string_value": "s"}},
        {"key": "null_value", "value": {"stringValue": None}},
        {"key": "no_value"},
        {"key": "bytes", "value": {"bytesValue": "AAE"}},  # padding optional
        {"key": "nested", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}},
    ]
    (_, span) = otlp.decode_request(_with_span_field("attributes", attributes), otlp.JSON)
    assert span.attributes == {
        "int_as_number": 7, "int_as_float": 7, "int_as_exponent": 1000, "double_as_int": 2.0,
        "double_infinity": -math.inf, "snake": "s", "null_value": None, "no_value": None, "bytes": "0001",
        "nested": {"k": True},
    }  # fmt: skip
    assert type(span.attributes["double_as_int"]) is float


@pytest.mark.parametrize(
    "document",
    [
        {"resourceSpans": [None]},
        {"resourceSpans": [{"scopeSpans": [None]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"events": [None]}]}]}]},
    ],
)
def test_found_by_fuzzing_a_null_element_of_a_repeated_field_is_400_not_a_crash(document: dict) -> None:
    # It raised AttributeError (a 500) before; protobuf's own JSON parser refuses null elements too.
    with pytest.raises(otlp.BadRequest, match="expected an object, got NoneType"):
        otlp.decode_request(json.dumps(document).encode(), otlp.JSON)


@settings(max_examples=300)
@given(document=json_values | otlp_shaped)
def test_bodies_are_parsed_as_the_json_module_parses_them(document: Any) -> None:
    """The C parser, and json for what it refuses (NaN, a number past a double, a lone surrogate): the
    same document either way."""
    body = json.dumps(document).encode()
    assert _canonical(otlp._json_document(body)) == _canonical(json.loads(body))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # A parser that read integers past 64 bits as floats would take this for -2**63 and accept it.
        ({"intValue": -(2**63) - 1}, "is out of range"),
        ({"intValue": 2**64}, "is out of range"),
        ({"doubleValue": float("nan")}, "expected a number"),  # a JSON number cannot be NaN in OTLP
    ],
)
def test_numbers_only_json_reads_are_read_exactly(value: dict[str, Any], message: str) -> None:
    body = _with_span_field("attributes", [{"key": "n", "value": value}])
    with pytest.raises(otlp.BadRequest, match=message):
        otlp.decode_request(body, otlp.JSON)
    # NaN outside the fields tokenpulse reads is ignored, as json (and ParseDict) always did.
    document = json.loads(_with_span_field("droppedAttributesCount", float("nan")))
    assert len(otlp.decode_request(json.dumps(document).encode(), otlp.JSON)) == 2
