"""kill -9 during sustained ingest, then exporter retries: every span is stored exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.daemon import Daemon
from tests.otlp_builders import export_request, llm_span
from tokenpulse.storage.store import Store

SENDERS = 3
SPANS_PER_REQUEST = 50


class Load:
    """Senders that post until the daemon dies, remembering what was acknowledged and what was sent."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.acknowledged: set[str] = set()
        self.sent: set[str] = set()
        self.unacknowledged: list[tuple[bytes, set[str]]] = []  # what an exporter would retry
        self.requests_acknowledged = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send) for _ in range(SENDERS)]

    def _send(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                spans = [llm_span() for _ in range(SPANS_PER_REQUEST)]
                ids = {span.span_id.hex() for span in spans}
                body = export_request(*spans).SerializeToString()
                with self._lock:
                    self.sent |= ids
                try:
                    response = client.post(
                        f"{self.daemon.otlp_http}/v1/traces",
                        content=body,
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                except httpx.HTTPError:
                    with self._lock:
                        self.unacknowledged.append((body, ids))
                    return  # the daemon is gone
                with self._lock:
                    if response.status_code == 200:
                        self.acknowledged |= ids
                        self.requests_acknowledged += 1
                    else:
                        self.unacknowledged.append((body, ids))

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


@pytest.mark.parametrize("acknowledged_before_kill", [15, 60])
def test_kill_9_loses_no_acknowledged_span_and_duplicates_none(
    tmp_path: Path, acknowledged_before_kill: int
) -> None:
    daemon = Daemon(tmp_path / "data").start()
    load = Load(daemon)
    load.start()
    load.wait_acknowledged(acknowledged_before_kill)
    daemon.kill()  # SIGKILL: no shutdown path runs
    load.join()

    restarted = Daemon(tmp_path / "data").start()  # replays the write-ahead log
    # What the exporters do next: retry the requests that were never answered. Some of them were
    # durable before the kill; the daemon must not store those twice.
    assert len(load.unacknowledged) <= SENDERS
    for body, ids in load.unacknowledged:
        response = httpx.post(
            f"{restarted.otlp_http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert response.status_code == 200
        load.acknowledged |= ids
    assert restarted.stop() == 0

    store = Store.open(tmp_path / "data")
    try:
        stored_ids = [row[0] for row in store.rows("SELECT span_id FROM calls")]
        rolled_up = store.rows("SELECT sum(calls) FROM calls_1m")[0][0]
    finally:
        store.close()
    assert len(stored_ids) == len(set(stored_ids)), "a span was stored twice"
    assert set(stored_ids) == load.acknowledged == load.sent
    assert rolled_up == len(stored_ids)


def test_a_retried_request_is_stored_once_even_across_a_restart(tmp_path: Path) -> None:
    body = export_request(*(llm_span() for _ in range(5))).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    daemon = Daemon(tmp_path / "data").start()
    for _ in range(2):
        assert httpx.post(f"{daemon.otlp_http}/v1/traces", content=body, headers=headers).status_code == 200
    daemon.kill()
    restarted = Daemon(tmp_path / "data").start()
    assert httpx.post(f"{restarted.otlp_http}/v1/traces", content=body, headers=headers).status_code == 200
    metrics = httpx.get(f"{restarted.api}/metrics").text
    assert 'tokenpulse_duplicate_requests_total{transport="http"} 1.0' in metrics
    assert restarted.stop() == 0
    store = Store.open(tmp_path / "data")
    try:
        assert store.rows("SELECT count() FROM calls")[0][0] == 5
        assert store.rows("SELECT sum(calls) FROM calls_1m")[0][0] == 5
    finally:
        store.close()
