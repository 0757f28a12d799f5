"""Each notifier against a fake receiver on loopback, every payload checked against the documented
schema; retries on 5xx/429/network errors and never on 400; Slack's per-channel pace and Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.alert_helpers import T0, FakeClock, event, resolved
from tests.alert_schemas import (
    ALERTMANAGER_POSTABLE_ALERTS,
    ALERTMANAGER_WEBHOOK_V4,
    PAGERDUTY_EVENT,
    SLACK_MESSAGE,
    check,
)
from tests.fake_receivers import FakeServer, accepted, serve, slack_answer
from tokenpulse.alerts.delivery import Backoff, Delivery, Notifier
from tokenpulse.alerts.model import AlertEvent
from tokenpulse.alerts.notifiers.alertmanager import AlertmanagerNotifier
from tokenpulse.alerts.notifiers.pagerduty import PagerDutyNotifier
from tokenpulse.alerts.notifiers.slack import SlackNotifier
from tokenpulse.alerts.notifiers.webhook import WebhookNotifier
from tokenpulse.alerts.store import FAILED, SENT, AlertStore, LogEntry

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertStore]:
    opened = AlertStore(tmp_path / "alerts.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def slack() -> Iterator[FakeServer]:
    with serve(slack_answer()) as fake:
        yield fake


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    with serve(accepted) as fake:
        yield fake


def record(store: AlertStore, receiver: str, *alerts: object, at: object = T0) -> None:
    """Put a notification in the outbox the way the dispatcher does."""
    store.enqueue(receiver, "0:{}", {}, list(alerts), LogEntry(frozenset(), frozenset(), at), send=True)  # type: ignore[arg-type]


def deliver_all(delivery: Delivery, receiver: str) -> None:
    while delivery.attempt(receiver):
        pass


def fire_and_resolve(
    store: AlertStore,
    receiver: str,
    notifier: Notifier,
    clock: FakeClock,
    firing: AlertEvent,
    after: timedelta,
) -> None:
    """Record an alert's firing and its resolve ``after`` later, and deliver both."""
    record(store, receiver, firing)
    record(store, receiver, resolved(firing, T0 + after))
    deliver_all(Delivery(store, {receiver: notifier}, clock), receiver)


def test_slack_bot_posts_once_then_updates_the_message_in_place_and_replies_in_thread(
    store: AlertStore, slack: FakeServer
) -> None:
    clock = FakeClock()
    notifier = SlackNotifier(
        "slack", store, clock, bot_token="xoxb-test", channel="#alerts", api_url=slack.url + "/api/"
    )
    firing = event()
    fire_and_resolve(store, "slack", notifier, clock, firing, timedelta(minutes=30))

    paths = [r.path for r in slack.requests]
    assert paths == ["/api/chat.postMessage", "/api/chat.update", "/api/chat.postMessage"]
    for request in slack.requests:
        check(SLACK_MESSAGE, request.body)
        assert request.headers["authorization"] == "Bearer xoxb-test"
    post, update, reply = (r.body for r in slack.requests)
    assert post["channel"] == "#alerts"
    assert post["blocks"][0]["text"]["text"].endswith("CRITICAL · cache_hit_collapse")
    buttons = {b["text"]["text"]: b["url"] for b in post["blocks"][4]["elements"]}
    assert buttons["Runbook"] == f"http://tp.test:8000/runbooks/cache_hit_collapse?alert={firing.id}"
    assert "service=support" in buttons["Dashboard"]
    assert "prompt_version=v8" in post["blocks"][3]["text"]["text"] and "prompt_version=v8" in post["text"]
    assert (
        "0.07" in post["blocks"][2]["fields"][1]["text"] and "0.89" in post["blocks"][2]["fields"][2]["text"]
    )
    # The resolve edits the same message (channel id and ts from the post) and replies in its thread.
    assert (update["channel"], update["ts"]) == ("C0ALERTS", "1700000000.000001")
    assert "RESOLVED" in update["blocks"][0]["text"]["text"]
    assert reply["thread_ts"] == "1700000000.000001" and reply["text"].startswith("Resolved")
    assert [n.state for n in store.notifications()] == [SENT, SENT]


def test_slack_sends_at_most_one_message_per_second_per_channel(store: AlertStore, slack: FakeServer) -> None:
    clock = FakeClock()
    notifier = SlackNotifier("slack", store, clock, webhook_url=slack.url + "/services/T/B/X")
    delivery = Delivery(store, {"slack": notifier}, clock)
    for service in ("a", "b", "c"):
        record(store, "slack", event(service=service))
    deliver_all(delivery, "slack")
    assert len(slack.requests) == 3 and all(check(SLACK_MESSAGE, b) is None for b in slack.bodies())
    assert clock.slept == [1.0, 1.0] and clock.now() == T0 + timedelta(seconds=2)


def test_slack_webhook_posts_the_resolve_and_a_429_waits_for_retry_after(
    store: AlertStore, slack: FakeServer
) -> None:
    clock = FakeClock()
    notifier = SlackNotifier("slack", store, clock, webhook_url=slack.url + "/services/T/B/X")
    delivery = Delivery(store, {"slack": notifier}, clock)
    firing = event()
    record(store, "slack", firing)
    record(store, "slack", resolved(firing, T0))
    slack.fail_next(429, {"Retry-After": "30"}, "rate_limited")
    assert delivery.attempt("slack")
    (first, _) = store.notifications()
    assert first.state == "pending" and first.attempts == 1
    assert first.next_attempt_at == clock.now() + timedelta(seconds=30)
    clock.advance(seconds=29)
    assert not delivery.attempt("slack")  # not due, and the resolve waits behind it: order is kept
    clock.advance(seconds=1)
    deliver_all(delivery, "slack")
    texts = [b["text"] for b in slack.bodies()]
    assert len(texts) == 2 and "CRITICAL" in texts[0] and "RESOLVED" in texts[1]


def test_slack_bot_rate_limit_and_refusal(store: AlertStore, slack: FakeServer) -> None:
    clock = FakeClock()
    notifier = SlackNotifier(
        "slack", store, clock, bot_token="xoxb-test", channel="#alerts", api_url=slack.url + "/api/"
    )
    delivery = Delivery(store, {"slack": notifier}, clock)
    record(store, "slack", event())
    slack.fail_next(429, {"Retry-After": "7"}, {"ok": False, "error": "ratelimited"})
    delivery.attempt("slack")
    assert store.notifications()[0].next_attempt_at == clock.now() + timedelta(seconds=7)
    clock.advance(seconds=7)
    slack.fail_next(200, {}, {"ok": False, "error": "channel_not_found"})
    delivery.attempt("slack")
    (failed,) = store.notifications()
    assert failed.state == FAILED and "channel_not_found" in failed.last_error and failed.attempts == 2


def test_pagerduty_trigger_and_resolve_share_the_dedup_key(store: AlertStore, receiver: FakeServer) -> None:
    clock = FakeClock()
    notifier = PagerDutyNotifier(ROUTING_KEY, receiver.url + "/v2/enqueue")
    firing = replace(event(), summary="x" * 5000)
    fire_and_resolve(store, "pagerduty", notifier, clock, firing, timedelta(minutes=20))
    trigger, resolve = receiver.bodies("/v2/enqueue")
    check(PAGERDUTY_EVENT, trigger)
    check(PAGERDUTY_EVENT, resolve)
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == firing.id
    assert len(trigger["payload"]["summary"]) == 1024
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "support"
    details = trigger["payload"]["custom_details"]
    assert (details["value"], details["threshold"], details["baseline"]) == (0.07, 0.3, 0.89)
    assert details["suspects"][0]["value"] == "v8"
    assert trigger["links"][0]["href"] == firing.runbook_url


@pytest.mark.parametrize(("status", "state", "attempts"), [(400, FAILED, 1), (500, SENT, 2), (503, SENT, 2)])
def test_retries_on_5xx_never_on_400(
    store: AlertStore, receiver: FakeServer, status: int, state: str, attempts: int
) -> None:
    clock = FakeClock()
    delivery = Delivery(
        store, {"pagerduty": PagerDutyNotifier(ROUTING_KEY, receiver.url + "/v2/enqueue")}, clock
    )
    record(store, "pagerduty", event())
    receiver.fail_next(status)
    delivery.attempt("pagerduty")
    clock.advance(seconds=1)  # the first backoff
    delivery.attempt("pagerduty")
    (notification,) = store.notifications()
    assert (notification.state, notification.attempts) == (state, attempts)
    assert len(receiver.requests) == (state == SENT)


def test_network_errors_back_off_exponentially_and_finally_give_up(store: AlertStore) -> None:
    clock = FakeClock()
    backoff = Backoff(
        first=timedelta(seconds=1), cap=timedelta(seconds=60), give_up_after=timedelta(minutes=10)
    )
    # Nothing listens on port 9 of loopback: connection refused.
    delivery = Delivery(store, {"webhook": WebhookNotifier("http://127.0.0.1:9/hook", "")}, clock, backoff)
    record(store, "webhook", event())
    delays = []
    while store.notifications()[0].state == "pending":
        before = clock.now()
        assert delivery.attempt("webhook")
        clock.moment = store.notifications()[0].next_attempt_at
        delays.append((clock.now() - before).total_seconds())
    assert delays[:8] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert store.notifications()[0].state == FAILED


def test_webhook_sends_alertmanager_v4_payloads(store: AlertStore, receiver: FakeServer) -> None:
    clock = FakeClock()
    delivery = Delivery(
        store, {"webhook": WebhookNotifier(receiver.url + "/hook", "http://tp.test:8000")}, clock
    )
    firing, other = event(), event(service="billing", route="/chat", model="claude-sonnet-4-5")
    store.enqueue(
        "webhook",
        '0:{detector="cache_hit_collapse"}',
        {"detector": "cache_hit_collapse"},
        [firing, resolved(other, T0)],
        LogEntry(frozenset(), frozenset(), T0),
        send=True,
    )
    deliver_all(delivery, "webhook")
    (payload,) = receiver.bodies("/hook")
    check(ALERTMANAGER_WEBHOOK_V4, payload)
    assert payload["status"] == "firing" and payload["groupLabels"] == {"detector": "cache_hit_collapse"}
    assert payload["commonLabels"] == {
        "alertname": "cache_hit_collapse",
        "detector": "cache_hit_collapse",
        "severity": "critical",
        "route": "/chat",
        "model": "claude-sonnet-4-5",
    }
    alert, gone = payload["alerts"]
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and gone["status"] == "resolved"
    assert alert["fingerprint"] == firing.id and alert["annotations"]["runbook_url"] == firing.runbook_url


def test_alertmanager_gets_postable_alerts_that_end_on_resolve(
    store: AlertStore, receiver: FakeServer
) -> None:
    clock = FakeClock()
    notifier = AlertmanagerNotifier(receiver.url, clock, timedelta(minutes=1))
    firing = event()
    fire_and_resolve(store, "alertmanager", notifier, clock, firing, timedelta(minutes=3))
    posted, ended = receiver.bodies("/api/v2/alerts")
    check(ALERTMANAGER_POSTABLE_ALERTS, posted)
    check(ALERTMANAGER_POSTABLE_ALERTS, ended)
    assert (
        posted[0]["labels"]["detector"] == "cache_hit_collapse"
        and posted[0]["labels"]["severity"] == "critical"
    )
    assert posted[0]["labels"]["scope"] == "service=support, route=/chat, model=claude-sonnet-4-5"
    assert posted[0]["annotations"]["runbook_url"] == firing.runbook_url
    assert posted[0]["endsAt"] == "2026-11-20T14:04:00.000Z"  # four refreshes ahead
    assert ended[0]["endsAt"] == "2026-11-20T14:03:00.000Z"


def test_a_notifier_that_raises_is_retried_and_delivery_continues(store: AlertStore) -> None:
    class Broken:
        def send(self, notification: object) -> None:
            raise RuntimeError("bug")

    broken: Notifier = Broken()
    clock = FakeClock()
    delivery = Delivery(store, {"x": broken}, clock)
    record(store, "x", event())
    assert delivery.attempt("x")
    assert store.notifications()[0].last_error == "RuntimeError: bug"


def test_receiver_secrets_stay_out_of_logs_and_recorded_errors(
    store: AlertStore, receiver: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "T0K3N-in-the-webhook-path-0123456789"
    notifiers: dict[str, Notifier] = {
        "refused": WebhookNotifier(f"http://127.0.0.1:9/hooks/{secret}", ""),  # connection refused
        "failing": WebhookNotifier(f"{receiver.url}/hooks/{secret}", ""),
        "pagerduty": PagerDutyNotifier(ROUTING_KEY, receiver.url + "/v2/enqueue"),
    }
    delivery = Delivery(store, notifiers, FakeClock())
    for name in notifiers:
        record(store, name, event())
        receiver.fail_next(500)
        assert delivery.attempt(name)
    errors = [n.last_error for n in store.notifications()]
    assert len(errors) == 3 and all(errors)  # each failed, and says why
    assert caplog.text.count("retrying at") == 3  # ... in the log too
    for text in (caplog.text, *errors):
        assert secret not in text and ROUTING_KEY not in text
