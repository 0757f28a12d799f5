"""kill -9 during sustained ingest, then exporter retries: every span is stored exactly once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.daemon import Daemon
from tests.load import Load, stored_calls
from tests.otlp_builders import export_request, llm_span
from tokenpulse.storage.store import Store

SENDERS = 3


@pytest.mark.parametrize("acknowledged_before_kill", [15, 60])
def test_kill_9_loses_no_acknowledged_span_and_duplicates_none(
    tmp_path: Path, acknowledged_before_kill: int
) -> None:
    daemon = Daemon(tmp_path / "data").start()
    load = Load(daemon, senders=SENDERS, transports=("http", "grpc"))
    load.start()
    load.wait_acknowledged(acknowledged_before_kill)
    daemon.kill()  # SIGKILL: no shutdown path runs
    load.join()

    restarted = Daemon(tmp_path / "data").start()  # replays the write-ahead log
    # What the exporters do next: retry the requests that were never answered. Some of them were
    # durable before the kill; the daemon must not store those twice.
    assert len(load.unacknowledged) <= SENDERS
    load.retry_unacknowledged(restarted)
    assert restarted.stop() == 0

    stored_ids, rolled_up = stored_calls(tmp_path / "data")
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
