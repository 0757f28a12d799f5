"""Property tests of the OTLP decoders: any body is either a request or a clean RequestError.

Whatever a client sends — random bytes, a valid request with bytes flipped, cut or inserted, odd or
deeply nested JSON, huge numbers, wrong types — decoding raises nothing but ``otlp.RequestError`` (which
the receivers turn into 400/413/415), and a body that decodes goes through the whole pipeline without
an exception either.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.otlp_builders import export_request, llm_span
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector import otlp
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Pipeline, request_digest
from tokenpulse.collector.pricing import Pricer

LIMIT = 1 << 20


def valid_body() -> bytes:
    spans = [
        llm_span(),
        llm_span(**{"gen_ai.usage.cache_read.input_tokens": 40, "tokenpulse.route": "/chat"}),
        llm_span(**{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
    ]
    return export_request(*spans).SerializeToString()


VALID = valid_body()
VALID_JSON = json.dumps(
    {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat",
                                "startTimeUnixNano": "1763700000000000000",
                                "endTimeUnixNano": "1763700001000000000",
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 100}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(WriteAheadLog(tmp_path_factory.mktemp("wal")), NormalizeConfig(), Pricer())


def decode_or_reject(body: bytes, kind: str) -> ExportTraceServiceRequest | None:
    """The decoded request, or None after a clean rejection; any other exception fails the test."""
    try:
        return otlp.decode_request(body, kind)
    except otlp.RequestError as error:
        assert error.status == 400 and error.message
        return None


def ingest_if_decoded(pipeline: Pipeline, body: bytes, kind: str) -> None:
    request = decode_or_reject(body, kind)
    if request is not None:
        result = pipeline.ingest(request, "fuzz", request_digest(body))
        if result.wal_end:  # what was acknowledged reads back whole from the log
            *_, frame = pipeline.wal.read(pipeline.wal.oldest, result.wal_end)
            assert (frame.call_count, frame.tool_span_count) == (result.calls, result.tool_spans)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes flipped, deleted, inserted or the tail cut off."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "set"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "truncate":
            del data[at:]
        else:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(data)


# Every test below shares one module-scoped pipeline (it only appends to a temporary log).
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@fixture_ok
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_the_protobuf_decoder(pipeline: Pipeline, body: bytes) -> None:
    ingest_if_decoded(pipeline, body, otlp.PROTOBUF)


@fixture_ok
@given(body=mutated(VALID))
def test_mutated_protobuf_requests_decode_or_are_rejected_cleanly(pipeline: Pipeline, body: bytes) -> None:
    ingest_if_decoded(pipeline, body, otlp.PROTOBUF)


@fixture_ok
@given(body=mutated(VALID_JSON.encode()))
def test_mutated_json_requests_decode_or_are_rejected_cleanly(pipeline: Pipeline, body: bytes) -> None:
    ingest_if_decoded(pipeline, body, otlp.JSON)


@fixture_ok
@given(body=st.binary(max_size=512) | st.text(max_size=512).map(str.encode))
def test_arbitrary_bytes_and_text_never_crash_the_json_decoder(pipeline: Pipeline, body: bytes) -> None:
    ingest_if_decoded(pipeline, body, otlp.JSON)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN and infinities too: Python's json writes and reads them
    | st.text(max_size=24)
    | st.sampled_from(["5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "zz", "1e400", "-1"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
OTLP_KEYS = [
    "resourceSpans", "resource", "attributes", "scopeSpans", "scope", "spans", "traceId", "spanId",
    "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano", "status", "code", "events",
    "links", "key", "value", "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue",
    "kvlistValue", "bytesValue", "values", "timeUnixNano", "droppedAttributesCount",
]  # fmt: skip
# Documents shaped like OTLP/JSON (the decoder's field names) with values of any type.
otlp_shaped = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(OTLP_KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


@fixture_ok
@given(document=json_values | otlp_shaped)
def test_json_documents_of_any_shape_are_decoded_or_rejected(pipeline: Pipeline, document: Any) -> None:
    ingest_if_decoded(pipeline, json.dumps(document).encode(), otlp.JSON)


@fixture_ok
@given(
    field=st.sampled_from(["startTimeUnixNano", "endTimeUnixNano", "kind", "traceId", "name", "attributes"]),
    value=json_scalars | st.integers(min_value=2**63, max_value=2**200) | st.lists(json_scalars, max_size=3),
)
def test_wrong_types_and_huge_numbers_in_span_fields(pipeline: Pipeline, field: str, value: Any) -> None:
    document = json.loads(VALID_JSON)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0][field] = value
    ingest_if_decoded(pipeline, json.dumps(document).encode(), otlp.JSON)


@pytest.mark.parametrize("kind", [float("inf"), -float("inf"), 2**70, 1e300])
def test_found_by_fuzzing_an_enum_that_is_no_integer_is_400(kind: float) -> None:
    document = json.loads(VALID_JSON)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] = kind
    with pytest.raises(otlp.BadRequest):
        otlp.decode_request(json.dumps(document).encode(), otlp.JSON)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    length, varint = len(payload), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([number << 3 | 2]) + bytes(varint) + payload


@pytest.mark.parametrize("depth", [50, 2_000, 200_000])
def test_deeply_nested_json_is_a_clean_400(depth: int) -> None:
    arrays = b'{"resourceSpans":' + b"[" * depth + b"]" * depth + b"}"
    # kvlists inside kvlists inside a span attribute: ParseDict recurses per level
    nested = '{"kvlistValue":{"values":[{"key":"k","value":' * depth + '{"stringValue":"x"}' + "}]}}" * depth
    attributes = '"attributes":[{"key":"d","value":' + nested + "}],"
    in_span = VALID_JSON.replace('"attributes": [', attributes + '"_": [', 1).encode()
    for body in (arrays, in_span):
        request = decode_or_reject(body, otlp.JSON)
        if depth > 1000:
            assert request is None


def test_deeply_nested_protobuf_values_are_a_clean_400() -> None:
    value = AnyValue(string_value="x").SerializeToString()
    for _ in range(200):  # AnyValue.array_value (5) -> ArrayValue.values (1), past protobuf's depth limit
        value = _field(5, _field(1, value))
    attribute = KeyValue(key="deep").SerializeToString() + _field(2, value)
    span = llm_span().SerializeToString() + _field(9, attribute)
    body = _field(1, _field(2, _field(2, span)))  # request.resource_spans.scope_spans.spans
    with pytest.raises(otlp.BadRequest):
        otlp.decode_request(body, otlp.PROTOBUF)


@given(body=st.binary(max_size=512) | mutated(gzip.compress(VALID)))
def test_gzip_bodies_inflate_or_are_rejected_cleanly(body: bytes) -> None:
    try:
        data = otlp.decompress(body, "gzip", LIMIT)
    except otlp.RequestError as error:
        assert error.status in (400, 413)
        return
    assert len(data) <= LIMIT


@given(size=st.integers(LIMIT - 2, LIMIT + 2), level=st.sampled_from([1, 9]))
def test_inflated_size_is_limited_exactly(size: int, level: int) -> None:
    body = gzip.compress(b"\x00" * size, compresslevel=level)
    if size <= LIMIT:
        assert len(otlp.decompress(body, "gzip", LIMIT)) == size
    else:
        with pytest.raises(otlp.PayloadTooLarge):
            otlp.decompress(body, "gzip", LIMIT)


@given(encoding=st.text(max_size=12), content_type=st.text(max_size=40) | st.none())
def test_headers_of_any_value_are_accepted_or_415(encoding: str, content_type: str | None) -> None:
    assume(encoding.strip().lower() not in ("gzip", "", "identity"))
    with pytest.raises(otlp.UnsupportedMediaType):
        otlp.decompress(zlib.compress(b"x"), encoding, LIMIT)
    try:
        assert otlp.media_type(content_type) in (otlp.PROTOBUF, otlp.JSON)
    except otlp.UnsupportedMediaType as error:
        assert error.status == 415
