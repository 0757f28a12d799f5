"""The live detector cycle on a real store: pending -> firing with suspects, state kept across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.factories import call_record, store_records
from tokenpulse.detectors import health
from tokenpulse.detectors.catalog.cache_hit_collapse import CacheHitCollapse
from tokenpulse.detectors.service import INGEST_DELAY, DetectorService
from tokenpulse.storage.store import Store

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
ONSET = NOW - timedelta(minutes=20)


def calls_for(minute: datetime, collapsed: bool) -> list:
    base_ns = int(minute.timestamp()) * 10**9
    return [
        call_record(
            time_unix_nano=base_ns + i * 6 * 10**9,
            provider="anthropic",
            response_model="claude-sonnet-4-5",
            route="/support",
            input_tokens=5000,
            cache_read_tokens=300 if collapsed else 4000,
            cache_write_tokens=4000 if collapsed else 500,
            prompt_version="v8" if collapsed else "v7",
        )
        for i in range(10)
    ]


@pytest.fixture
def history(store: Store, tmp_path: Path) -> Store:
    records = []
    minute = ONSET - timedelta(hours=2)
    while minute < NOW:
        records += calls_for(minute, collapsed=minute >= ONSET)
        minute += timedelta(minutes=1)
    store_records(store, tmp_path, records)
    return store


def test_cycles_fire_with_suspects_record_events_and_survive_a_restart(
    history: Store, tmp_path: Path
) -> None:
    state = tmp_path / "alerts.json"
    service = DetectorService(history, [CacheHitCollapse()], state, "http://tp:8000/runbooks")
    fired = []
    for offset in range(0, 12):
        fired += service.cycle(ONSET + timedelta(minutes=offset) + INGEST_DELAY)
    (transition,) = fired
    assert transition.status == "firing" and transition.severity == "critical"
    # 10 calls a minute: one collapsed minute is 7.7 nats of evidence, two pass the threshold (13.3) at
    # ONSET + 2, and the change has been seen for the 4-minute floor at ONSET + 5.
    assert transition.at == ONSET + timedelta(minutes=5)
    assert dict(transition.scope) == {
        "service": "checkout",
        "route": "/support",
        "model": "claude-sonnet-4-5",
    }
    assert transition.suspects[0]["dimension"] == "prompt_version"
    assert transition.suspects[0]["value"] == "v8" and transition.suspects[0]["new"]
    assert transition.runbook_url == "http://tp:8000/runbooks/cache_hit_collapse"
    assert transition.window == CacheHitCollapse().settings.window  # receivers need no windows map
    events = history.rows("SELECT status, detector, scope['route'], suspects FROM alert_events")
    assert [(e[0], e[1], e[2]) for e in events] == [("firing", "cache_hit_collapse", "/support")]
    assert json.loads(events[0][3])[0]["value"] == "v8"

    restarted = DetectorService(history, [CacheHitCollapse()], state, "http://tp:8000/runbooks")
    assert [a.state for a in restarted.engine.states.alerts.values()] == ["firing"]
    # Still firing: nothing new to say.
    assert restarted.cycle(ONSET + timedelta(minutes=13) + INGEST_DELAY) == []


def test_each_tenant_is_evaluated_on_its_own_traffic(store: Store, tmp_path: Path) -> None:
    # Two tenants with the same service and route; only acme's prompt edit collapses its cache.
    for tenant in ("acme", "globex"):
        records = []
        minute = ONSET - timedelta(hours=2)
        while minute < NOW:
            records += calls_for(minute, collapsed=tenant == "acme" and minute >= ONSET)
            minute += timedelta(minutes=1)
        store_records(store, tmp_path / tenant, records, tenant=tenant)
    service = DetectorService(store, [CacheHitCollapse()], tmp_path / "alerts.json", "")
    fired = []
    for offset in range(0, 12):
        fired += service.cycle(ONSET + timedelta(minutes=offset) + INGEST_DELAY)
    (transition,) = fired
    # Pooled, the two tenants would read as one scope at half the collapse; apart, acme alone fires,
    # at the same minute as a single tenant does, and its suspects are its own calls'.
    assert transition.at == ONSET + timedelta(minutes=5)
    assert transition.scope == (
        ("tenant", "acme"), ("service", "checkout"), ("route", "/support"), ("model", "claude-sonnet-4-5")
    )  # fmt: skip
    assert transition.suspects[0]["value"] == "v8"
    events = store.rows("SELECT scope['tenant'], scope['route'] FROM alert_events")
    assert events == [("acme", "/support")]


def test_backtest_command_prints_the_same_transitions_as_json_lines(history: Store, tmp_path: Path) -> None:
    history.close()  # the command opens the store itself
    data_dir = tmp_path / "data"
    config = tmp_path / "tokenpulse.toml"
    config.write_text(
        'runbook_base_url = "https://runbooks.example/tp"\n[detectors.ttft_slo]\nenabled = false\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", "backtest", "--data", str(data_dir), "--config", str(config),
         "--start", (ONSET - timedelta(minutes=30)).isoformat(), "--end", NOW.isoformat()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    transitions = [json.loads(line) for line in result.stdout.splitlines()]
    collapse = [t for t in transitions if t["detector"] == "cache_hit_collapse"]
    assert [(t["status"], t["severity"], t["at"]) for t in collapse] == [
        ("firing", "critical", (ONSET + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    ]
    (firing,) = collapse
    assert firing["scope"] == {"service": "checkout", "route": "/support", "model": "claude-sonnet-4-5"}
    assert firing["suspects"][0]["value"] == "v8"
    assert firing["runbook_url"] == "https://runbooks.example/tp/cache_hit_collapse"
    assert set(firing) >= {"at", "status", "detector", "severity", "scope", "value", "threshold", "baseline",
                           "summary", "suspects", "runbook_url"}  # fmt: skip


def test_an_unreadable_state_file_starts_from_inactive(store: Store, tmp_path: Path, caplog) -> None:
    state = tmp_path / "alerts.json"
    state.write_text('[{"detector": "x", "truncated')
    service = DetectorService(store, [CacheHitCollapse()], state, "")
    assert not service.engine.states.alerts and "ignoring unreadable alert state" in caplog.text


class _DownStore:
    """A store whose ClickHouse has gone away: every query fails."""

    class client:
        @staticmethod
        def query_df(*_args, **_kwargs):
            raise ConnectionError("Connection refused")

        @staticmethod
        def insert(*_args, **_kwargs):
            raise ConnectionError("Connection refused")


def test_storage_errors_raise_tokenpulse_unhealthy_and_keep_the_other_alerts(
    history: Store, tmp_path: Path
) -> None:
    state = tmp_path / "alerts.json"
    service = DetectorService(history, [CacheHitCollapse()], state, "http://tp:8000/runbooks")

    def cycles(offsets: range) -> list:
        return [t for m in offsets for t in service.cycle(ONSET + timedelta(minutes=m) + INGEST_DELAY)]

    fired = cycles(range(6))
    assert [t.detector for t in fired] == ["cache_hit_collapse"]

    service.store = _DownStore()  # type: ignore[assignment]
    down = cycles(range(6, 10))
    # one failed cycle does not page (for 2 minutes): the third in a row does; the collapse is not resolved
    assert [(t.at, t.detector, t.status, t.severity, dict(t.scope)) for t in down] == [
        (ONSET + timedelta(minutes=8), "tokenpulse_unhealthy", "firing", "critical", {"component": "storage"})
    ]
    assert "detector queries failed (ConnectionError: Connection refused)" in down[0].summary
    assert down[0].runbook_url == "http://tp:8000/runbooks/tokenpulse_unhealthy"
    assert [a.state for a in service.engine.states.alerts.values()] == ["firing", "firing"]

    service.store = history
    back = cycles(range(10, 13))
    assert [(t.at, t.detector, t.status) for t in back] == [
        (ONSET + timedelta(minutes=11), "tokenpulse_unhealthy", "resolved")  # healthy from +10, kept 2 min
    ]


def test_a_failing_writer_is_unhealthy_even_when_queries_answer(history: Store, tmp_path: Path) -> None:
    problem: list[str] = []
    service = DetectorService(
        history, [CacheHitCollapse()], tmp_path / "alerts.json", "",
        storage_problem=lambda: problem[0] if problem else None,
    )  # fmt: skip
    problem.append("inserts into storage are failing")
    transitions = [t for offset in range(3) for t in service.cycle(NOW + timedelta(minutes=offset))]
    unhealthy = [t for t in transitions if t.detector == "tokenpulse_unhealthy"]
    assert len(unhealthy) == 1 and unhealthy[0].summary.endswith("inserts into storage are failing")
    assert unhealthy[0].window == health.SETTINGS.window


def test_backtest_says_what_each_detector_watches(history: Store, tmp_path: Path) -> None:
    history.close()  # the command opens the store itself
    result = subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", "backtest", "--data", str(tmp_path / "data"), "--coverage",
         "--start", (NOW - timedelta(minutes=2)).isoformat(), "--end", NOW.isoformat()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    coverage = {
        (c["detector"], c["scope"]["route"]): c["status"]
        for c in (x["coverage"] for x in lines if "coverage" in x)
        if "route" in c["scope"]  # cost_spike also watches whole services and their models
    }
    assert coverage[("cache_hit_collapse", "/support")] == "watched"
    assert coverage[("traffic_drop", "/support")] == "learning"  # no yesterday at this time yet
    assert "cache_hit_collapse: 1 watched" in result.stderr
