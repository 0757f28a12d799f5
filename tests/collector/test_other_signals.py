"""OTLP metrics and logs: the stock SDK exporters run clean against tokenpulse, on both transports.

`opentelemetry-instrument` exports traces, metrics and logs by default; before, the metrics and logs
exporters got 404 / UNIMPLEMENTED on every interval.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from tests.daemon import Daemon

KEY = "acme-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(
        tmp_path_factory.mktemp("signals") / "data", {"TOKENPULSE_API_KEYS": f"acme:{KEY}"}
    ).start()
    yield running
    running.kill()


def metrics_data():  # the SDK's MetricsData
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": "checkout"}), metric_readers=[reader])
    meter = provider.get_meter("app")
    meter.create_counter("gen_ai.client.requests").add(3, {"gen_ai.request.model": "gpt-4o"})
    meter.create_histogram("gen_ai.client.operation.duration").record(1.2)
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


def log_records() -> list:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("app")
    for body in ("one", "two", "three"):
        logger.emit(LogRecord(body=body, severity_text="INFO"))
    provider.shutdown()
    return list(exporter.get_finished_logs())


def received(daemon: Daemon, signal: str, transport: str) -> float:
    text = httpx.get(f"{daemon.api}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    found = re.search(
        rf'^tokenpulse_otlp_items_received_total\{{signal="{signal}",transport="{transport}"\}} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def test_stock_metric_and_log_exporters_succeed_on_both_transports_and_are_counted(
    keyed_daemon: Daemon,
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    grpc_endpoint = f"127.0.0.1:{keyed_daemon.grpc_port}"
    exporters = {
        ("metrics", "http"): HttpMetricExporter(f"{keyed_daemon.otlp_http}/v1/metrics", headers=auth),
        ("metrics", "grpc"): GrpcMetricExporter(grpc_endpoint, insecure=True, headers=auth),
        ("logs", "http"): HttpLogExporter(f"{keyed_daemon.otlp_http}/v1/logs", headers=auth),
        ("logs", "grpc"): GrpcLogExporter(grpc_endpoint, insecure=True, headers=auth),
    }
    for (signal, transport), exporter in exporters.items():
        before = received(keyed_daemon, signal, transport)
        result = exporter.export(metrics_data()) if signal == "metrics" else exporter.export(log_records())
        exporter.shutdown()
        assert result.name == "SUCCESS", (signal, transport, result)
        # two data points (the counter's and the histogram's), three log records
        assert received(keyed_daemon, signal, transport) - before == (2 if signal == "metrics" else 3)


def test_other_signals_take_the_same_key_and_limits_as_traces(keyed_daemon: Daemon) -> None:
    body = ExportLogsServiceRequest().SerializeToString()
    protobuf = {"Content-Type": "application/x-protobuf"}
    for path in ("/v1/metrics", "/v1/logs"):
        url = f"{keyed_daemon.otlp_http}{path}"
        assert httpx.post(url, content=body, headers=protobuf).status_code == 401
        keyed = {**protobuf, "Authorization": f"Bearer {KEY}"}
        assert httpx.post(url, content=b"\x0a\xff\xff", headers=keyed).status_code == 400
        assert (
            httpx.post(url, content=body, headers={**keyed, "Content-Type": "text/plain"}).status_code == 415
        )
        bomb = gzip.compress(b"\x00" * (65 << 20))  # inflates past max_decompressed_bytes (64 MiB)
        response = httpx.post(url, content=bomb, headers={**keyed, "Content-Encoding": "gzip"})
        assert response.status_code == 413
        assert (
            httpx.post(url, content=b"{}", headers={**keyed, "Content-Type": "application/json"}).status_code
            == 200
        )
    with grpc.insecure_channel(f"127.0.0.1:{keyed_daemon.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.RpcError) as refused:
            export(body, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as malformed:
            export(b"\x0a\xff\xff", timeout=10, metadata=(("authorization", f"Bearer {KEY}"),))
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_nothing_of_them_is_stored(keyed_daemon: Daemon, tmp_path: Path) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    HttpLogExporter(f"{keyed_daemon.otlp_http}/v1/logs", headers=auth).export(log_records())
    summary = httpx.get(
        f"{keyed_daemon.api}/api/v1/summary", headers={"Authorization": f"Bearer {KEY}"}
    ).json()
    assert summary["groups"][0]["calls"] == 0
