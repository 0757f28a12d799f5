"""Evaluation results in: OTLP logs (protobuf, JSON, gzip; HTTP and gRPC) and span events become rows of
the ``evaluations`` table and its rollup, exactly once, with the OTLP answers the trace receivers give."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.daemon import free_port
from tests.otlp_builders import (
    any_value,
    evaluation_log,
    export_request,
    llm_span,
    logs_json,
    logs_request,
    plain_log,
)
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector.grpc_receiver import start_grpc_server
from tokenpulse.collector.http_receiver import create_otlp_http_app
from tokenpulse.collector.limits import Limits
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Pipeline, request_digest
from tokenpulse.collector.pricing import Pricer
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
EXPLANATION = "the answer repeats the user's address, 12 Elm Street"


@dataclass
class Collector:
    http: TestClient
    grpc_address: str
    store: Store
    wal: WriteAheadLog
    writer: LogWriter

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        response = self.http.post("/v1/logs", content=body, headers=headers)
        return response.status_code, response.content

    def rows(self, columns: str = "evaluation, score, label, passed, service, route, model") -> list[tuple]:
        assert self.writer.wait_stored(self.wal.durable_end, timeout=30)
        return [tuple(r) for r in self.store.rows(f"SELECT {columns} FROM evaluations ORDER BY time")]


@pytest.fixture
def collector(store: Store, tmp_path: Path) -> Iterator[Collector]:
    wal = WriteAheadLog(tmp_path / "wal")
    pipeline = Pipeline(wal, NormalizeConfig(), Pricer(), Limits(max_spans_per_request=10))
    writer = LogWriter(wal, store, batch_rows=1, batch_seconds=0.01)
    writer.start()
    address = f"127.0.0.1:{free_port()}"
    server = start_grpc_server(pipeline, address, 4 << 20)
    app = create_otlp_http_app(pipeline, 4 << 20, 16 << 20)
    with TestClient(app) as client:
        yield Collector(client, address, store, wal, writer)
    server.stop(None)
    writer.stop()
    wal.close()


def test_evaluation_events_in_both_name_forms_are_stored_and_other_logs_dropped(collector: Collector) -> None:
    request = logs_request(
        evaluation_log(
            "relevance",
            score=0.8,
            label="Pass",
            **{
                "gen_ai.evaluation.explanation": EXPLANATION,
                "tokenpulse.route": "/chat",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.response.id": "resp-1",
            },
        ),
        evaluation_log("toxicity", label="irrelevant-ish", legacy_name=True),
        plain_log(),
        service="checkout",
    )
    status, body = collector.post(request.SerializeToString(), PROTOBUF)
    assert status == 200
    assert not ExportLogsServiceResponse.FromString(body).HasField("partial_success")
    assert collector.rows() == [
        ("relevance", 0.8, "Pass", True, "checkout", "/chat", "gpt-4o-mini"),
        ("toxicity", None, "irrelevant-ish", None, "checkout", "", ""),
    ]
    everything = str(collector.store.rows("SELECT * FROM evaluations"))
    assert "12 Elm Street" not in everything and "4111" not in everything
    assert collector.rows("response_id, evaluator")[0] == ("resp-1", "judge")
    rollup = collector.store.rows(
        "SELECT evaluation, sum(evaluations), sum(scored), sum(score_sum), sum(judged), sum(passes) "
        "FROM evaluations_1m GROUP BY evaluation ORDER BY evaluation"
    )
    assert [tuple(r) for r in rollup] == [("relevance", 1, 1, 0.8, 1, 1), ("toxicity", 1, 0, 0.0, 0, 0)]


def test_json_and_gzip_bodies_and_an_exporter_retry_store_once(collector: Collector) -> None:
    span = llm_span()
    request = logs_request(evaluation_log("judge_pass", score=1.0, label="fail", span=span))
    body = logs_json(request)
    for attempt in range(2):  # the exporter lost the first answer and sent the same bytes again
        status, _ = collector.post(gzip.compress(body), JSON | {"Content-Encoding": "gzip"})
        assert status == 200, attempt
    assert collector.rows("trace_id, span_id, passed") == [(span.trace_id.hex(), span.span_id.hex(), False)]


def test_a_record_without_an_evaluation_name_is_rejected_in_partial_success(collector: Collector) -> None:
    request = logs_request(evaluation_log(None, score=0.5), evaluation_log("ok", score=0.4))
    status, body = collector.post(request.SerializeToString(), PROTOBUF)
    response = ExportLogsServiceResponse.FromString(body)
    assert status == 200
    assert response.partial_success.rejected_log_records == 1
    assert "without gen_ai.evaluation.name" in response.partial_success.error_message
    assert collector.rows("evaluation") == [("ok",)]


def test_a_score_that_is_no_number_is_rejected(collector: Collector) -> None:
    request = logs_request(evaluation_log("judge", **{"gen_ai.evaluation.score.value": "high"}))
    _, body = collector.post(logs_json(request), JSON)
    assert json.loads(body)["partialSuccess"]["rejectedLogRecords"] == "1"


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"\xff\xfe garbage", PROTOBUF, 400, "undecodable protobuf body"),
        (b'{"resourceLogs": {"not": "a list"}}', JSON, 400, "undecodable OTLP/JSON body"),
        (b"[1, 2]", JSON, 400, "undecodable OTLP/JSON body"),
        (b"not gzip", PROTOBUF | {"Content-Encoding": "gzip"}, 400, "invalid gzip body"),
        (b"<logs/>", {"Content-Type": "text/xml"}, 415, "unsupported content type"),
        (
            logs_request(*(plain_log() for _ in range(11))).SerializeToString(),
            PROTOBUF,
            413,
            "11 log records, more than the limit of 10",
        ),
    ],
)
def test_bad_bodies_get_the_answers_the_trace_receiver_gives(
    collector: Collector, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    code, content = collector.post(body, headers)
    assert code == status
    # As for traces: a JSON Status where the request was JSON or its type unknown, else protobuf.
    text = json.loads(content)["message"] if content.startswith(b"{") else Status.FromString(content).message
    assert message in text


def test_grpc_logs_service_stores_evaluations_and_rejects_garbage(collector: Collector) -> None:
    request = logs_request(evaluation_log("judge_pass", label="yes"), plain_log())
    with grpc.insecure_channel(collector.grpc_address) as channel:
        export = channel.unary_unary(LOGS_EXPORT, response_deserializer=ExportLogsServiceResponse.FromString)
        assert not export(request.SerializeToString(), timeout=10).HasField("partial_success")
        with pytest.raises(grpc.RpcError) as error:
            export(b"\xff\xfe garbage", timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert collector.rows("evaluation, passed") == [("judge_pass", True)]


def _with_event(span: Span, **attributes: object) -> Span:
    event = span.events.add(name="gen_ai.evaluation.result", time_unix_nano=span.end_time_unix_nano)
    for key, value in attributes.items():
        event.attributes.add(key=key).value.CopyFrom(any_value(value))
    return span


def test_evaluations_sent_as_span_events_take_the_calls_route_and_model(collector: Collector) -> None:
    call = _with_event(
        llm_span(**{"tokenpulse.route": "/support", "gen_ai.request.model": "gpt-4o-mini"}),
        **{"gen_ai.evaluation.name": "correctness", "gen_ai.evaluation.score.value": 0.25},
    )
    bad = _with_event(llm_span(), **{"gen_ai.evaluation.score.value": 0.5})  # no name: the call stays
    response = collector.http.post(
        "/v1/traces", content=export_request(call, bad).SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    assert collector.rows("evaluation, score, route, model, span_id") == [
        ("correctness", 0.25, "/support", "gpt-4o-mini", call.span_id.hex())
    ]
    assert collector.store.rows("SELECT count() FROM calls")[0][0] == 2


def test_a_logs_body_is_never_taken_for_a_retry_of_a_trace_body_of_the_same_bytes() -> None:
    body = logs_request(evaluation_log("judge")).SerializeToString()
    assert request_digest(body, "logs") != request_digest(body)
    assert request_digest(body) == request_digest(body, "")  # traces: the digest frames already hold
