"""Bad input gets the OTLP-correct status, loses nothing else, and the daemon keeps serving."""

from __future__ import annotations

import gzip
import json
import time

import grpc
import httpx
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.collector.test_fuzz_otlp import VALID, VALID_JSON, json_values, mutated, otlp_shaped
from tests.daemon import Daemon
from tests.otlp_builders import export_request, llm_span
from tests.test_e2e_backpressure import grpc_export
from tokenpulse.collector import otlp

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def post(daemon: Daemon, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{daemon.otlp_http}/v1/traces", content=body, headers=headers, timeout=30)


def assert_still_serving(daemon: Daemon) -> None:
    response = post(daemon, export_request(llm_span()).SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    assert httpx.get(f"{daemon.api}/healthz", timeout=5).status_code == 200


def test_garbage_bytes_are_400_with_a_status_body(shared_daemon: Daemon) -> None:
    response = post(shared_daemon, b"\xff\xfe not a protobuf \x00\x01", PROTOBUF)
    assert response.status_code == 400
    assert Status.FromString(response.content).message.startswith("undecodable protobuf body")
    assert_still_serving(shared_daemon)


def test_truncated_protobuf_is_400(shared_daemon: Daemon) -> None:
    body = export_request(llm_span(), llm_span()).SerializeToString()
    assert post(shared_daemon, body[: len(body) - 7], PROTOBUF).status_code == 400
    assert_still_serving(shared_daemon)


def test_unknown_content_type_is_415(shared_daemon: Daemon) -> None:
    response = post(shared_daemon, b"<spans/>", {"Content-Type": "text/xml"})
    assert response.status_code == 415
    assert "unsupported content type" in response.json()["message"]
    assert_still_serving(shared_daemon)


def test_invalid_json_is_400_and_ids_must_be_hex(shared_daemon: Daemon) -> None:
    assert post(shared_daemon, b"{not json", {"Content-Type": "application/json"}).status_code == 400
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "01"}]}]}]}
    response = post(shared_daemon, json.dumps(document).encode(), {"Content-Type": "application/json"})
    assert response.status_code == 400 and "not hex" in response.json()["message"]
    assert_still_serving(shared_daemon)


def test_gzip_bomb_is_413(shared_daemon: Daemon) -> None:
    bomb = gzip.compress(b"\x00" * (80 << 20))  # 80 MiB of zeros, about 80 KiB compressed
    response = post(shared_daemon, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert_still_serving(shared_daemon)


def test_oversized_body_is_413(shared_daemon: Daemon) -> None:
    assert post(shared_daemon, b"\x0a" * (17 << 20), PROTOBUF).status_code == 413
    assert_still_serving(shared_daemon)


def test_gzip_body_is_accepted(shared_daemon: Daemon) -> None:
    body = gzip.compress(export_request(llm_span()).SerializeToString())
    response = post(shared_daemon, body, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


def test_invalid_span_is_rejected_alone_with_partial_success(shared_daemon: Daemon) -> None:
    good, bad, absurd = (
        llm_span(),
        llm_span(**{"gen_ai.usage.input_tokens": -5}),
        llm_span(**{"gen_ai.usage.output_tokens": float("nan")}),
    )
    response = post(shared_daemon, export_request(good, bad, absurd).SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert bad.span_id.hex() in partial.error_message and "input_tokens" in partial.error_message
    assert_still_serving(shared_daemon)


def test_otlp_json_with_hex_ids_and_string_int64(shared_daemon: Daemon) -> None:
    document = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "chat",
                "startTimeUnixNano": "1763700000000000000", "endTimeUnixNano": "1763700001000000000",
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "100"}},
                    {"key": "gen_ai.usage.input_tokens_bad", "value": {"intValue": "oops"}},
                ],
            }]}],
        }]
    }  # fmt: skip
    response = post(shared_daemon, json.dumps(document).encode(), {"Content-Type": "application/json"})
    assert response.status_code == 400  # "oops" is no int64
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].pop()
    response = post(shared_daemon, json.dumps(document).encode(), {"Content-Type": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {}


def test_summary_refuses_unknown_dimensions_and_bad_times(shared_daemon: Daemon) -> None:
    api = f"{shared_daemon.api}/api/v1/summary"
    response = httpx.get(api, params={"servce": "checkout"}, timeout=10)
    assert response.status_code == 400 and "unknown dimension(s) servce" in response.json()["detail"]
    assert httpx.get(api, params={"group_by": "route,nope"}, timeout=10).status_code == 400
    assert httpx.get(api, params={"start": "yesterday"}, timeout=10).status_code == 400
    reversed_range = {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    response = httpx.get(api, params=reversed_range, timeout=10)
    assert response.status_code == 400


def stored_calls(daemon: Daemon, service: str) -> int:
    """Calls of ``service`` the daemon has stored (all time)."""
    params = {"start": "2001-01-01T00:00:00Z", "end": "2200-01-01T00:00:00Z", "service": service}
    groups = httpx.get(f"{daemon.api}/api/v1/summary", params=params, timeout=30).json()["groups"]
    return groups[0]["calls"]


def wait_stored(daemon: Daemon, service: str, calls: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (stored := stored_calls(daemon, service)) < calls and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored == calls


def expected_status(body: bytes, kind: str) -> int:
    """What OTLP says the daemon must answer: the decoder's rejection status, else 200."""
    try:
        otlp.decode_request(body, kind)
    except otlp.RequestError as error:
        return error.status
    return 200


# Bodies that exercise the receivers: garbage, a valid request with bytes flipped, cut or inserted,
# and (for JSON) documents of any shape.
protobuf_bodies = st.binary(max_size=512) | mutated(VALID)
json_bodies = (
    st.binary(max_size=256)
    | mutated(VALID_JSON.encode())
    | (json_values | otlp_shaped).map(lambda document: json.dumps(document).encode())
)
live = settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])


@live
@given(body=protobuf_bodies, gzipped=st.booleans())
def test_fuzzed_protobuf_bodies_get_the_otlp_status(
    shared_daemon: Daemon, body: bytes, gzipped: bool
) -> None:
    headers = {**PROTOBUF, "Content-Encoding": "gzip"} if gzipped else PROTOBUF
    response = post(shared_daemon, gzip.compress(body) if gzipped else body, headers)
    assert response.status_code == expected_status(body, otlp.PROTOBUF)
    if response.status_code != 200:
        assert Status.FromString(response.content).message


@live
@given(body=json_bodies)
def test_fuzzed_json_bodies_get_the_otlp_status(shared_daemon: Daemon, body: bytes) -> None:
    response = post(shared_daemon, body, {"Content-Type": "application/json"})
    assert response.status_code == expected_status(body, otlp.JSON)
    assert isinstance(response.json(), dict)


@live
@given(body=protobuf_bodies)
def test_fuzzed_grpc_exports_are_ok_or_invalid_argument(shared_daemon: Daemon, body: bytes) -> None:
    try:
        grpc_export(shared_daemon, body)
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
    expected = (
        grpc.StatusCode.OK
        if expected_status(body, otlp.PROTOBUF) == 200
        else grpc.StatusCode.INVALID_ARGUMENT
    )
    assert code == expected


def test_deeply_nested_json_is_400(shared_daemon: Daemon) -> None:
    response = post(
        shared_daemon, b'{"resourceSpans":' + b"[" * 100_000, {"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "nested too deeply" in response.json()["message"]


def test_fuzzing_leaves_the_daemon_accepting_and_storing(shared_daemon: Daemon) -> None:
    """After every fuzzed request above, and a span storage could not hold (a poison pill that would
    stall the writer), valid spans over both transports are still acknowledged and stored."""
    broken_clock = llm_span()
    broken_clock.start_time_unix_nano, broken_clock.end_time_unix_nano = 1_000, 2_000
    request = export_request(llm_span(), broken_clock, service="after-fuzz")
    response = post(shared_daemon, request.SerializeToString(), PROTOBUF)
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1
    grpc_export(
        shared_daemon, export_request(llm_span(), llm_span(), service="after-fuzz").SerializeToString()
    )
    wait_stored(shared_daemon, "after-fuzz", 3)
    assert httpx.get(f"{shared_daemon.api}/readyz", timeout=10).status_code == 200
