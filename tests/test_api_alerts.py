"""What on-call sees at /api/v1/alerts while the daemon holds the store."""

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from tests.detector_harness import minute
from tokenpulse.api import create_api_app
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.detectors.base import CRITICAL, WARNING, DetectorSettings, Observation, make_scope
from tokenpulse.detectors.state import AlertStates
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter


def test_alerts_are_listed_filtered_and_fetched_by_id(store: Store, tmp_path: Path) -> None:
    states = AlertStates()
    rule = DetectorSettings(for_=timedelta(minutes=1))
    collapse = make_scope(service="support", route="/chat", model="claude")
    spend = make_scope(service="support", user="alice")
    collapsed = Observation(
        "cache_hit_collapse", collapse, minute(0), CRITICAL, 0.1, 0.3, 0.9, 100, "ratio 10%"
    )
    spending = Observation("cost_spike", spend, minute(2), WARNING, 9.0, 3.0, 1.0, 50, "alice spends")
    for m in range(3):
        states.step("cache_hit_collapse", rule, [replace(collapsed, at=minute(m))], minute(m))
        states.step("cost_spike", rule, [spending] if m == 2 else [], minute(m))
    wal = WriteAheadLog(tmp_path / "wal")
    client = TestClient(create_api_app(store, wal, LogWriter(wal, store), states))

    listed = client.get("/api/v1/alerts").json()["alerts"]
    assert [(a["detector"], a["state"], a["severity"]) for a in listed] == [
        ("cache_hit_collapse", "firing", "critical"),
        ("cost_spike", "pending", "warning"),
    ]
    assert listed[0]["scope"] == {"service": "support", "route": "/chat", "model": "claude"}
    firing = client.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"]
    assert [a["detector"] for a in firing] == ["cache_hit_collapse"]
    one = client.get(f"/api/v1/alerts/{listed[1]['id']}").json()
    assert one["summary"] == "alice spends" and one["fired_at"] is None
    assert client.get("/api/v1/alerts/nope").status_code == 404
