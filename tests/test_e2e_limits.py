"""Limits end to end on a daemon: too many spans, crowded spans, long values, runaway dimensions, bodies."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.daemon import Daemon
from tests.otlp_builders import export_request, llm_span
from tests.test_e2e_backpressure import grpc_export
from tests.test_e2e_bad_input import wait_stored
from tokenpulse.collector.limits import OTHER

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {
        "TOKENPULSE_MAX_SPANS_PER_REQUEST": "10",
        "TOKENPULSE_MAX_ATTRIBUTES_PER_SPAN": "30",
        "TOKENPULSE_MAX_ATTRIBUTE_LENGTH": "40",
        "TOKENPULSE_MAX_DIMENSION_VALUES": "3",
        "TOKENPULSE_MAX_DECOMPRESSED_BYTES": "20000",
    }
    running = Daemon(tmp_path_factory.mktemp("limited") / "data", env=env).start()
    yield running
    running.kill()


def test_too_many_spans_is_413_over_http_and_invalid_argument_over_grpc(limited: Daemon) -> None:
    body = export_request(*(llm_span() for _ in range(11))).SerializeToString()
    response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert response.status_code == 413
    assert "more than the limit of 10" in Status.FromString(response.content).message
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(limited, body)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_requests_rejected_total{reason="TooManySpans",transport="http"} 1.0' in metrics
    assert 'tokenpulse_requests_rejected_total{reason="TooManySpans",transport="grpc"} 1.0' in metrics


def test_runaway_route_cardinality_is_folded_into_other(limited: Daemon) -> None:
    for batch in range(3):
        spans = [llm_span(**{"tokenpulse.route": f"/item/{batch * 10 + i}"}) for i in range(10)]
        body = export_request(*spans, service="runaway").SerializeToString()
        response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
        assert response.status_code == 200
    wait_stored(limited, "runaway", 30)
    params = {"service": "runaway", "group_by": "route", "start": "2001-01-01T00:00:00Z"}
    groups = httpx.get(f"{limited.api}/api/v1/summary", params=params, timeout=30).json()["groups"]
    routes = {group["key"]["route"]: group["calls"] for group in groups}
    assert routes == {"/item/0": 1, "/item/1": 1, "/item/2": 1, OTHER: 27}
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_dimension_values_capped_total{dimension="route"}' in metrics


def test_long_values_are_stored_cut_and_the_client_is_warned(limited: Daemon) -> None:
    long_user = "user-" + "x" * 100
    prompt = "a prompt tokenpulse never reads, " * 2000  # not stored, so not limited: the call is kept
    span = llm_span(**{"user.id": long_user, "gen_ai.prompt.0.content": prompt})
    body = export_request(span, service="verbose").SerializeToString()
    response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    # OTLP's warning form: nothing rejected, a message saying what was done.
    assert partial.rejected_spans == 0 and "1 attribute value(s) truncated" in partial.error_message
    wait_stored(limited, "verbose", 1)
    params = {"service": "verbose", "group_by": "user", "start": "2001-01-01T00:00:00Z"}
    groups = httpx.get(f"{limited.api}/api/v1/summary", params=params, timeout=30).json()["groups"]
    assert [group["key"]["user"] for group in groups] == [long_user[:40]]
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_attribute_values_truncated_total{field="user"} 1.0' in metrics


def test_crowded_spans_are_rejected_and_counted(limited: Daemon) -> None:
    crowded = llm_span(**{f"app.tag.{i}": i for i in range(30)})
    body = export_request(llm_span(), crowded).SerializeToString()
    response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_spans_rejected_total{reason="too_many_attributes"} 1.0' in metrics


def test_a_body_over_the_decompressed_limit_is_413_and_resource_exhausted_over_grpc(limited: Daemon) -> None:
    big = export_request(llm_span(**{"app.note": "x" * 30_000})).SerializeToString()
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    response = httpx.post(
        f"{limited.otlp_http}/v1/traces", content=gzip.compress(big), headers=headers, timeout=30
    )
    assert response.status_code == 413
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(limited, big)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Without RetryInfo an OTLP exporter does not retry a request that can never fit.
    assert "grpc-status-details-bin" not in dict(raised.value.trailing_metadata() or ())
