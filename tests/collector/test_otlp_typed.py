"""The typed OTLP/JSON decoder gives exactly what the generic one gives: the same views, the same records
after normalizing, or the same error; and it is the route the usual shape actually takes.

The oracle is ``otlp_json.json_spans`` on the generic parse (itself checked against protobuf's own JSON
parser in test_otlp_json.py).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.collector.test_fuzz_otlp import json_scalars, json_values, otlp_shaped
from tests.collector.test_otlp_json import FIXTURES, _canonical, otlp_json, requests, same_views
from tests.native_blocks import read_blocks
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector import otlp, otlp_typed
from tokenpulse.collector.file_ingest import LineSettings, prepared_lines
from tokenpulse.collector.limits import DEFAULT_LIMITS
from tokenpulse.collector.normalize import NormalizeConfig, normalize_span
from tokenpulse.collector.otlp_json import json_spans
from tokenpulse.collector.pipeline import Pipeline, Prepared
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import SpanView
from tokenpulse.simulate.emit import JsonLinesExporter, emit
from tokenpulse.simulate.incidents import build_scenario
from tokenpulse.simulate.traffic import generate


def generic(body: bytes) -> list[SpanView] | str:
    """What the generic route makes of ``body``: its views, or its error message."""
    try:
        return json_spans(otlp._json_document(body), body)
    except ValueError as error:
        return str(error)
    except RecursionError:
        return "nested too deeply"  # as otlp._decode words it


def decoded(body: bytes) -> list[SpanView] | str:
    """What ``otlp.decode_request`` makes of ``body`` (typed, falling back to generic): views or error."""
    try:
        return otlp.decode_request(body, otlp.JSON)  # type: ignore[return-value]
    except otlp.BadRequest as error:
        return error.message.removeprefix("undecodable OTLP/JSON body: ")


def typed_only(body: bytes) -> list[SpanView] | None:
    """The typed route alone: its views, or None where it leaves the document to the generic route."""
    try:
        return otlp_typed._typed_spans(body)
    except (otlp_typed._Atypical, ValueError, RecursionError):  # msgspec's errors are ValueErrors
        return None


def assert_same_outcome(body: bytes) -> None:
    expected, found = generic(body), decoded(body)
    if isinstance(expected, str) or isinstance(found, str):
        assert found == expected
    else:
        assert same_views(found, expected)


def _typical_document() -> dict[str, Any]:
    """A request of the usual shape with one of every value kind, two resources and an event."""
    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "",
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": "1763700000000000000",
        "endTimeUnixNano": "1763700001000000000",
        "flags": 256,
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 100}},
            {"key": "negative", "value": {"intValue": "-12"}},
            {"key": "ratio", "value": {"doubleValue": 0.25}},
            {"key": "ratio_text", "value": {"doubleValue": "NaN"}},
            {"key": "stream", "value": {"boolValue": False}},
            {"key": "blob", "value": {"bytesValue": "AAE="}},
            {
                "key": "finish",
                "value": {"arrayValue": {"values": [{"stringValue": "stop"}, {"intValue": "2"}]}},
            },
            {
                "key": "map",
                "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}},
            },
            {"key": "empty", "value": {}},
            {"key": "missing"},
        ],
        "events": [
            {
                "name": "gen_ai.content.completion_chunk",
                "timeUnixNano": "1763700000200000000",
                "attributes": [{"key": "n", "value": {"intValue": "1"}}],
            }
        ],
        "status": {"code": 2, "message": "boom"},
    }
    http = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "0000000000000001",
        "name": "POST /chat",
        "kind": 2,
        "startTimeUnixNano": 1763700000000000000,
        "endTimeUnixNano": 1763700002000000000,
        "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
        "status": {},
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]}
    return {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [{"scope": {"name": "openai", "version": "1"}, "spans": [span, http]}],
                "schemaUrl": "https://opentelemetry.io/schemas/1.30.0",
            },
            {"scopeSpans": [{"spans": [http]}]},
        ]
    }


TYPICAL = _typical_document()


def _body(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_the_usual_shape_takes_the_typed_route_and_gives_the_generic_views() -> None:
    body = _body(TYPICAL)
    views = typed_only(body)
    assert views is not None, "the usual shape fell back to the generic route"
    assert same_views(views, generic(body))  # type: ignore[arg-type]
    assert views[0].attributes["finish"] == ["stop", 2]
    assert views[0].attributes["blob"] == "0001"
    assert views[0].trace_id == "5b8efff798038103d269b633813fc60c"  # ids lowercased, as generic does


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    place = changed
    for step in path[:-1]:
        place = place[step]
    if value is _DELETE:
        del place[path[-1]]
    else:
        place[path[-1]] = value
    return changed


_DELETE = object()
_SPAN = ("resourceSpans", 0, "scopeSpans", 0, "spans", 0)
_ATTRIBUTE = (*_SPAN, "attributes", 2)


@pytest.mark.parametrize(
    ("path", "value", "typed"),
    [
        # the odd shapes exporters write, each decoded by the route that can
        ((*_ATTRIBUTE, "value"), {"intValue": 1000}, True),  # an int as a number
        ((*_ATTRIBUTE, "value"), {"intValue": "1e3"}, True),  # as an exponent: the shared converter
        ((*_ATTRIBUTE, "value"), {"intValue": 1000.0}, False),  # as a float
        ((*_ATTRIBUTE, "value"), {"int_value": "1000"}, False),  # a proto field name
        ((*_ATTRIBUTE, "value"), {"stringValue": None}, True),  # null as absent
        ((*_ATTRIBUTE, "value"), {"stringValue": "a", "intValue": "1"}, False),  # two values: an error
        ((*_ATTRIBUTE, "value"), {"intValue": "1", "boolValue": True}, False),
        ((*_ATTRIBUTE, "value"), {"arrayValue": {"values": [{"doubleValue": 1.5, "bytesValue": ""}]}}, False),
        ((*_ATTRIBUTE, "value"), {"intValue": "12x"}, True),  # a bad integer: the generic error
        ((*_ATTRIBUTE, "value"), {"intValue": str(2**63)}, True),  # out of range
        ((*_ATTRIBUTE, "value"), {"doubleValue": "-Infinity"}, True),
        ((*_ATTRIBUTE, "value"), {"bytesValue": "AAE"}, True),  # padding optional
        ((*_ATTRIBUTE, "value"), {"bytesValue": "A"}, True),  # not base64
        ((*_ATTRIBUTE, "value"), {"arrayValue": {"values": [None]}}, False),
        ((*_ATTRIBUTE, "value"), {"kvlistValue": {"values": [{"key": "k"}]}}, True),
        ((*_ATTRIBUTE, "value"), {"kvlistValue": None}, True),
        ((*_ATTRIBUTE, "value"), "1000", False),
        ((*_ATTRIBUTE, "key"), None, False),
        ((*_SPAN, "traceId"), None, False),
        ((*_SPAN, "trace_id"), "5b8efff798038103d269b633813fc60c", False),
        ((*_SPAN, "spanId"), "zz", True),
        ((*_SPAN, "spanId"), "ee e1 9b 7e c3 c1 b1 74", True),  # fromhex takes spaces: generic did too
        ((*_SPAN, "kind"), "SPAN_KIND_CLIENT", True),
        ((*_SPAN, "kind"), "SPAN_KIND_NEW", True),  # an unknown name is the default
        ((*_SPAN, "kind"), 2.5, False),
        ((*_SPAN, "kind"), 70000, True),
        ((*_SPAN, "status"), None, True),
        ((*_SPAN, "status"), {"code": "STATUS_CODE_ERROR"}, True),
        ((*_SPAN, "status", "message"), None, False),
        ((*_SPAN, "startTimeUnixNano"), "soon", True),
        ((*_SPAN, "startTimeUnixNano"), -1, True),
        ((*_SPAN, "startTimeUnixNano"), 2**64, False),
        ((*_SPAN, "startTimeUnixNano"), _DELETE, True),
        ((*_SPAN, "attributes"), _DELETE, True),
        ((*_SPAN, "attributes"), None, False),
        ((*_SPAN, "events", 0, "timeUnixNano"), "later", True),
        ((*_SPAN, "events", 0, "time_unix_nano"), "1", False),
        ((*_SPAN, "links"), [{"traceId": 12}], True),  # unread fields are not checked, by either route
        ((*_SPAN, "droppedAttributesCount"), float("nan"), False),  # NaN: the json module's parse
        ((*_SPAN, "somethingNew"), 1, False),
        ((*_SPAN, "name"), "\ud800", False),  # an unpaired surrogate
        ((*_SPAN, "traceState"), "\udc00", False),  # in a field read by neither: the generic error
        ((*_SPAN, "links"), [{"traceState": "a\ud800b"}], False),
        ((*_SPAN, "name"), "chat \U0001f600", False),  # a paired one, written as escapes by json.dumps
        (("resourceSpans", 0, "resource"), None, True),
        (("resourceSpans", 0, "resource_spans"), [], False),
        (("resourceSpans", 0, "scopeSpans", 0, "scope"), None, True),
        (("resourceSpans", 0, "scopeSpans", 0, "scope", "name"), None, False),
    ],
)
def test_odd_shapes_give_the_generic_views_or_error(path: tuple[Any, ...], value: Any, typed: bool) -> None:
    body = _body(_set(TYPICAL, path, value))
    assert_same_outcome(body)
    if typed and not isinstance(generic(body), str):
        assert typed_only(body) is not None
    if not typed:
        assert typed_only(body) is None


def test_a_request_of_another_type_is_the_generic_error() -> None:
    for body in (b"[]", b"null", b'"x"', b"{", b"", b'{"resourceSpans": {}}', b"\xef\xbb\xbf{}"):
        assert_same_outcome(body)


def test_duplicate_keys_keep_the_last_value_by_either_route() -> None:
    body = _body(TYPICAL).replace(b'"name": "chat gpt-4o"', b'"name": "first", "name": "chat gpt-4o"')
    assert typed_only(body) is not None
    assert_same_outcome(body)


def test_deep_nesting_is_the_generic_error() -> None:
    text = '{"stringValue": "x"}'
    for _ in range(3000):
        text = '{"arrayValue": {"values": [' + text + "]}}"
    body = json.dumps(TYPICAL).replace('{"intValue": "1000"}', text).encode()
    assert decoded(body) == "nested too deeply"
    assert_same_outcome(body)


@settings(max_examples=300)
@given(request=requests(), enum_numbers=st.booleans())
def test_any_request_written_by_protobufs_json_printer_is_typed_and_the_same(
    request: ExportTraceServiceRequest, enum_numbers: bool
) -> None:
    body = _body(otlp_json(request, proto_names=False, enum_numbers=enum_numbers))
    views = typed_only(body)
    expected = generic(body)
    assert not isinstance(expected, str)
    if b"\\ud" not in body and b"\\uD" not in body:  # a surrogate pair always takes the generic route
        assert views is not None
        assert same_views(views, expected)
    assert_same_outcome(body)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


_TYPICAL_PATHS = _paths(TYPICAL)


@settings(max_examples=500)
@given(
    path=st.sampled_from(_TYPICAL_PATHS),
    value=json_scalars | json_values | otlp_shaped | st.just(_DELETE),
)
def test_a_usual_request_with_any_field_changed_gives_the_generic_outcome(
    path: tuple[Any, ...], value: Any
) -> None:
    assert_same_outcome(_body(_set(TYPICAL, path, value)))


@settings(max_examples=300)
@given(document=json_values | otlp_shaped)
def test_documents_of_any_shape_give_the_generic_outcome(document: Any) -> None:
    assert_same_outcome(_body(document))


@pytest.mark.parametrize("library", sorted(p.stem for p in FIXTURES.glob("*.jsonl")))
def test_recorded_interop_exports_give_the_generic_views(library: str) -> None:
    for line in (FIXTURES / f"{library}.jsonl").read_bytes().splitlines():
        if line.strip():
            assert_same_outcome(line)


def _records(views: list[SpanView]) -> list[Any]:
    config, pricer = NormalizeConfig(), Pricer()
    records = []
    for view in views:
        try:
            records.append(normalize_span(view, config, pricer))
        except ValueError as error:
            records.append(f"invalid: {error}")
    return _canonical(records)


def test_simulated_traffic_is_typed_and_normalizes_to_the_generic_records(tmp_path: Path) -> None:
    scenario = build_scenario("demo", datetime(2026, 1, 5, tzinfo=UTC), timedelta(minutes=30), 4)
    path = tmp_path / "traffic.jsonl"
    emit(list(generate(scenario, 60)), JsonLinesExporter(path))
    spans = calls = 0
    for line in path.read_bytes().splitlines():
        views = typed_only(line)
        assert views is not None, "simulated traffic fell back to the generic route"
        expected = generic(line)
        assert same_views(views, expected)  # type: ignore[arg-type]
        records = _records(views)
        assert records == _records(expected)  # type: ignore[arg-type]
        spans += len(views)
        calls += sum(1 for r in records if isinstance(r, dict) and "provider" in r)
    assert spans > 500 and calls > 100


def _proto_names(line: bytes) -> bytes:
    """The same request with the spans' ids under their proto field names: the generic route's."""
    document = json.loads(line)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for json_name, proto_name in (("traceId", "trace_id"), ("spanId", "span_id")):
                    span[proto_name] = span.pop(json_name)
    return _body(document)


def _stored_rows(tmp_path: Path, name: str, lines: list[bytes], workers: int) -> list[tuple[bytes, bytes]]:
    """The rows of every line as `tokenpulse ingest --workers N` appends them to the log."""
    pipeline = Pipeline(WriteAheadLog(tmp_path / name), NormalizeConfig(), Pricer({}), DEFAULT_LIMITS)
    settings = LineSettings(NormalizeConfig(), {}, DEFAULT_LIMITS, tenant="acme")
    numbered = [(number, line, 0) for number, line in enumerate(lines, start=1)]
    for _, prepared in prepared_lines(numbered, settings, workers):
        assert isinstance(prepared, Prepared)
        assert pipeline.commit_prepared(prepared, "file", "acme") is not None
    wal = pipeline.wal
    assert wal is not None
    return [(frame.calls, frame.tool_spans) for frame in wal.read(wal.oldest, wal.durable_end)]


def test_workers_store_from_typed_lines_what_one_process_stores_from_generic_ones(tmp_path: Path) -> None:
    scenario = build_scenario("demo", datetime(2026, 1, 5, tzinfo=UTC), timedelta(minutes=20), 2)
    path = tmp_path / "traffic.jsonl"
    emit(list(generate(scenario, 30)), JsonLinesExporter(path))
    lines = [line for line in path.read_bytes().splitlines() if line.strip()] + [_body(TYPICAL)]
    generic_lines = [_proto_names(line) for line in lines]
    assert all(typed_only(line) is not None for line in lines)
    assert all(typed_only(line) is None for line in generic_lines)

    rows = _stored_rows(tmp_path, "typed", lines, workers=2)
    assert rows == _stored_rows(tmp_path, "generic", generic_lines, workers=1)
    assert sum(len(read_blocks(calls)) for calls, _ in rows) > 50  # calls were stored
