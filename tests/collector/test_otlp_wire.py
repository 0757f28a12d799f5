"""The wire walk (otlp_wire) gives the very views the generated classes and iter_raw_spans give of the
same body, with the same spans kept by the prefilter, whatever the body's fields, their order, repetitions
and unknown fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.compiled import is_compiled, source_module
from tests.otlp_builders import (
    ANY_VALUES,
    export_request,
    fixed64,
    integer,
    llm_span,
    message,
    otlp_json_to_protobuf,
    span_with,
    spans_kept_by_name,
    tag,
    text,
)
from tokenpulse.collector import otlp_wire
from tokenpulse.collector.limits import check_span_count
from tokenpulse.collector.normalize import ENGINE
from tokenpulse.collector.otlp import PROTOBUF, decode_request
from tokenpulse.collector.otlp_proto import iter_raw_spans, iter_spans
from tokenpulse.collector.otlp_raw import RawTraceRequest
from tokenpulse.collector.spans import SpanView

FIXTURES = Path(__file__).parent.parent / "fixtures" / "interop"
PREFILTER = ENGINE.prefilter


def generated_views(body: bytes, max_keys: int) -> list[SpanView]:
    """The views of the generated classes, with the prefilter's keep and the key limit on distinct keys."""

    def keep(span: Span, scope_name: str) -> bool:
        return len({kv.key for kv in span.attributes}) > max_keys or PREFILTER.keep(span, scope_name)

    return list(iter_spans(ExportTraceServiceRequest.FromString(body), keep))


def assert_read_alike(body: bytes, max_keys: int = 128, raw: bool = True) -> list[SpanView]:
    """The walk's views of ``body`` are the generated classes' and (``raw``) iter_raw_spans's."""
    views = otlp_wire.wire_spans(body, PREFILTER, max_keys)
    assert views == generated_views(body, max_keys)
    if raw:
        assert views == list(iter_raw_spans(RawTraceRequest.FromString(body), PREFILTER, max_keys))
    assert otlp_wire.span_count(body) == check_span_count(ExportTraceServiceRequest.FromString(body), 1 << 30)
    return views


# Unknown fields of every wire type, a group nested in a group, and a known field number with another wire
# type (unknown to the parse).
UNKNOWN = [
    integer(99, 7),
    fixed64(98, 1),
    tag(97, 5) + b"\x01\x02\x03\x04",
    message(96, b"\x08\x01"),
    tag(95, 3) + integer(1, 5) + tag(2, 3) + text(3, "x") + tag(2, 4) + tag(95, 4),  # a nested group
    integer(1, 3),  # a known field number with another wire type: unknown
]


def key_value(key: str, value: AnyValue) -> bytes:
    return text(1, key) + message(2, value.SerializeToString())


def test_every_kind_of_value_reads_alike() -> None:
    span = llm_span(**{"gen_ai.request.model": "gpt-4o"})
    for n, value in enumerate(ANY_VALUES):
        span.attributes.append(KeyValue(key=f"k{n}", value=value))
    span.attributes.append(KeyValue(key="k" * 200, value=ANY_VALUES[1]))  # a key past one length byte
    event = span.events.add(name="gen_ai.evaluation.result", time_unix_nano=1)
    event.attributes.extend(KeyValue(key=f"e{n}", value=value) for n, value in enumerate(ANY_VALUES))
    for _ in range(2):  # the second time from the memos
        (view,) = assert_read_alike(export_request(span).SerializeToString())
        assert type(view.attributes["k11"]) is bool and type(view.attributes["k4"]) is int


def test_the_real_captures_read_alike_with_the_prefilter_and_the_key_limit() -> None:
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                body = otlp_json_to_protobuf(line).SerializeToString()
                for max_keys in (128, 4):
                    assert_read_alike(body, max_keys)


def test_spans_kept_by_name_and_by_an_implied_call_scope_read_alike() -> None:
    views = assert_read_alike(spans_kept_by_name(PREFILTER).SerializeToString())
    assert {v.name for v in views} > set(PREFILTER.names)


def test_fields_out_of_order_repeated_and_unknown_read_as_the_parse_reads_them() -> None:
    model = AnyValue(string_value="gpt-4o")
    span = b"".join(
        [
            *UNKNOWN,
            message(15, integer(3, 1) + text(2, "first")),  # status, merged with the one below
            message(9, key_value("gen_ai.request.model", AnyValue(string_value="o3"))),
            text(5, "first name"),
            fixed64(8, 2_000),
            message(9, key_value("gen_ai.request.model", model) + b"".join(UNKNOWN)),
            message(9, key_value("gen_ai.usage.input_tokens", AnyValue(int_value=12))),
            message(9, text(1, "gen_ai.provider.name") + message(2, b"") + integer(3, 1)),  # an empty value
            message(9, text(1, "dup") + message(2, b"\x18\x01") + text(1, "dup2")),  # the key's last name
            message(11, fixed64(1, 5) + message(3, key_value("a", model)) + UNKNOWN[4] + text(2, "ev")),
            integer(6, -1),  # kind: an int32 enum out of range, ten bytes on the wire
            message(15, integer(3, 2)),
            text(5, "chat gpt-4o"),
            message(1, b"\x01" * 16),
            message(2, b"\x02" * 8),
            message(4, b""),
            fixed64(7, 1_000),
            integer(6, (1 << 40) + 3),  # high bits the int32 drops
        ]
    )
    scope = b"".join([message(2, span), *UNKNOWN, message(1, text(1, "ignored") + text(1, "openai.scope"))])
    resource = message(1, message(1, key_value("service.name", AnyValue(string_value="svc"))))
    second_resource = message(1, message(1, key_value("service.version", AnyValue(string_value="1"))))
    body = message(1, message(2, scope) + resource + b"".join(UNKNOWN) + second_resource) + b"".join(UNKNOWN)
    # Unknown fields inside a KeyValue: the generated classes keep the attribute, RawTraceRequest's map
    # drops the whole entry (upb keeps a map entry with unknown fields among the span's unknown fields).
    (view,) = assert_read_alike(body, raw=False)
    assert (view.name, view.kind, view.status_code, view.status_message) == ("chat gpt-4o", 3, 2, "first")
    assert view.resource == {"service.name": "svc", "service.version": "1"}
    assert view.scope_name == "openai.scope" and view.attributes["gen_ai.request.model"] == "gpt-4o"
    assert "dup2" in view.attributes and view.attributes["gen_ai.provider.name"] is None


def test_a_span_over_the_key_limit_is_kept_and_a_repeated_key_counts_once() -> None:
    plain = span_with({f"http.k{n}": n for n in range(6)})
    repeated = span_with({"http.k": 1})
    repeated.attributes.extend(KeyValue(key="http.k", value=AnyValue(int_value=n)) for n in range(6))
    views = assert_read_alike(export_request(plain, repeated).SerializeToString(), max_keys=4)
    assert len(views) == 1 and len(views[0].attributes) == 6


def test_a_key_repeated_around_the_first_prefilter_key_keeps_its_last_value() -> None:
    # Values before a span's first key of the prefilter are read only once it is kept; a key repeated
    # before and after that point still ends with its last value, as the parse keeps it.
    def pair(key: str, text: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=text))

    before_and_after = span_with({})
    before_and_after.attributes.extend(
        [pair("http.route", "/a"), pair("gen_ai.request.model", "m"), pair("http.route", "/b")]
    )
    twice_before = span_with({})
    twice_before.attributes.extend(
        [pair("http.route", "/a"), pair("http.route", "/c"), pair("gen_ai.request.model", "m")]
    )
    views = assert_read_alike(export_request(before_and_after, twice_before).SerializeToString())
    assert [view.attributes["http.route"] for view in views] == ["/b", "/c"]


values = st.one_of(
    st.sampled_from(ANY_VALUES),
    st.text(max_size=300).map(lambda s: AnyValue(string_value=s)),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: AnyValue(int_value=n)),
    st.floats(allow_nan=False).map(lambda x: AnyValue(double_value=x)),
)
keys = st.sampled_from(["gen_ai.request.model", "gen_ai.usage.input_tokens", "http.route", "k", "ké", ""])
unknown = st.lists(st.sampled_from(UNKNOWN), max_size=2).map(b"".join)


@st.composite
def spans(draw: st.DrawFn) -> bytes:
    fields = [
        message(9, key_value(key, value) + draw(unknown))
        for key, value in draw(st.lists(st.tuples(keys, values), max_size=6))
    ]
    fields += [text(5, draw(st.sampled_from(["chat", "GET /", *sorted(PREFILTER.names)])))]
    fields += [integer(6, draw(st.integers(-(2**40), 2**40)))]
    fields += [message(15, integer(3, draw(st.integers(0, 2))) + text(2, draw(st.text(max_size=5))))]
    fields += [fixed64(7, draw(st.integers(0, 2**64 - 1))), message(1, draw(st.binary(max_size=16)))]
    event = message(11, fixed64(1, 9) + message(3, key_value("e", draw(values))))
    fields += [event] * draw(st.integers(0, 2))
    fields += [draw(unknown)]
    return b"".join(draw(st.permutations(fields)))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    scopes = b"".join(
        message(
            2,
            message(1, text(1, draw(st.sampled_from(["", "openai.x", *PREFILTER.implied_scopes]))))
            + b"".join(message(2, span) for span in draw(st.lists(spans(), max_size=3))),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    resource = message(1, message(1, key_value(draw(keys), draw(values))))
    return message(1, draw(st.sampled_from([resource + scopes, scopes + resource]))) + draw(unknown)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.sampled_from([2, 128]))
def test_any_request_reads_alike(body: bytes, max_keys: int) -> None:
    assert_read_alike(body, max_keys, raw=False)


def test_decode_request_walks_the_wire_when_compiled() -> None:
    decoded = decode_request(export_request(llm_span()).SerializeToString(), PROTOBUF)
    expected = otlp_wire.WireRequest if is_compiled(otlp_wire) else RawTraceRequest
    assert type(decoded) is expected


def test_the_compiled_walk_reads_as_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_compiled(otlp_wire):
        pytest.skip("otlp_wire is not compiled (setup.py)")
    pure = source_module(otlp_wire, monkeypatch)
    request = export_request(llm_span(), span_with({"http.route": "/"}), llm_span(**{"k": 1.5}))
    body = request.SerializeToString()
    assert pure.wire_spans(body, PREFILTER, 128) == otlp_wire.wire_spans(body, PREFILTER, 128)
    assert not pure.COMPILED and otlp_wire.COMPILED
