"""A storage outage under a live daemon, with a kill -9 in the middle of it: ingest goes on into the
write-ahead log, readiness says why, and on recovery everything acknowledged is stored exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.daemon import Daemon
from tests.load import stored_calls
from tests.otlp_builders import export_request, llm_span
from tests.test_e2e_backpressure import grpc_export

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def send(daemon: Daemon, requests: int, spans: int) -> set[str]:
    """Send over both transports; returns the span ids acknowledged."""
    acknowledged: set[str] = set()
    for n in range(requests):
        batch = [llm_span() for _ in range(spans)]
        body = export_request(*batch, service="outage").SerializeToString()
        if n % 2:
            grpc_export(daemon, body)
        else:
            response = httpx.post(f"{daemon.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
            assert response.status_code == 200
        acknowledged |= {span.span_id.hex() for span in batch}
    return acknowledged


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_outage_then_kill_then_recovery_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    storage_down = tmp_path / "storage-down"
    storage_down.touch()
    launcher = ("tests.faulty_serve", str(storage_down))
    daemon = Daemon(tmp_path / "data", launcher=launcher).start()
    acknowledged = send(daemon, 10, 20)

    def not_ready() -> bool:
        response = httpx.get(f"{daemon.api}/readyz", timeout=10)
        return response.status_code == 503 and "inserts into storage are failing" in response.text

    wait_until(not_ready)
    metrics = httpx.get(f"{daemon.api}/metrics", timeout=10).text
    assert (
        "tokenpulse_insert_failures_total" in metrics
        and "tokenpulse_insert_failures_total 0.0" not in metrics
    )
    assert "tokenpulse_wal_pending_bytes 0.0" not in metrics
    daemon.kill()  # SIGKILL in the middle of the outage

    restarted = Daemon(tmp_path / "data", launcher=launcher).start()  # storage still down
    acknowledged |= send(restarted, 6, 20)
    storage_down.unlink()  # storage is back: the writer's next retry drains the log
    wait_until(lambda: httpx.get(f"{restarted.api}/readyz", timeout=10).status_code == 200)
    assert restarted.stop() == 0

    stored, rolled_up = stored_calls(tmp_path / "data")
    assert len(stored) == len(set(stored)) == len(acknowledged) == 320
    assert set(stored) == acknowledged
    assert rolled_up == 320
