"""`serve --workers N`: worker processes receive and normalize, the daemon's one log and writer store.

The channel between a worker and the log is tested in-process over a real pipe; the daemon-level tests
run `tokenpulse serve --workers 2` as a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from multiprocessing import Pipe
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter

from tests.daemon import Daemon
from tests.load import Load, stored_calls
from tests.otlp_builders import export_request, llm_span
from tokenpulse.buffer.wal import WalFull, WriteAheadLog, encode_frame
from tokenpulse.collector.pipeline import LocalRequestLog
from tokenpulse.workers import (
    LogServer,
    RemoteRequestLog,
    SummedRegistry,
    WorkerMetrics,
    check_port_free,
    metric_samples,
)

# -- the channel, in-process -------------------------------------------------------------------------------


def _worker_channel(server: LogServer, slot: int) -> RemoteRequestLog:
    ours, theirs = Pipe()
    server.serve(slot, ours)
    remote = RemoteRequestLog(theirs)
    remote.start()
    return remote


def test_a_retry_reaching_another_worker_is_appended_once(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    server = LogServer(LocalRequestLog(wal), WorkerMetrics())
    first, second = _worker_channel(server, 0), _worker_channel(server, 1)
    frame = encode_frame(b"rows", b"", 1, 0, b"d" * 16)

    end = first.append(frame, b"d" * 16)
    assert end == len(frame) and wal.durable_end == end  # answered once on disk
    assert second.append(frame, b"d" * 16) is None  # the exporter's retry, on the other worker
    assert first.append(frame, b"d" * 16) is None
    assert [f.request_digest for f in wal.read(0, wal.durable_end)] == [b"d" * 16]
    other = encode_frame(b"rows", b"", 1, 0, b"e" * 16)
    assert second.append(other, b"e" * 16) == 2 * len(frame)
    server.close()
    wal.close()


def test_concurrent_appends_of_every_size_are_stored_whole_and_answered(tmp_path: Path) -> None:
    # The log server reads a worker's messages into one reused buffer, several at a read: frames far
    # smaller and larger than it (1 MiB), sent from many threads at once, must each arrive whole.
    wal = WriteAheadLog(tmp_path / "wal")
    server = LogServer(LocalRequestLog(wal), WorkerMetrics())
    remote = _worker_channel(server, 0)
    sizes = [1, 100, 70_000, 200_000, 1_500_000, 3_000_000, 5, 900_000]
    frames = {
        bytes([i]) * 16: encode_frame(bytes([65 + i]) * size, b"", 1, 0, bytes([i]) * 16)
        for i, size in enumerate(sizes * 4)
    }
    ends: dict[bytes, int | None] = {}

    def append(digest: bytes) -> None:
        ends[digest] = remote.append(frames[digest], digest)

    threads = [threading.Thread(target=append, args=(digest,)) for digest in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(end is not None and end <= wal.durable_end for end in ends.values())
    stored = {frame.request_digest: frame for frame in wal.read(0, wal.durable_end)}
    assert set(stored) == set(frames)
    for digest, frame in stored.items():
        assert frame.end == ends[digest]
        assert frame.calls == bytes([65 + digest[0]]) * sizes[digest[0] % len(sizes)]
    server.close()
    wal.close()


def test_a_full_log_answers_the_worker_with_wal_full(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=100)
    server = LogServer(LocalRequestLog(wal), WorkerMetrics())
    remote = _worker_channel(server, 0)
    with pytest.raises(WalFull):
        remote.append(encode_frame(b"x" * 200, b"", 1, 0, b"f" * 16), b"f" * 16)
    # Not remembered: the exporter's retry, once there is room, is stored.
    assert not server.log.seen(b"f" * 16)
    server.close()
    wal.close()


def test_appends_in_flight_when_the_daemon_goes_fail_as_closed(tmp_path: Path) -> None:
    ours, theirs = Pipe()
    remote = RemoteRequestLog(theirs)
    remote.start()
    outcome: list[BaseException] = []

    def append() -> None:
        try:
            remote.append(b"frame", b"g" * 16)
        except BaseException as error:  # the test looks at which one
            outcome.append(error)

    thread = threading.Thread(target=append)
    thread.start()
    assert ours.recv()[0] == "append"  # received, never answered
    ours.close()
    thread.join(10)
    assert type(outcome[0]).__name__ == "WalClosed"


def test_metrics_sum_over_workers_and_keep_a_dead_workers_counts() -> None:
    def worker_counting(received: int) -> list:
        registry = CollectorRegistry()
        Counter("tokenpulse_spans_received", "spans", ["transport"], registry=registry).labels("http").inc(
            received
        )
        return metric_samples(registry)

    own = CollectorRegistry()
    Counter("tokenpulse_spans_received", "spans", ["transport"], registry=own).labels("grpc").inc(1)
    workers = WorkerMetrics()
    summed = SummedRegistry(own, workers)

    def received(transport: str) -> float:
        for family in summed.collect():
            for sample in family.samples:
                if sample.name == "tokenpulse_spans_received_total" and sample.labels == {
                    "transport": transport
                }:
                    return sample.value
        return 0.0

    workers.update(0, worker_counting(5))
    workers.update(1, worker_counting(7))
    assert (received("http"), received("grpc")) == (12.0, 1.0)
    workers.retire(0)  # killed: its replacement starts from zero
    workers.update(0, worker_counting(2))
    assert received("http") == 14.0
    names = [family.name for family in summed.collect()]
    assert names.count("tokenpulse_spans_received") == 1


# -- the daemon ----------------------------------------------------------------------------------------


def wait_until(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def metric(daemon: Daemon, line_start: str) -> float:
    text = httpx.get(f"{daemon.api}/metrics", timeout=10).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def _sdk_spans(exporter, count: int, service: str) -> set[str]:  # type: ignore[no-untyped-def]
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=40))
    tracer = provider.get_tracer("app")
    ids = set()
    for i in range(count):
        with tracer.start_as_current_span(f"chat gpt-4o {i}", kind=SpanKind.CLIENT) as call:
            call.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 100 + i,
                    "gen_ai.usage.output_tokens": 10,
                }
            )
            ids.add(format(call.get_span_context().span_id, "016x"))
        with tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER):
            pass  # not an LLM call: dropped
    assert provider.force_flush(60_000)
    provider.shutdown()
    return ids


def test_sdk_exporters_over_http_and_grpc_store_every_span_once(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", workers=2).start()
    try:
        assert len(daemon.worker_pids()) == 2
        http = _sdk_spans(HttpExporter(endpoint=f"{daemon.otlp_http}/v1/traces", timeout=30), 300, "a")
        grpc_ids = _sdk_spans(
            GrpcExporter(endpoint=f"127.0.0.1:{daemon.grpc_port}", insecure=True, timeout=30), 300, "b"
        )
        # /metrics sums the workers' counts (each sends them every second).
        wait_until(lambda: metric(daemon, 'tokenpulse_spans_accepted_total{kind="call"}') == 600)
        assert metric(daemon, "tokenpulse_spans_received_total") == 1200  # the HTTP server spans too
    finally:
        assert daemon.stop() == 0
    stored, rolled_up = stored_calls(daemon.data_dir)
    assert sorted(stored) == sorted(http | grpc_ids)  # each once
    assert rolled_up == 600


def test_a_retry_landing_on_the_other_worker_is_stored_once(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", workers=2).start()
    body = export_request(*(llm_span() for _ in range(20))).SerializeToString()
    try:
        first, second = daemon.worker_pids()
        answered = []
        # A stopped worker does not accept: each send reaches the one worker left running.
        for stopped in (second, first, second):
            os.kill(stopped, signal.SIGSTOP)
            try:
                response = httpx.post(
                    f"{daemon.otlp_http}/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf", "Connection": "close"},
                    timeout=30,
                )
            finally:
                os.kill(stopped, signal.SIGCONT)
            answered.append(response.status_code)
        assert answered == [200, 200, 200]
        wait_until(lambda: metric(daemon, "tokenpulse_duplicate_requests_total") == 2)
    finally:
        daemon.stop()
    stored, rolled_up = stored_calls(daemon.data_dir)
    assert len(stored) == len(set(stored)) == 20
    assert rolled_up == 20


def test_a_killed_worker_loses_nothing_acknowledged_and_is_replaced(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", workers=2).start()
    load = Load(daemon, senders=4, spans=50, transports=("http", "grpc"))
    try:
        load.start()
        load.wait_acknowledged(10)
        victim = daemon.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)  # mid-load: requests in its hands go unanswered
        # A new interpreter's imports: many seconds on a loaded machine.
        wait_until(lambda: len(daemon.worker_pids()) == 2 and victim not in daemon.worker_pids(), timeout=180)
        acknowledged_before = load.requests_acknowledged
        load.wait_acknowledged(acknowledged_before + 10, timeout=120)  # the survivor and the new one
        load.join()
        load.retry_unacknowledged(daemon)  # what the exporters do with unanswered requests
    finally:
        load.join()
        assert daemon.stop() == 0
    stored, rolled_up = stored_calls(daemon.data_dir)
    assert set(stored) == load.acknowledged
    assert len(stored) == len(set(stored)) == rolled_up


def test_another_daemon_on_the_ports_is_refused(tmp_path: Path) -> None:
    for name in ("a", "b1", "b2"):
        (tmp_path / name).mkdir()
    daemon = Daemon(tmp_path / "a" / "data", workers=2).start()
    try:
        with pytest.raises(OSError):
            check_port_free("127.0.0.1", daemon.grpc_port)  # the workers hold it together
        for workers in (2, 1):
            other = Daemon(tmp_path / f"b{workers}" / "data", workers=workers)
            other.grpc_port = daemon.grpc_port  # its own HTTP and API ports: only gRPC is taken
            with pytest.raises(RuntimeError, match=r"OTLP/gRPC .* address already in use"):
                other._start(timeout=60)
    finally:
        daemon.stop()


def test_run_detectors_false_runs_no_detector_cycle(tmp_path: Path) -> None:
    cycles = "tokenpulse_detector_cycle_seconds_count"
    for name in ("on", "off"):
        (tmp_path / name).mkdir()
    pinned = Daemon(tmp_path / "on" / "data").start()  # the default: detectors run here
    try:
        wait_until(lambda: metric(pinned, cycles) >= 1)
    finally:
        pinned.stop()
    elsewhere = Daemon(tmp_path / "off" / "data", env={"TOKENPULSE_RUN_DETECTORS": "false"}).start()
    try:
        time.sleep(3)
        assert metric(elsewhere, cycles) == 0
        assert "run_detectors = false" in elsewhere.log()
    finally:
        elsewhere.stop()


def test_port_check_passes_on_a_free_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check_port_free("127.0.0.1", port)  # no exception


def test_serve_defaults_to_a_worker_per_core() -> None:
    from tokenpulse.config import Settings
    from tokenpulse.daemon import worker_count

    assert worker_count(Settings()) == len(os.sched_getaffinity(0))
    assert worker_count(Settings(workers=1)) == 1  # the daemon's own process: no worker


def _counted(transport: str) -> tuple[float, float, float]:
    """(spans received, evaluation log records received, duplicate requests) of ``transport`` so far."""
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"transport": transport, **labels}) or 0.0

    return (
        value("tokenpulse_spans_received_total"),
        value("tokenpulse_otlp_items_received_total", signal="logs"),
        value("tokenpulse_duplicate_requests_total"),
    )


@pytest.mark.parametrize("where", ["one process", "worker"])
def test_a_retry_counts_as_a_duplicate_not_as_spans_received(tmp_path: Path, where: str) -> None:
    """The retry memory answers early in one process and only at the append in a worker: either way a
    retried request's spans (log records) count once in received and the retry once in duplicates."""
    from tests.otlp_builders import evaluation_log, logs_request
    from tokenpulse.collector.normalize import NormalizeConfig
    from tokenpulse.collector.pipeline import Pipeline, request_digest
    from tokenpulse.collector.pricing import Pricer

    wal = WriteAheadLog(tmp_path / "wal")
    server = None
    if where == "worker":
        server = LogServer(LocalRequestLog(wal), WorkerMetrics())
        pipeline = Pipeline(_worker_channel(server, 0), NormalizeConfig(), Pricer())
    else:
        pipeline = Pipeline(wal, NormalizeConfig(), Pricer())
    transport = f"retry-{where}"
    spans = export_request(*(llm_span() for _ in range(3)))
    logs = logs_request(evaluation_log(), evaluation_log())
    before = _counted(transport)
    for _ in range(2):  # the request, then the exporter's retry of it
        assert pipeline.ingest(spans, transport, request_digest(spans.SerializeToString())).calls in (0, 3)
        digest = request_digest(logs.SerializeToString(), "logs")
        assert pipeline.ingest_logs(logs, transport, digest).evaluations in (0, 2)
    after = _counted(transport)
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 2, 2]
    if server is not None:
        server.close()
