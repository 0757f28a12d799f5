"""Every view tells the same story: the API, the incident, the page and the metrics show the state each
alert really has — firing, explained by its cause's alert, inhibited by an alert, silenced by a silence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.alert_helpers import LINKS, FakeClock
from tests.detector_harness import minute
from tokenpulse.alerts.api import alerts_router
from tokenpulse.alerts.matchers import parse_matchers
from tokenpulse.alerts.service import AlertService
from tokenpulse.alerts.settings import alert_settings
from tokenpulse.alerts.store import AlertStore
from tokenpulse.api import create_api_app
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.detectors.base import CRITICAL, WARNING, DetectorSettings, Observation, make_scope
from tokenpulse.detectors.explain import hold_back
from tokenpulse.detectors.state import AlertStates
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter

RULE = DetectorSettings(for_=timedelta(minutes=2), keep_firing_for=timedelta(minutes=2))
CAUSE = make_scope(service="support", route="/chat", model="claude")
SYMPTOM = make_scope(service="support", route="/chat")  # held back while the collapse explains it
BILLING = make_scope(service="billing")  # a cost spike of its own, silenced
SEARCH = make_scope(service="search", model="gpt")


def observe(detector: str, scope, m: int, severity: str = WARNING) -> Observation:
    return Observation(detector, scope, minute(m), severity, 1.0, 0.5, 0.1, 100, f"{detector} summary")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AlertStates, AlertService, FakeClock]]:
    clock = FakeClock(minute(0))
    config = alert_settings({"group_wait_seconds": 0}, {"TOKENPULSE_WEBHOOK_URL": "http://hook.test/x"})
    service = AlertService(AlertStore(tmp_path / "alerts.sqlite"), config, LINKS, clock)
    states = AlertStates()
    service.watch(states)
    service.store.add_silence(parse_matchers(["service=billing"]), minute(0), minute(600), "oncall", "budget")
    for m in range(0, 6):
        now = states.step(
            "cache_hit_collapse", RULE, [observe("cache_hit_collapse", CAUSE, m, CRITICAL)], minute(m)
        )
        now += states.step(
            "cost_spike",
            RULE,
            [observe("cost_spike", SYMPTOM, m), observe("cost_spike", BILLING, m)],
            minute(m),
        )
        now += states.step("latency_p99_drift", RULE, [observe("latency_p99_drift", SEARCH, m)], minute(m))
        service.on_transitions(hold_back(states, now, minute(m)))
        clock.moment = minute(m)
        service.dispatcher.flush_due()
    yield states, service, clock
    service.store.close()


def test_each_alert_has_the_state_it_really_has(world) -> None:
    states, service, _ = world
    views = service.views
    assert views is not None
    by_detector = {(a.detector, a.scope): views.state(a) for a in states.alerts.values()}
    collapse = states.alerts[("cache_hit_collapse", CAUSE)]
    silence = service.store.silences()[0]
    assert by_detector == {
        ("cache_hit_collapse", CAUSE): "firing",
        ("cost_spike", SYMPTOM): f"explained by {collapse.fingerprint}",
        ("cost_spike", BILLING): f"silenced by {silence.id}",
        ("latency_p99_drift", SEARCH): "firing",
    }
    views.update_metrics()

    def gauge(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert gauge("tokenpulse_alerts_firing", detector="cache_hit_collapse", severity="critical") == 1
    assert gauge("tokenpulse_alerts_firing", detector="cost_spike", severity="warning") is None
    assert gauge("tokenpulse_alerts", detector="cost_spike", severity="warning", state="explained") == 1
    assert gauge("tokenpulse_alerts", detector="cost_spike", severity="warning", state="silenced") == 1


def test_the_api_and_the_incident_page_tell_the_same_story(world, tmp_path: Path) -> None:
    states, service, clock = world
    store = Store.open(tmp_path / "data")
    wal = WriteAheadLog(tmp_path / "wal")
    try:
        app = create_api_app(store, wal, LogWriter(wal, store), states, service.views)
        app.include_router(alerts_router(store, states, service.store, clock, service=service))
        client = TestClient(app)
        alerts = {
            (a["detector"], a["scope"]["service"]): a for a in client.get("/api/v1/alerts").json()["alerts"]
        }
        assert alerts[("cost_spike", "support")]["state"] == "firing"  # the machine's state, as before
        assert alerts[("cost_spike", "support")]["status"].startswith("explained by ")
        assert alerts[("cost_spike", "billing")]["status"].startswith("silenced by ")
        assert alerts[("cache_hit_collapse", "support")]["status"] == "firing"

        incidents = client.get("/api/v1/incidents").json()["incidents"]
        # Three incidents: the collapse, the silenced billing spike, the search drift (the explained
        # symptom was never emitted, so it is in none).
        assert len(incidents) == 3
        by_id = {i["id"]: i for i in incidents}
        collapse = by_id[alerts[("cache_hit_collapse", "support")]["incident"]]
        billing = by_id[alerts[("cost_spike", "billing")]["incident"]]
        assert [a["state"] for a in billing["alerts"]] == [alerts[("cost_spike", "billing")]["status"]]
        assert alerts[("cost_spike", "support")]["incident"] is None
        assert client.get(f"/api/v1/incidents/{collapse['id']}").json() == collapse
        assert client.get("/api/v1/incidents/inc-nope").status_code == 404

        page = client.get(f"/incidents/{collapse['id']}")
        assert page.status_code == 200
        assert "Roll back" in page.text and "no change found" in page.text.lower()
        assert "cache_hit_collapse" in page.text and "firing" in page.text
        # The alert's runbook says which incident it is in, and links to it.
        collapse_id = alerts[("cache_hit_collapse", "support")]["id"]
        runbook = client.get(f"/runbooks/cache_hit_collapse?alert={collapse_id}")
        assert f'href="/incidents/{collapse["id"]}"' in runbook.text
        assert "Most likely cause" in runbook.text
        billing_id = alerts[("cost_spike", "billing")]["id"]
        assert "silenced by" in client.get(f"/runbooks/cost_spike?alert={billing_id}").text
    finally:
        wal.close()
        store.close()


def test_alerts_firing_before_incidents_existed_are_put_in_one_without_a_word(tmp_path: Path) -> None:
    # A state file from before incidents (or a backtest's): the firing alert joins an incident when the
    # views are set up, and nothing is recorded for receivers.
    states = AlertStates()
    for m in range(0, 4):
        hold_back(
            states, states.step("cost_spike", RULE, [observe("cost_spike", BILLING, m)], minute(m)), minute(m)
        )
    config = alert_settings({"group_wait_seconds": 0}, {"TOKENPULSE_WEBHOOK_URL": "http://hook.test/x"})
    service = AlertService(AlertStore(tmp_path / "alerts.sqlite"), config, LINKS, FakeClock(minute(5)))
    assert service.incidents() == []
    views = service.watch(states)
    (incident,) = service.incidents()
    (alert,) = states.alerts.values()
    assert [a["id"] for a in incident["alerts"]] == [alert.fingerprint]
    assert views.incident(alert.fingerprint) == incident["id"]
    service.dispatcher.flush_due()
    assert service.store.notifications() == []
    service.watch(states)  # again (a second API app): no second incident
    assert len(service.incidents()) == 1
    service.store.close()
