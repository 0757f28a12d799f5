"""Done when, in process: a simulated incident drives the real DetectorService into the alert service,
with every receiver a fake server on loopback and time injected.

Slack gets one message that turns resolved in place, PagerDuty exactly one trigger and one resolve with
the same dedup_key, the webhook and Alertmanager valid payloads, the runbook link opens the runbook with
the alert's scope and suspects — and a PagerDuty outage across a restart loses nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.alert_helpers import FakeClock, transition
from tests.alert_incident import SCOPE, store_incident
from tests.alert_schemas import (
    ALERTMANAGER_POSTABLE_ALERTS,
    ALERTMANAGER_WEBHOOK_V4,
    PAGERDUTY_EVENT,
    SLACK_MESSAGE,
    check,
)
from tests.fake_receivers import (
    Answer,
    FakeServer,
    Request,
    accepted,
    all_receivers,
    receiver_environment,
    serve,
)
from tokenpulse.alerts.api import alerts_router
from tokenpulse.alerts.model import Links
from tokenpulse.alerts.service import AlertService
from tokenpulse.alerts.settings import alert_settings
from tokenpulse.alerts.store import AlertStore
from tokenpulse.api import create_api_app
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.detectors.catalog.cache_hit_collapse import CacheHitCollapse
from tokenpulse.detectors.service import INGEST_DELAY, DetectorService
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
ONSET = NOW - timedelta(minutes=45)
REVERTED = ONSET + timedelta(minutes=15)
API = "http://tokenpulse.test:8000"


@pytest.fixture
def receivers() -> Iterator[dict[str, FakeServer]]:
    with all_receivers() as fakes:
        yield fakes


def alert_service(tmp_path: Path, receivers: dict[str, FakeServer], clock: FakeClock) -> AlertService:
    config = alert_settings(
        {"group_wait_seconds": 30, "group_interval_seconds": 300}, receiver_environment(receivers)
    )
    links = Links(f"{API}/runbooks", API)
    return AlertService(AlertStore(tmp_path / "alerts.sqlite"), config, links, clock)


def run_minute(detectors: DetectorService, alerts: AlertService, clock: FakeClock) -> None:
    """One detector cycle at the clock's time, then a minute of dispatching and delivering."""
    detectors.cycle(clock.now() + INGEST_DELAY)
    for _ in range(6):
        alerts.dispatcher.flush_due()
        for receiver in alerts.notifiers:
            while alerts.delivery.attempt(receiver):
                pass
        clock.advance(seconds=10)


def test_a_simulated_incident_reaches_every_receiver_once_and_survives_a_pagerduty_outage_and_restart(
    store: Store, tmp_path: Path, receivers: dict[str, FakeServer]
) -> None:
    store_incident(store, tmp_path, ONSET, REVERTED, NOW)
    clock = FakeClock(ONSET)
    alerts = alert_service(tmp_path, receivers, clock)
    state = tmp_path / "alerts.json"
    detectors = DetectorService(store, [CacheHitCollapse()], state, f"{API}/runbooks", alerts.on_transitions)
    pagerduty = receivers["pagerduty"]
    for _ in range(1000):  # PagerDuty is down from before the alert fires ...
        pagerduty.fail_next(503)

    def retried() -> bool:
        return any(n.attempts >= 3 for n in alerts.store.notifications("pagerduty"))

    while not retried():
        assert clock.now() < REVERTED, "the alert did not fire while the cache was collapsed"
        run_minute(detectors, alerts, clock)
    (firing,) = alerts.store.notifications("pagerduty")
    assert firing.state == "pending" and "503" in firing.last_error and pagerduty.requests == []

    # ... until the daemon has restarted: the outbox and the log are on disk.
    alerts.stop()
    pagerduty.failures.clear()
    alerts = alert_service(tmp_path, receivers, clock)
    detectors = DetectorService(store, [CacheHitCollapse()], state, f"{API}/runbooks", alerts.on_transitions)
    while clock.now() < NOW - timedelta(minutes=1):
        run_minute(detectors, alerts, clock)
    alerts.stop()

    # PagerDuty: exactly one trigger and one resolve, with the incident's id as dedup_key, in order.
    events = pagerduty.bodies("/v2/enqueue")
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[0]["dedup_key"] == events[1]["dedup_key"] and events[0]["dedup_key"].startswith("inc-")
    for event in events:
        check(PAGERDUTY_EVENT, event)
    cause = events[0]["payload"]["custom_details"]["most_likely_cause"][0]
    assert (cause["dimension"], cause["value"]) == ("prompt_version", "v8")
    summary = events[0]["payload"]["summary"]
    assert summary.startswith("[critical] prompt_version v8 changed: cache_hit_collapse")

    # Slack: one message, updated in place to resolved, with a reply in its thread.
    slack = receivers["slack"]
    assert [r.path for r in slack.requests] == [
        "/api/chat.postMessage",
        "/api/chat.update",
        "/api/chat.postMessage",
    ]
    post, update, reply = slack.bodies()
    for body in (post, update, reply):
        check(SLACK_MESSAGE, body)
    assert update["ts"] == reply["thread_ts"] == "1700000000.000001"
    assert (
        "CRITICAL" in post["blocks"][0]["text"]["text"] and "RESOLVED" in update["blocks"][0]["text"]["text"]
    )

    # The webhook: Alertmanager v4 payloads, firing then resolved.
    hooks = receivers["webhook"].bodies("/hook")
    assert [h["status"] for h in hooks] == ["firing", "resolved"]
    for hook in hooks:
        check(ALERTMANAGER_WEBHOOK_V4, hook)
    # Alertmanager: refreshed every minute while firing, then ended.
    pushes = receivers["alertmanager"].bodies("/api/v2/alerts")
    for push in pushes:
        check(ALERTMANAGER_POSTABLE_ALERTS, push)
    assert len(pushes) >= 5
    ends = [datetime.fromisoformat(p[0]["endsAt"].replace("Z", "+00:00")) for p in pushes]
    started = datetime.fromisoformat(hooks[0]["alerts"][0]["startsAt"].replace("Z", "+00:00"))
    # Each refresh holds the alert four refresh intervals past the time it was pushed.
    assert ends[:-1] == sorted(ends[:-1]) and all(end >= started + timedelta(minutes=4) for end in ends[:-1])
    assert ends[-1] == datetime.fromisoformat(hooks[1]["alerts"][0]["endsAt"].replace("Z", "+00:00"))

    # The runbook link of every receiver opens the runbook with the alert's scope and suspects.
    runbook_url = events[0]["links"][0]["href"]
    assert runbook_url == hooks[0]["alerts"][0]["annotations"]["runbook_url"]
    assert runbook_url == post["blocks"][4]["elements"][0]["url"]
    assert runbook_url.startswith(f"{API}/runbooks/cache_hit_collapse?alert=")
    wal = WriteAheadLog(tmp_path / "api-wal")
    app = create_api_app(store, wal, LogWriter(wal, store), detectors.engine.states)
    app.include_router(alerts_router(store, detectors.engine.states, AlertStore(tmp_path / "alerts.sqlite")))
    page = TestClient(app).get(urllib.parse.urlsplit(runbook_url)._replace(scheme="", netloc="").geturl())
    assert page.status_code == 200
    assert ", ".join(f"{k}={v}" for k, v in SCOPE.items()) in page.text
    assert "prompt_version=v8" in page.text and "resolved" in page.text


def test_backtest_notify_sends_the_backtests_transitions_through_the_receivers(
    store: Store, tmp_path: Path, receivers: dict[str, FakeServer]
) -> None:
    store_incident(store, tmp_path, ONSET, REVERTED, NOW)
    store.close()  # the command opens it
    env = {
        **os.environ,
        "TOKENPULSE_SLACK_WEBHOOK_URL": receivers["slack"].url + "/services/T0/B0/test-channel",
        "TOKENPULSE_WEBHOOK_URL": receivers["webhook"].url + "/hook",
        "TOKENPULSE_RUNBOOK_BASE_URL": "https://runbooks.example/tp",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", "backtest", "--data", str(tmp_path / "data"),
         "--start", (ONSET - timedelta(minutes=5)).isoformat(), "--end", NOW.isoformat(), "--notify"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    collapse = [(t["status"], t["detector"]) for t in printed if t["detector"] == "cache_hit_collapse"]
    assert collapse == [("firing", "cache_hit_collapse"), ("resolved", "cache_hit_collapse")]
    hooks = receivers["webhook"].bodies("/hook")
    assert [(h["status"], h["alerts"][0]["labels"]["detector"]) for h in hooks] == [
        (t["status"], t["detector"]) for t in printed
    ]
    for hook in hooks:
        check(ALERTMANAGER_WEBHOOK_V4, hook)
    messages = receivers["slack"].bodies()
    assert len(messages) == len(printed) and all(check(SLACK_MESSAGE, m) is None for m in messages)
    assert messages[0]["blocks"][4]["elements"][0]["url"].startswith(
        "https://runbooks.example/tp/cache_hit_collapse?alert="
    )
    assert "notify webhook: resolved cache_hit_collapse -> sent" in result.stderr


def test_a_hanging_receiver_never_holds_up_the_detector_hook(tmp_path: Path) -> None:
    released = threading.Event()

    def hang(request: Request) -> Answer:
        released.wait(30)
        return accepted(request)

    with serve(hang) as webhook:
        config = alert_settings({"group_wait_seconds": 0}, {"TOKENPULSE_WEBHOOK_URL": webhook.url + "/hook"})
        alerts = AlertService(AlertStore(tmp_path / "alerts.sqlite"), config, Links(f"{API}/runbooks", API))
        alerts.start()
        try:
            took = []
            for minute in range(3):
                started = time.perf_counter()
                alerts.on_transitions([transition(at=NOW + timedelta(minutes=minute), service=f"s{minute}")])
                took.append(time.perf_counter() - started)
            wait_until(lambda: any(n.attempts == 0 for n in alerts.store.notifications()))
            assert max(took) < 0.5 and webhook.requests == []  # the receiver holds the first one
            released.set()
            wait_until(lambda: len(webhook.requests) == 3)
            # the receiver answers after it has recorded the request: the outbox marks it sent just after
            wait_until(lambda: all(n.state == "sent" for n in alerts.store.notifications()))
        finally:
            released.set()
            alerts.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
