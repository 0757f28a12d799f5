"""The OTLP/HTTP app's direct ``POST /v1/<signal>`` route answers as the FastAPI route it bypasses did:
status codes, content types, Retry-After, gzip, limits, partial success, a 500 for an unexpected error;
other methods and paths are FastAPI's (405, 404)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.otlp_builders import export_request, llm_span
from tokenpulse.buffer.wal import WalClosed, WalFull
from tokenpulse.collector.http_receiver import RETRY_AFTER_SECONDS, create_otlp_http_app
from tokenpulse.collector.limits import Limits
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Pipeline
from tokenpulse.collector.pricing import Pricer

PROTOBUF = {"Content-Type": "application/x-protobuf"}


class StubLog:
    """A RequestLog that keeps the frames, or raises ``error`` on an append."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.error: Exception | None = None

    def seen(self, digest: bytes) -> bool:
        return False

    def append(self, frame: bytes, digest: bytes) -> int | None:
        if self.error is not None:
            raise self.error
        self.frames.append(frame)
        return len(frame)


@pytest.fixture
def log() -> StubLog:
    return StubLog()


@pytest.fixture
def client(log: StubLog) -> Iterator[TestClient]:
    pipeline = Pipeline(log, NormalizeConfig(), Pricer(), Limits(max_spans_per_request=10))
    app = create_otlp_http_app(pipeline, 1 << 20, 2 << 20)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_protobuf_json_and_gzip_bodies_are_buffered_and_answered_in_their_media_type(
    client: TestClient, log: StubLog
) -> None:
    body = export_request(llm_span()).SerializeToString()
    for content, headers in (
        (body, PROTOBUF),
        (
            gzip.compress(export_request(llm_span()).SerializeToString()),
            PROTOBUF | {"Content-Encoding": "gzip"},
        ),
        (b"{}", {"Content-Type": "application/json"}),  # an empty OTLP/JSON request: nothing buffered
    ):
        response = client.post("/v1/traces", content=content, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == headers["Content-Type"]
        assert int(response.headers["content-length"]) == len(response.content)
    assert len(log.frames) == 2
    assert (
        ExportTraceServiceResponse.FromString(
            client.post("/v1/traces", content=body, headers=PROTOBUF).content
        )
        == ExportTraceServiceResponse()
    )


def test_partial_success_names_the_rejected_spans(client: TestClient) -> None:
    bad = llm_span()
    bad.trace_id = bytes(16)
    response = client.post(
        "/v1/traces", content=export_request(bad, llm_span()).SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "trace_id" in answer.partial_success.error_message


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"\xff\xff", PROTOBUF, 400),  # not a protobuf request
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (bytes(2 << 20), PROTOBUF, 413),  # over max_request_bytes
        (
            gzip.compress(bytes(3 << 20)),
            PROTOBUF | {"Content-Encoding": "gzip"},
            413,
        ),  # inflates past the limit
        (
            export_request(*(llm_span() for _ in range(11))).SerializeToString(),
            PROTOBUF,
            413,
        ),  # too many spans (TooManySpans)
    ],
)
def test_refused_requests_answer_a_status_body(
    client: TestClient, content: bytes, headers: dict[str, str], status: int
) -> None:
    response = client.post("/v1/traces", content=content, headers=headers)
    assert response.status_code == status
    kind = "application/json" if headers["Content-Type"] == "text/plain" else "application/x-protobuf"
    assert response.headers["content-type"] == kind
    if kind == "application/x-protobuf":
        assert Status.FromString(response.content).message
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(("error", "status"), [(WalFull("full"), 429), (WalClosed("closed"), 503)])
def test_backpressure_and_shutdown_ask_for_a_retry(
    client: TestClient, log: StubLog, error: Exception, status: int
) -> None:
    log.error = error
    response = client.post(
        "/v1/traces", content=export_request(llm_span()).SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == status
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert Status.FromString(response.content).message


def test_an_unexpected_error_is_a_500(client: TestClient, log: StubLog) -> None:
    log.error = RuntimeError("boom")
    response = client.post(
        "/v1/traces", content=export_request(llm_span()).SerializeToString(), headers=PROTOBUF
    )
    assert (response.status_code, response.text) == (500, "Internal Server Error")


def test_other_methods_and_paths_are_fastapis(client: TestClient) -> None:
    assert client.get("/v1/traces").status_code == 405
    assert client.post("/v1/nothing", content=b"", headers=PROTOBUF).status_code == 404
    assert client.post("/v1/metrics", content=b"", headers=PROTOBUF).status_code == 200
    assert client.post("/v1/logs", content=b"", headers=PROTOBUF).status_code == 200
