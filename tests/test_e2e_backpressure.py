"""A full buffer sheds load with the OTLP retryable statuses; gRPC rejects undecodable bodies as invalid."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.daemon import Daemon
from tests.load import EXPORT
from tests.otlp_builders import export_request, llm_span


def grpc_export(daemon: Daemon, body: bytes) -> ExportTraceServiceResponse:
    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
        call = channel.unary_unary(EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
        return call(body, timeout=10)


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def full_daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A daemon whose write-ahead log cap is smaller than any request; alone, or with workers (whose
    appends the daemon's log refuses)."""
    env = {"TOKENPULSE_WAL_MAX_BYTES": "64"}
    running = Daemon(tmp_path / "data", env=env, workers=request.param).start()
    yield running
    running.kill()


def test_full_buffer_answers_429_with_retry_after(full_daemon: Daemon) -> None:
    response = httpx.post(
        f"{full_daemon.otlp_http}/v1/traces",
        content=export_request(llm_span()).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "buffer full" in Status.FromString(response.content).message
    counted = 'tokenpulse_requests_rejected_total{reason="buffer_full",transport="http"} 1.0'
    deadline = time.monotonic() + 10  # workers send their counts every second
    while counted not in (metrics := httpx.get(f"{full_daemon.api}/metrics", timeout=10).text):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.2)


def test_full_buffer_is_resource_exhausted_with_retry_info_over_grpc(full_daemon: Daemon) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(full_daemon, export_request(llm_span()).SerializeToString())
    error = raised.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    retry = RetryInfo()
    assert Status.FromString(details).details[0].Unpack(retry)
    assert retry.retry_delay.seconds > 0


def test_grpc_garbage_is_invalid_argument_and_valid_requests_still_pass(shared_daemon: Daemon) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(shared_daemon, b"\xff\xff\xff garbage")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = llm_span(**{"gen_ai.usage.output_tokens": -1})
    response = grpc_export(shared_daemon, export_request(llm_span(), bad).SerializeToString())
    assert response.partial_success.rejected_spans == 1
    assert "output_tokens" in response.partial_success.error_message
