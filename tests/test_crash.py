"""kill -9 during sustained ingest: every acknowledged span is stored after restart, none twice."""

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
        self.requests_acknowledged = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send) for _ in range(SENDERS)]

    def _send(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                spans = [llm_span() for _ in range(SPANS_PER_REQUEST)]
                ids = {span.span_id.hex() for span in spans}
                with self._lock:
                    self.sent |= ids
                try:
                    response = client.post(
                        f"{self.daemon.otlp_http}/v1/traces",
                        content=export_request(*spans).SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                except httpx.HTTPError:
                    return  # the daemon is gone
                if response.status_code == 200:
                    with self._lock:
                        self.acknowledged |= ids
                        self.requests_acknowledged += 1

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
    assert restarted.stop() == 0

    store = Store.open(tmp_path / "data")
    try:
        stored_ids = [row[0] for row in store.rows("SELECT span_id FROM calls")]
        rolled_up = store.rows("SELECT sum(calls) FROM calls_1m")[0][0]
    finally:
        store.close()
    stored = set(stored_ids)
    assert len(stored_ids) == len(stored), "a span was stored twice"
    assert load.acknowledged <= stored, f"{len(load.acknowledged - stored)} acknowledged spans lost"
    # Spans of requests cut off by the kill may be stored (durable, unacknowledged) but nothing else.
    assert stored <= load.sent
    assert len(stored - load.acknowledged) <= SENDERS * SPANS_PER_REQUEST
    assert rolled_up == len(stored_ids)
