"""One incident, one page: fake Slack, PagerDuty, webhook and Alertmanager servers see one message /
one dedup key / one payload per incident update, updated in place as alerts join, escalate and resolve,
resolved once; a silence mutes one alert inside the incident."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.alert_helpers import LINKS, T0, FakeClock, transition
from tests.alert_schemas import ALERTMANAGER_WEBHOOK_V4, PAGERDUTY_EVENT, SLACK_MESSAGE, check
from tests.fake_receivers import FakeServer, all_receivers, receiver_environment
from tokenpulse.alerts.contract import Transition
from tokenpulse.alerts.matchers import parse_matchers
from tokenpulse.alerts.model import event_from_transition
from tokenpulse.alerts.service import AlertService
from tokenpulse.alerts.settings import AlertSettings, alert_settings
from tokenpulse.alerts.store import AlertStore
from tokenpulse.detectors.base import DetectorSettings, Observation
from tokenpulse.detectors.explain import hold_back
from tokenpulse.detectors.state import AlertStates

USER = [{"dimension": "user", "value": "u-1234", "share_before": 0.0, "share_after": 0.93, "new": True}]


@pytest.fixture
def receivers() -> Iterator[dict[str, FakeServer]]:
    with all_receivers() as fakes:
        yield fakes


def runaway(
    minute: int, detector: str, severity: str = "warning", status: str = "firing", **scope: str
) -> Transition:
    t = transition(detector, severity, status, at=T0 + timedelta(minutes=minute), **scope)
    return Transition(**{**t.__dict__, "suspects": USER, "started_at": T0 - timedelta(minutes=5)})


def service(tmp_path: Path, receivers: dict[str, FakeServer], clock: FakeClock) -> AlertService:
    config = alert_settings(
        {"group_wait_seconds": 30, "group_interval_seconds": 60}, receiver_environment(receivers)
    )
    return AlertService(AlertStore(tmp_path / "alerts.sqlite"), config, LINKS, clock)


def minute(alerts: AlertService, clock: FakeClock, transitions: list[Transition]) -> None:
    alerts.on_transitions(transitions)
    for _ in range(6):
        alerts.dispatcher.flush_due()
        for name in alerts.notifiers:
            while alerts.delivery.attempt(name):
                pass
        clock.advance(seconds=10)


def test_a_runaway_user_is_one_message_one_dedup_key_one_webhook_thread(
    tmp_path: Path, receivers: dict[str, FakeServer]
) -> None:
    clock = FakeClock(T0)
    alerts = service(tmp_path, receivers, clock)
    service_scope = {"service": "support"}
    route_scope = {"service": "support", "route": "/chat"}
    user_scope = {"service": "support", "route": "/chat", "user": "u-1234"}
    minute(alerts, clock, [runaway(0, "cost_spike", **service_scope)])
    minute(alerts, clock, [runaway(1, "cost_spike", **route_scope), runaway(1, "cost_spike", **user_scope)])
    minute(alerts, clock, [runaway(2, "prompt_growth", **route_scope)])
    minute(alerts, clock, [runaway(3, "cost_spike", "critical", **user_scope)])  # escalates
    for _ in range(3):
        minute(alerts, clock, [])
    ended = [runaway(20, "cost_spike", status="resolved", **s) for s in (service_scope, route_scope)] + [
        runaway(20, "cost_spike", "critical", "resolved", **user_scope),
        runaway(20, "prompt_growth", status="resolved", **route_scope),
    ]
    minute(alerts, clock, ended)
    for _ in range(2):
        minute(alerts, clock, [])
    alerts.stop()

    (incident,) = AlertService(
        AlertStore(tmp_path / "alerts.sqlite"), alerts_config(receivers), LINKS, clock
    ).incidents()
    assert incident["state"] == "resolved" and len(incident["alerts"]) == 4
    assert incident["cause"][0]["value"] == "u-1234"

    # Slack: one message (one post without a thread), updated in place; replies in its thread.
    slack = receivers["slack"]
    posts = [
        r.body for r in slack.requests if r.path == "/api/chat.postMessage" and "thread_ts" not in r.body
    ]
    updates = [r.body for r in slack.requests if r.path == "/api/chat.update"]
    replies = [r.body for r in slack.requests if "thread_ts" in (r.body or {})]
    assert len(posts) == 1 and len(updates) >= 2 and len(replies) == len(updates)
    for body in posts + updates + replies:
        check(SLACK_MESSAGE, body)
    assert {u["ts"] for u in updates} == {r["thread_ts"] for r in replies} == {"1700000000.000001"}
    assert "RESOLVED" in updates[-1]["blocks"][0]["text"]["text"]
    assert "CRITICAL" in updates[-2]["blocks"][0]["text"]["text"]
    assert any("escalated to critical" in r["text"] for r in replies)
    assert posts[0]["blocks"][1]["text"]["text"].startswith("user u-1234 changed: cost_spike")

    # PagerDuty: one dedup key (the incident), triggers while it grows, one resolve, last.
    events = receivers["pagerduty"].bodies("/v2/enqueue")
    for body in events:
        check(PAGERDUTY_EVENT, body)
    assert {e["dedup_key"] for e in events} == {incident["id"]}
    assert [e["event_action"] for e in events].count("resolve") == 1 and events[-1][
        "event_action"
    ] == "resolve"
    assert events[-2]["payload"]["severity"] == "critical"

    # The webhook: one payload per incident update, all in one group (the incident).
    hooks = receivers["webhook"].bodies("/hook")
    for body in hooks:
        check(ALERTMANAGER_WEBHOOK_V4, body)
    assert {h["groupKey"] for h in hooks} == {f'1:{{incident="{incident["id"]}"}}'}
    assert hooks[-1]["status"] == "resolved" and hooks[0]["commonAnnotations"]["incident"] == incident["id"]
    assert len(hooks) == len(events)

    # Alertmanager keeps getting every alert on its own (it groups by itself).
    pushed = {
        a["labels"]["scope"] for push in receivers["alertmanager"].bodies("/api/v2/alerts") for a in push
    }
    assert len(pushed) == 3  # service, route (cost_spike and prompt_growth share it) and user scopes


def alerts_config(receivers: dict[str, FakeServer]) -> AlertSettings:
    return alert_settings({}, receiver_environment(receivers))


def test_a_silence_mutes_one_alert_inside_the_incident(
    tmp_path: Path, receivers: dict[str, FakeServer]
) -> None:
    clock = FakeClock(T0)
    alerts = service(tmp_path, receivers, clock)
    silence = alerts.store.add_silence(
        parse_matchers(["detector=prompt_growth"]), T0, T0 + timedelta(hours=2), "oncall", "known"
    )
    minute(alerts, clock, [runaway(0, "cost_spike", service="support")])
    minute(alerts, clock, [runaway(1, "prompt_growth", service="support", route="/chat")])
    for _ in range(2):
        minute(alerts, clock, [])
    (incident,) = alerts.incidents()
    states = {a["detector"]: a["state"] for a in incident["alerts"]}
    assert states == {"cost_spike": "firing", "prompt_growth": f"silenced by {silence.id}"}
    # The silenced alert joining told nobody anything: one post, no update.
    paths = [r.path for r in receivers["slack"].requests]
    assert paths == ["/api/chat.postMessage"]
    events = receivers["pagerduty"].bodies("/v2/enqueue")
    assert [e["event_action"] for e in events] == ["trigger"]
    alerts.stop()


def test_an_alert_notified_before_incidents_resolves_where_it_was_told(tmp_path: Path) -> None:
    # Before the upgrade: each alert its own group (and Slack message, PagerDuty key).
    clock = FakeClock(T0)
    hook = {"TOKENPULSE_WEBHOOK_URL": "http://hook.test/x"}
    before = alert_settings({"group_by": ["..."], "group_wait_seconds": 0}, hook)
    old = AlertService(AlertStore(tmp_path / "alerts.sqlite"), before, LINKS, clock)
    fired = transition("cost_spike", "warning", service="s")
    old.dispatcher.submit([event_from_transition(fired, LINKS)])  # as the daemon did: no incident
    old.dispatcher.flush_due()
    (told,) = old.store.notifications()
    old.store.close()
    # After: incidents by default; the restarted daemon's state still has the alert firing.
    states = AlertStates()
    rule = DetectorSettings(for_=timedelta(0), keep_firing_for=timedelta(0))
    observed = Observation("cost_spike", fired.scope, T0, "warning", 1.0, 0.5, 0.1, 100, fired.summary)
    hold_back(states, states.step("cost_spike", rule, [observed], T0), T0)
    new = AlertService(AlertStore(tmp_path / "alerts.sqlite"), alerts_config_of(hook), LINKS, clock)
    new.watch(states)
    (incident,) = new.incidents()  # the views show it in an incident
    clock.advance(minutes=10)
    new.on_transitions([Transition(**{**fired.__dict__, "status": "resolved", "at": clock.now()})])
    clock.advance(minutes=10)
    new.dispatcher.flush_due()
    resolve = new.store.notifications()[-1]
    # The resolve goes to the group the firing was told in, as a per-alert notification: no new page.
    assert len(new.store.notifications()) == 2 and resolve.group_key == told.group_key
    assert resolve.status == "resolved" and resolve.incident == {}
    assert new.incidents()[0]["state"] == "resolved" and incident["id"] == new.incidents()[0]["id"]
    new.store.close()


def alerts_config_of(environment: dict[str, str]) -> AlertSettings:
    return alert_settings({"group_wait_seconds": 0}, environment)


def test_a_trouble_back_soon_after_it_resolved_edits_the_same_page(
    tmp_path: Path, receivers: dict[str, FakeServer]
) -> None:
    clock = FakeClock(T0)
    alerts = service(tmp_path, receivers, clock)
    scope = {"service": "support", "route": "/chat"}
    minute(alerts, clock, [runaway(0, "cost_spike", **scope)])
    minute(alerts, clock, [runaway(10, "cost_spike", status="resolved", **scope)])
    (incident,) = alerts.incidents()
    assert incident["state"] == "resolved"
    # Its condition comes back four minutes later and holds: the alert fires again.
    clock.advance(minutes=4)
    back = transition("cost_spike", "warning", at=clock.now() + timedelta(minutes=2), **scope)
    minute(alerts, clock, [Transition(**{**back.__dict__, "started_at": clock.now()})])
    for _ in range(2):
        minute(alerts, clock, [])

    (reopened,) = alerts.incidents()  # the same incident, open again: no second page
    assert reopened["id"] == incident["id"] and reopened["state"] == "open" and reopened["reopened_at"]

    slack = receivers["slack"]
    posts = [
        r.body for r in slack.requests if r.path == "/api/chat.postMessage" and "thread_ts" not in r.body
    ]
    updates = [r.body for r in slack.requests if r.path == "/api/chat.update"]
    replies = [r.body["text"] for r in slack.requests if "thread_ts" in (r.body or {})]
    assert len(posts) == 1 and len(updates) == 2  # the resolve, then the reopen: both edit the message
    assert "RESOLVED" in updates[0]["blocks"][0]["text"]["text"]
    assert "reopened" in updates[1]["blocks"][0]["text"]["text"]
    assert "incident reopened" in replies[-1]

    events = receivers["pagerduty"].bodies("/v2/enqueue")
    assert [e["event_action"] for e in events] == ["trigger", "resolve", "trigger"]
    assert {e["dedup_key"] for e in events} == {incident["id"]}

    hooks = receivers["webhook"].bodies("/hook")
    for body in hooks:
        check(ALERTMANAGER_WEBHOOK_V4, body)
    assert [h["commonAnnotations"]["incident_state"] for h in hooks] == ["open", "resolved", "reopened"]
    assert {h["groupKey"] for h in hooks} == {f'1:{{incident="{incident["id"]}"}}'}
