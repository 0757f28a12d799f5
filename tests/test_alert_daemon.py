"""Done when, for real: `tokenpulse serve` configured by environment variables only, fake receivers on
loopback, an incident in storage. The alert reaches every receiver; PagerDuty is down until the daemon
has been restarted, and still gets exactly one trigger; the runbook link opens with the alert filled in."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.alert_incident import SCOPE, store_incident
from tests.alert_schemas import (
    ALERTMANAGER_POSTABLE_ALERTS,
    ALERTMANAGER_WEBHOOK_V4,
    PAGERDUTY_EVENT,
    SLACK_MESSAGE,
    check,
)
from tests.daemon import Daemon
from tests.fake_receivers import FakeServer, all_receivers, receiver_environment
from tokenpulse.storage.store import Store


@pytest.fixture
def receivers() -> Iterator[dict[str, FakeServer]]:
    with all_receivers() as fakes:
        yield fakes


def wait_for(condition: Callable[[], bool], what: str, daemon: Daemon, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{daemon.log()[-4000:]}")


def silence(daemon: Daemon, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", "silence", "--api", daemon.api, *arguments],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # as prometheus_client orders them
    for line in httpx.get(f"{daemon.api}/metrics").text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_serve_notifies_every_receiver_once_across_a_restart_during_a_pagerduty_outage(
    store: Store, tmp_path: Path, receivers: dict[str, FakeServer]
) -> None:
    # Now, not when the module was imported: in a full run that is minutes stale, and the incident's
    # onset falls out of the daemon's first cycle.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store_incident(
        store, tmp_path, now - timedelta(minutes=20), now + timedelta(hours=1), now + timedelta(minutes=1)
    )
    store.close()  # the daemon opens it
    config = tmp_path / "tokenpulse.toml"
    # Fire at the first cycle and notify at once, so the test does not wait for `for` and group_wait.
    config.write_text("[detectors.cache_hit_collapse]\nfor_minutes = 0\n")
    env = {
        "TOKENPULSE_CONFIG": str(config),
        "TOKENPULSE_DETECTOR_INTERVAL_SECONDS": "2",
        "TOKENPULSE_ALERTS_GROUP_WAIT_SECONDS": "0",
        **receiver_environment(receivers),
    }
    pagerduty, slack = receivers["pagerduty"], receivers["slack"]
    for _ in range(1000):
        pagerduty.fail_next(503)

    first = Daemon(tmp_path / "data", env).start()
    try:
        wait_for(
            lambda: len(slack.requests) >= 1 and receivers["webhook"].requests != [], "slack+webhook", first
        )
        wait_for(lambda: metric(first, "tokenpulse_notifications_failed_total", receiver="pagerduty",
                                outcome="retrying") >= 2, "pagerduty retries", first)  # fmt: skip
        assert metric(first, "tokenpulse_notifications_sent_total", receiver="slack") == 1
        assert first.stop() == 0
    finally:
        if first.process and first.process.poll() is None:
            first.kill()
    assert pagerduty.requests == []

    pagerduty.failures.clear()  # PagerDuty is back
    second = Daemon(tmp_path / "data", env).start()
    try:
        wait_for(lambda: pagerduty.requests != [], "the trigger after the restart", second)
        time.sleep(3)  # more cycles and flushes: nothing must be sent twice
        assert metric(second, "tokenpulse_notifications_sent_total", receiver="pagerduty") == 1
        (trigger,) = pagerduty.bodies("/v2/enqueue")
        check(PAGERDUTY_EVENT, trigger)
        assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "critical"
        assert [r.path for r in slack.requests] == ["/api/chat.postMessage"]  # not posted again
        check(SLACK_MESSAGE, slack.requests[0].body)
        (hook,) = receivers["webhook"].bodies("/hook")
        check(ALERTMANAGER_WEBHOOK_V4, hook)
        for push in receivers["alertmanager"].bodies("/api/v2/alerts"):
            check(ALERTMANAGER_POSTABLE_ALERTS, push)
        assert hook["alerts"][0]["labels"]["detector"] == "cache_hit_collapse"

        # The runbook link (built with the first daemon's address) opens on the daemon with the alert.
        link = urllib.parse.urlsplit(trigger["links"][0]["href"])
        assert link.path == "/runbooks/cache_hit_collapse"
        page = httpx.get(f"{second.api}{link.path}?{link.query}")
        assert page.status_code == 200
        assert ", ".join(f"{k}={v}" for k, v in SCOPE.items()) in page.text
        assert "prompt_version=v8" in page.text
        alert_id = urllib.parse.parse_qs(link.query)["alert"][0]
        assert httpx.get(f"{second.api}/api/v1/alerts/{alert_id}").json()["state"] == "firing"

        # Silences from the command line, against the running daemon.
        added = silence(second, "add", "-m", "detector=cache_hit_collapse", "-m", "service=~check.*",
                        "--duration", "90m", "--comment", "prompt v8 rolling back")  # fmt: skip
        silence_id, state = added.split()[:2]
        assert state == "active" and "detector=cache_hit_collapse service=~check.*" in added
        assert silence(second, "list").split()[0] == silence_id
        assert silence(second, "expire", silence_id).split()[1] == "expired"
        assert silence(second, "list") == "" and silence(second, "list", "--all").split()[0] == silence_id
        assert second.stop() == 0
    finally:
        if second.process and second.process.poll() is None:
            second.kill()
