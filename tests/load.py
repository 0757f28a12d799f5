"""Senders that post OTLP requests to a daemon over HTTP and gRPC until stopped or the daemon dies,
remembering what was acknowledged and what an exporter would retry (for crash tests and benches)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.daemon import Daemon
from tests.otlp_builders import export_request, llm_span
from tokenpulse.storage.store import Store

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Load:
    """``senders`` threads, each on one transport of ``transports`` in turn, ``spans`` spans a request."""

    def __init__(
        self, daemon: Daemon, senders: int = 3, spans: int = 50, transports: tuple[str, ...] = ("http",)
    ) -> None:
        self.daemon = daemon
        self.spans = spans
        self.acknowledged: set[str] = set()
        self.sent: set[str] = set()
        self.unacknowledged: list[tuple[bytes, set[str]]] = []  # what an exporter would retry
        self.requests_acknowledged = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(transports[n % len(transports)],))
            for n in range(senders)
        ]

    def _send(self, transport: str) -> None:
        process = self.daemon.process  # the daemon this sender loads, even if the test starts another
        assert process is not None
        with (
            httpx.Client(timeout=10) as client,
            grpc.insecure_channel(f"127.0.0.1:{self.daemon.grpc_port}") as channel,
        ):
            export = channel.unary_unary(EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
            while not self._stop.is_set():
                spans = [llm_span() for _ in range(self.spans)]
                ids = {span.span_id.hex() for span in spans}
                body = export_request(*spans).SerializeToString()
                with self._lock:
                    self.sent |= ids
                while True:
                    try:
                        ok = self._post(transport, body, client, export)
                        break
                    except (httpx.HTTPError, grpc.RpcError):
                        # A killed worker drops the requests in its hands while the daemon lives on:
                        # an exporter sends the same request again, on a new connection.
                        if process.poll() is None and not self._stop.is_set():
                            time.sleep(0.1)
                            continue
                        with self._lock:
                            self.unacknowledged.append((body, ids))
                        return  # the daemon is gone, or the test has stopped the load
                with self._lock:
                    if ok:
                        self.acknowledged |= ids
                        self.requests_acknowledged += 1
                    else:
                        self.unacknowledged.append((body, ids))

    def _post(
        self, transport: str, body: bytes, client: httpx.Client, export: grpc.UnaryUnaryMultiCallable
    ) -> bool:
        """Send one request; True if the daemon acknowledged it."""
        if transport == "grpc":
            export(body, timeout=10)
            return True
        response = client.post(
            f"{self.daemon.otlp_http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        return response.status_code == 200

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_acknowledged(self, requests: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.requests_acknowledged < requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.requests_acknowledged >= requests

    def join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def retry_unacknowledged(self, daemon: Daemon) -> None:
        """What the exporters do after a restart: send again every request that was never answered."""
        for body, ids in self.unacknowledged:
            response = httpx.post(
                f"{daemon.otlp_http}/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
                timeout=30,
            )
            assert response.status_code == 200
            self.acknowledged |= ids
        self.unacknowledged = []


def stored_calls(data_dir: Path) -> tuple[list[str], int]:
    """The span ids in ``calls`` and the rollup's count of calls, read from a stopped daemon's store."""
    store = Store.open(data_dir)
    try:
        span_ids = [row[0] for row in store.rows("SELECT span_id FROM calls")]
        return span_ids, store.rows("SELECT sum(calls) FROM calls_1m")[0][0]
    finally:
        store.close()
