"""With API keys, every alert read is scoped to the key's tenant: live alerts, their history, the
runbook's alert context and silences. tokenpulse's own health alert concerns every tenant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.api_app import api_over
from tokenpulse.auth import ApiKeys, RequireApiKey
from tokenpulse.detectors import health
from tokenpulse.detectors.base import CRITICAL, Scope
from tokenpulse.detectors.service import ALERT_EVENT_COLUMNS
from tokenpulse.detectors.state import FIRING, Alert, AlertStates

ACME_KEY = "acme-0123456789abcdef"
GLOBEX_KEY = "globex-0123456789abcdef"
AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def firing(detector: str, scope: Scope) -> Alert:
    return Alert(detector, scope, FIRING, CRITICAL, AT, AT, 0.1, 0.5, 0.8, "summary", fired_at=AT)


ACME = firing("cache_hit_collapse", (("tenant", "acme"), ("service", "checkout"), ("route", "/support")))
GLOBEX = firing("cache_hit_collapse", (("tenant", "globex"), ("service", "checkout"), ("route", "/support")))
UNHEALTHY = firing(health.NAME, health.SCOPE)


def event_row(alert: Alert) -> list:
    """The alert's firing as ``alert_events`` records it."""
    return [
        AT, alert.fingerprint, "firing", alert.detector, alert.severity, dict(alert.scope), alert.value,
        alert.threshold, alert.baseline, alert.summary, json.dumps([]), "", alert.active_at,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    states = AlertStates([ACME, GLOBEX, UNHEALTHY])
    with api_over(tmp_path_factory.mktemp("tenancy"), [], states) as (app, store):
        events = [event_row(a) for a in (ACME, GLOBEX, UNHEALTHY)]
        store.client.insert("alert_events", events, column_names=ALERT_EVENT_COLUMNS)
        app.add_middleware(RequireApiKey, keys=ApiKeys.of({ACME_KEY: "acme", GLOBEX_KEY: "globex"}))
        with TestClient(app) as test_client:
            yield test_client


def as_tenant(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_key_reads_its_own_tenants_alerts_and_tokenpulses_health(client: TestClient) -> None:
    listed = client.get("/api/v1/alerts", headers=as_tenant(ACME_KEY)).json()["alerts"]
    assert sorted(a["id"] for a in listed) == sorted([ACME.fingerprint, UNHEALTHY.fingerprint])
    events = client.get("/api/v1/alert-events", headers=as_tenant(GLOBEX_KEY)).json()["events"]
    assert sorted(e["id"] for e in events) == sorted([GLOBEX.fingerprint, UNHEALTHY.fingerprint])

    assert client.get(f"/api/v1/alerts/{ACME.fingerprint}", headers=as_tenant(ACME_KEY)).status_code == 200
    # Another tenant's alert is as unknown as one that never existed, live or in the history.
    assert client.get(f"/api/v1/alerts/{GLOBEX.fingerprint}", headers=as_tenant(ACME_KEY)).status_code == 404
    runbook = "/runbooks/cache_hit_collapse?alert="
    own = client.get(runbook + ACME.fingerprint, headers=as_tenant(ACME_KEY))
    other = client.get(runbook + GLOBEX.fingerprint, headers=as_tenant(ACME_KEY))
    assert "tenant=acme" in own.text and f"No alert {GLOBEX.fingerprint}" in other.text
    assert "globex" not in other.text


def test_a_keys_silences_mute_and_show_its_own_tenant_only(client: TestClient) -> None:
    body = {"matchers": ["detector=cache_hit_collapse"], "duration_minutes": 60}
    created = client.post("/api/v1/silences", json=body, headers=as_tenant(ACME_KEY))
    assert created.status_code == 201
    silence = created.json()
    assert silence["matchers"] == ["detector=cache_hit_collapse", "tenant=acme"]

    path = f"/api/v1/silences/{silence['id']}"
    assert [s["id"] for s in client.get("/api/v1/silences", headers=as_tenant(GLOBEX_KEY)).json()["silences"]
            if s["id"] == silence["id"]] == []  # fmt: skip
    assert client.get(path, headers=as_tenant(GLOBEX_KEY)).status_code == 404
    assert client.delete(path, headers=as_tenant(GLOBEX_KEY)).status_code == 404  # cannot lift it either
    assert client.get(path, headers=as_tenant(ACME_KEY)).json()["state"] == "active"

    for matcher in ("tenant=globex", "tenant=~.*", "tenant!=acme"):
        refused = {"matchers": ["detector=cache_hit_collapse", matcher], "duration_minutes": 60}
        response = client.post("/api/v1/silences", json=refused, headers=as_tenant(ACME_KEY))
        assert response.status_code == 422 and "tenant=acme" in response.text

    assert client.delete(path, headers=as_tenant(ACME_KEY)).json()["state"] == "expired"
