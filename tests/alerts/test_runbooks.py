"""Runbooks: one per detector with the sections on-call needs, served rendered with an alert's context."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.alert_helpers import FakeClock
from tokenpulse.alerts.api import alerts_router
from tokenpulse.alerts.runbooks import RUNBOOKS, runbook_source
from tokenpulse.alerts.store import AlertStore
from tokenpulse.api import create_api_app
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.detectors.base import CRITICAL, DetectorSettings, Observation, make_scope
from tokenpulse.detectors.catalog import NAMES
from tokenpulse.detectors.service import ALERT_EVENT_COLUMNS
from tokenpulse.detectors.state import AlertStates, fingerprint
from tokenpulse.storage.cache_ratio import hit_ratio_sql
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter

SECTIONS = ("## What it means", "## Confirm it", "## Likely causes", "## Roll back")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("detector", RUNBOOKS)
def test_every_detector_has_a_runbook_with_rollback_steps(detector: str) -> None:
    source = runbook_source(detector)
    assert source == (ROOT / "runbooks" / f"{detector}.md").read_text()  # one source of truth
    assert source.startswith(f"# {detector} ")
    for section in SECTIONS:
        assert section in source, f"{detector}: missing {section}"
    rollback = source.split("## Roll back", 1)[1]
    for step in ("**Identify the change**", "**Revert it**", "**Redeploy**", "**Recovery check**"):
        assert step in rollback, f"{detector}: rollback lacks {step}"
    assert "within" in rollback.split("**Recovery check**")[1]  # the recovery check has a time bound
    if detector in NAMES:  # the catalog's alerts name suspects (the health alert has none)
        assert "{{suspects}}" in source


def test_no_runbook_without_a_detector() -> None:
    assert set(RUNBOOKS) >= set(NAMES)
    assert {p.stem for p in (ROOT / "runbooks").glob("*.md")} == set(RUNBOOKS)


@pytest.fixture
def client(store: Store, tmp_path: Path) -> TestClient:
    states = AlertStates()
    scope = make_scope(service="support", route="/chat", model="claude-sonnet-4-5")
    rule = DetectorSettings(for_=timedelta(0))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    observation = Observation("cache_hit_collapse", scope, now, CRITICAL, 0.07, 0.3, 0.89, 100, "ratio 7%")
    states.step("cache_hit_collapse", rule, [observation], now)
    states.alerts[("cache_hit_collapse", scope)].suspects = [
        {"dimension": "prompt_version", "value": "v8", "share_before": 0.0, "share_after": 1.0, "new": True}
    ]
    # An alert resolved long ago: only alert_events knows it.
    old_scope = make_scope(service="billing", user="alice")
    suspects = [{"dimension": "user", "value": "alice", "share_before": 0.02, "share_after": 0.27}]
    store.client.insert(
        "alert_events",
        [[now - timedelta(days=2), fingerprint("cost_spike", old_scope), "resolved", "cost_spike", "warning",
          dict(old_scope), 9.0, 3.0, 1.0, "alice spends 9x", json.dumps(suspects), "",
          now - timedelta(days=2, hours=1)]],
        column_names=ALERT_EVENT_COLUMNS,
    )  # fmt: skip
    wal = WriteAheadLog(tmp_path / "wal")
    app = create_api_app(store, wal, LogWriter(wal, store), states)
    app.include_router(alerts_router(store, states, AlertStore(tmp_path / "alerts.sqlite"), FakeClock(now)))
    return TestClient(app)


def test_runbook_page_fills_in_the_alerts_scope_and_suspects(client: TestClient) -> None:
    alert_id = fingerprint("cache_hit_collapse", make_scope(service="support", route="/chat",
                                                            model="claude-sonnet-4-5"))  # fmt: skip
    page = client.get(f"/runbooks/cache_hit_collapse?alert={alert_id}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "service=support, route=/chat, model=claude-sonnet-4-5" in text
    assert "prompt_version=v8 (new, 0% -&gt; 100% of calls)" in text
    assert "service = 'support' AND route = '/chat' AND model = 'claude-sonnet-4-5'" in text  # queries filled
    assert "<h2>Roll back</h2>" in text and "{{" not in text


def test_runbook_page_reads_old_alerts_from_the_event_log(client: TestClient) -> None:
    alert_id = fingerprint("cost_spike", make_scope(service="billing", user="alice"))
    text = client.get(f"/runbooks/cost_spike?alert={alert_id}").text
    assert "service=billing, user=alice" in text and "user=alice (2% -&gt; 27% of calls)" in text
    assert client.get(f"/api/v1/alerts/{alert_id}").json()["state"] == "resolved"


def test_runbook_without_alert_shows_placeholders_and_unknowns_are_404(client: TestClient) -> None:
    text = client.get("/runbooks/timeout_surge").text
    assert "service = '&lt;service&gt;'" in text
    assert "No alert nope is known" in client.get("/runbooks/timeout_surge?alert=nope").text
    assert client.get("/runbooks/not_a_detector").status_code == 404
    index = client.get("/runbooks").text
    assert all(f'href="runbooks/{name}"' in index for name in RUNBOOKS)


def test_silences_api_add_list_get_expire(client: TestClient) -> None:
    body = {"matchers": ["detector=cost_spike", "service=~bill.*"], "duration_minutes": 90, "comment": "ok"}
    created = client.post("/api/v1/silences", json=body)
    assert created.status_code == 201
    silence = created.json()
    assert silence["state"] == "active" and silence["matchers"] == ["detector=cost_spike", "service=~bill.*"]
    assert [s["id"] for s in client.get("/api/v1/silences").json()["silences"]] == [silence["id"]]
    assert client.get(f"/api/v1/silences/{silence['id']}").json()["comment"] == "ok"
    assert client.delete(f"/api/v1/silences/{silence['id']}").json()["state"] == "expired"
    assert client.get("/api/v1/silences", params={"state": "active"}).json()["silences"] == []
    assert client.delete("/api/v1/silences/nope").status_code == 404
    assert (
        client.post("/api/v1/silences", json={"matchers": ["bad"], "duration_minutes": 5}).status_code == 422
    )
    assert client.post("/api/v1/silences", json={"matchers": ["a=b"]}).status_code == 422


def _sql_blocks(detector: str) -> list[str]:
    return [block.split("```", 1)[0] for block in runbook_source(detector).split("```sql\n")[1:]]


@pytest.mark.parametrize("detector", RUNBOOKS)
def test_runbook_queries_run_and_use_the_one_hit_ratio(detector: str, store: Store) -> None:
    """Every SQL block runs on the current schema (placeholders filled in), and a hit ratio is
    storage.cache_ratio's — never reads / (reads + writes) or reads / input chosen by hand."""
    for sql in _sql_blocks(detector):
        store.rows(re.sub(r"\{\{\w+\}\}", "x", sql))
        if "cache_read_tokens" in sql:
            assert hit_ratio_sql() in sql, f"{detector}: a hit ratio by another formula:\n{sql}"
    assert "nullIf(sum(cache_read_tokens) + sum(cache_write_tokens)" not in runbook_source(detector)


def test_a_runbook_opened_with_another_detectors_alert_goes_to_that_detectors_runbook(
    client: TestClient,
) -> None:
    alert_id = fingerprint("cost_spike", make_scope(service="billing", user="alice"))
    page = client.get(f"/runbooks/timeout_surge?alert={alert_id}", follow_redirects=False)
    assert page.status_code == 307 and page.headers["location"] == f"/runbooks/cost_spike?alert={alert_id}"
    assert "alice spends 9x" in client.get(f"/runbooks/timeout_surge?alert={alert_id}").text


def test_runbook_api_calls_carry_the_key_a_keyed_daemon_needs() -> None:
    calls = [
        line
        for path in sorted((ROOT / "runbooks").glob("*.md"))
        for line in path.read_text().splitlines()
        if "curl" in line and "$TOKENPULSE_API/" in line and "/readyz" not in line
    ]
    assert len(calls) >= 10
    for line in calls:
        assert '-H "Authorization: Bearer $TOKENPULSE_API_KEY"' in line, line
