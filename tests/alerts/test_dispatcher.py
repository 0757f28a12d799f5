"""Routing and noise control with an injected clock: group_wait / group_interval / repeat_interval,
send_resolved, inhibition, silences, and nothing sent for an alert that resolves while it waits."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.alert_helpers import FakeClock, event, resolved
from tokenpulse.alerts.dispatcher import Dispatcher
from tokenpulse.alerts.matchers import Matcher, parse_matchers
from tokenpulse.alerts.settings import DEFAULT_INHIBIT, alert_settings
from tokenpulse.alerts.stages import InhibitRule, Route
from tokenpulse.alerts.store import AlertStore
from tokenpulse.config import load_settings

ROUTE = Route(
    receivers=("chat",),
    group_wait=timedelta(seconds=30),
    group_interval=timedelta(minutes=5),
    repeat_interval=timedelta(hours=4),
)


@pytest.fixture
def store(tmp_path: Path) -> AlertStore:
    return AlertStore(tmp_path / "alerts.sqlite")


def sent(store: AlertStore, receiver: str = "chat") -> list[list[tuple[str, str, str]]]:
    """Per notification recorded for ``receiver``: (detector, status, severity) of each alert."""
    return [[(a.detector, a.status, a.severity) for a in n.alerts] for n in store.notifications(receiver)]


def test_group_wait_then_one_notification_then_resolve_after_group_interval(store: AlertStore) -> None:
    clock = FakeClock()
    dispatcher = Dispatcher(store, [ROUTE], [], clock)
    firing = event()
    dispatcher.submit([firing])
    clock.advance(seconds=29)
    assert dispatcher.flush_due() == 0  # still waiting for the group to fill
    clock.advance(seconds=1)
    assert dispatcher.flush_due() == 1
    assert sent(store) == [[("cache_hit_collapse", "firing", "critical")]]
    # Every flush afterwards has nothing new to say until the alert changes.
    for _ in range(10):
        clock.advance(minutes=5)
        assert dispatcher.flush_due() == 0
    dispatcher.submit([resolved(firing, clock.now())])
    clock.advance(minutes=4)
    assert dispatcher.flush_due() == 0  # within group_interval of the last flush
    clock.advance(minutes=1)
    assert dispatcher.flush_due() == 1
    assert sent(store)[-1] == [("cache_hit_collapse", "resolved", "critical")]
    assert dispatcher.held() == [] and store.load_alerts() == []


def test_repeat_interval_resends_an_unchanged_firing_group(store: AlertStore) -> None:
    clock = FakeClock()
    dispatcher = Dispatcher(store, [ROUTE], [], clock)
    dispatcher.submit([event()])
    clock.advance(seconds=30)
    dispatcher.flush_due()
    flushes_with_notification = []
    for step in range(1, 60):  # five hours in group_interval steps
        clock.advance(minutes=5)
        if dispatcher.flush_due():
            flushes_with_notification.append(step * 5)
    assert flushes_with_notification == [240]  # 4 h after the first, then not again within 5 h


def test_an_alert_that_resolves_while_its_group_waits_is_never_sent(store: AlertStore) -> None:
    clock = FakeClock()
    dispatcher = Dispatcher(store, [ROUTE], [], clock)
    firing = event()
    dispatcher.submit([firing])
    clock.advance(seconds=10)
    dispatcher.submit([resolved(firing, clock.now())])
    clock.advance(seconds=20)
    assert dispatcher.flush_due() == 0
    assert store.notifications() == [] and dispatcher.held() == []


def test_escalation_is_news_and_send_resolved_false_keeps_quiet(store: AlertStore) -> None:
    clock = FakeClock()
    quiet = replace(ROUTE, send_resolved=False)
    dispatcher = Dispatcher(store, [quiet], [], clock)
    warning = event(severity="warning")
    dispatcher.submit([warning])
    clock.advance(seconds=30)
    dispatcher.flush_due()
    dispatcher.submit([replace(warning, severity="critical")])
    clock.advance(minutes=5)
    assert dispatcher.flush_due() == 1
    dispatcher.submit([resolved(replace(warning, severity="critical"), clock.now())])
    clock.advance(minutes=5)
    assert dispatcher.flush_due() == 0
    assert sent(store) == [
        [("cache_hit_collapse", "firing", "warning")],
        [("cache_hit_collapse", "firing", "critical")],
    ]


def test_group_by_puts_alerts_of_one_detector_in_one_notification(store: AlertStore) -> None:
    clock = FakeClock()
    by_detector = replace(ROUTE, group_by=("detector",))
    dispatcher = Dispatcher(store, [by_detector], [], clock)
    dispatcher.submit([event(service="a", route="/x"), event(service="b", route="/y")])
    dispatcher.submit([event(detector="cost_spike", service="a")])
    clock.advance(seconds=30)
    assert dispatcher.flush_due() == 2
    assert sorted(len(n.alerts) for n in store.notifications()) == [1, 2]
    keys = {n.group_key for n in store.notifications()}
    assert keys == {'0:{detector="cache_hit_collapse"}', '0:{detector="cost_spike"}'}


def test_routes_match_on_labels_first_match_wins_unless_continue(store: AlertStore) -> None:
    clock = FakeClock()
    routes = [
        replace(ROUTE, receivers=("pager",), matchers=parse_matchers(["severity=critical"]), continue_=True),
        replace(ROUTE, receivers=("costs",), matchers=parse_matchers(["detector=~cost_.*"])),
        replace(ROUTE, receivers=("chat",)),
    ]
    dispatcher = Dispatcher(store, routes, [], clock)
    dispatcher.submit(
        [
            event(severity="critical"),
            event(detector="cost_spike", severity="warning", service="a"),
            event(detector="prompt_growth", severity="warning", service="b"),
        ]
    )
    clock.advance(seconds=30)
    dispatcher.flush_due()
    assert sent(store, "pager") == [[("cache_hit_collapse", "firing", "critical")]]
    assert sent(store, "costs") == [[("cost_spike", "firing", "warning")]]
    assert sorted(sent(store, "chat")) == [
        [("cache_hit_collapse", "firing", "critical")],
        [("prompt_growth", "firing", "warning")],
    ]


def test_a_critical_alert_inhibits_the_warning_of_the_same_detector_and_scope(store: AlertStore) -> None:
    clock = FakeClock()
    # Two alerts with the same detector and scope label but distinct ids, as another source could send.
    critical = event(severity="critical")
    warning = replace(event(severity="warning"), id="another-id")
    other_scope = event(severity="warning", service="billing")
    dispatcher = Dispatcher(store, [ROUTE], [DEFAULT_INHIBIT], clock)
    dispatcher.submit([critical, warning, other_scope])
    clock.advance(seconds=30)
    dispatcher.flush_due()
    assert sorted(a.id for n in store.notifications() for a in n.alerts) == sorted(
        [critical.id, other_scope.id]
    )
    assert dispatcher.muted == {"another-id": f"inhibited by {critical.id}"}  # what the views show
    # Once the critical resolves, the warning is no longer muted.
    dispatcher.submit([resolved(critical, clock.now())])
    clock.advance(minutes=5)
    dispatcher.flush_due()
    clock.advance(minutes=5)
    dispatcher.flush_due()
    assert warning.id in {a.id for n in store.notifications() for a in n.alerts}


def test_an_inhibit_rule_with_equal_labels_mutes_across_detectors(store: AlertStore) -> None:
    clock = FakeClock()
    rule = InhibitRule(
        parse_matchers(["detector=cache_hit_collapse"]), parse_matchers(["detector=cost_spike"]), ("service",)
    )
    dispatcher = Dispatcher(store, [ROUTE], [rule], clock)
    dispatcher.submit([event(), event(detector="cost_spike", severity="warning", service="support")])
    dispatcher.submit([event(detector="cost_spike", severity="warning", service="billing")])
    clock.advance(seconds=30)
    dispatcher.flush_due()
    assert sorted((a.detector, a.scope["service"]) for n in store.notifications() for a in n.alerts) == [
        ("cache_hit_collapse", "support"),
        ("cost_spike", "billing"),
    ]


def test_silences_mute_matching_alerts_until_they_expire(store: AlertStore) -> None:
    clock = FakeClock()
    silence = store.add_silence(
        parse_matchers(["detector=cache_hit_collapse", "service=~supp.*"]),
        clock.now(),
        clock.now() + timedelta(hours=1),
        "oncall",
        "prompt rollout in progress",
    )
    dispatcher = Dispatcher(store, [ROUTE], [], clock)
    dispatcher.submit([event(), event(service="billing")])
    clock.advance(seconds=30)
    dispatcher.flush_due()
    assert [a.scope["service"] for n in store.notifications() for a in n.alerts] == ["billing"]
    assert dispatcher.muted == {event().id: f"silenced by {silence.id}"}
    assert store.expire_silence(silence.id, clock.now())
    assert [s.state(clock.now()) for s in store.silences()] == ["expired"]
    clock.advance(minutes=5)
    dispatcher.flush_due()
    assert [a.scope["service"] for n in store.notifications() for a in n.alerts] == ["billing", "support"]
    assert dispatcher.muted == {}
    assert not store.expire_silence("no-such-silence", clock.now())


def test_a_restart_neither_repeats_nor_forgets(tmp_path: Path) -> None:
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.sqlite")
    dispatcher = Dispatcher(store, [ROUTE], [], clock)
    firing, waiting = event(), event(service="billing")
    dispatcher.submit([firing])
    clock.advance(seconds=30)
    dispatcher.flush_due()
    dispatcher.submit([waiting])  # recorded, but the daemon stops before its group is flushed
    store.close()

    store = AlertStore(tmp_path / "alerts.sqlite")
    restarted = Dispatcher(store, [ROUTE], [], clock)
    assert {a.id for a in restarted.held()} == {firing.id, waiting.id}
    clock.advance(seconds=30)
    assert restarted.flush_due() == 1  # the waiting one; the firing one was already sent
    assert [a.scope["service"] for n in store.notifications() for a in n.alerts] == ["support", "billing"]


def test_matchers_follow_alertmanager_syntax() -> None:
    labels = {"detector": "cost_spike", "severity": "warning"}
    assert Matcher.parse("detector=cost_spike").matches(labels)
    assert Matcher.parse('severity!="critical"').matches(labels)
    assert Matcher.parse("detector=~cost.*").matches(labels)
    assert not Matcher.parse("detector=~cost").matches(labels)  # anchored
    assert Matcher.parse("route!~.+").matches(labels)  # a missing label is the empty string
    with pytest.raises(ValueError):
        Matcher.parse("detector")
    with pytest.raises(ValueError):
        Matcher.parse("detector=~(")


def test_settings_from_environment_and_file_route_everything_by_default() -> None:
    env = {
        "TOKENPULSE_SLACK_WEBHOOK_URL": "http://slack.test/hook",
        "TOKENPULSE_PAGERDUTY_ROUTING_KEY": "R" * 32,
        "TOKENPULSE_ALERTMANAGER_URL": "http://am.test:9093",
        "TOKENPULSE_ALERTS_GROUP_WAIT_SECONDS": "5",
    }
    config = alert_settings({"repeat_interval_seconds": 600}, env)
    assert set(config.receivers) == {"slack", "pagerduty", "alertmanager"}
    alertmanager, everyone = config.routes
    assert alertmanager.receivers == ("alertmanager",) and alertmanager.continue_
    assert everyone.receivers == ("slack", "pagerduty")
    assert everyone.group_wait == timedelta(seconds=5) and everyone.repeat_interval == timedelta(minutes=10)
    assert config.inhibit_rules == [DEFAULT_INHIBIT]
    with pytest.raises(ValueError, match="unconfigured receiver"):
        alert_settings({"routes": [{"receivers": ["webhook"]}]}, env)
    with pytest.raises(ValueError, match="unknown setting"):
        alert_settings({"group_wiat_seconds": 1}, env)


def test_prune_forgets_old_deliveries_and_log_entries_but_never_pending_ones(store: AlertStore) -> None:
    clock = FakeClock()
    dispatcher = Dispatcher(store, [ROUTE], [], clock)
    dispatcher.submit([event(), event(service="billing")])
    clock.advance(seconds=30)
    dispatcher.flush_due()
    delivered, waiting = store.notifications()
    store.mark_sent(delivered.seq, 1, clock.now())
    store.add_silence(parse_matchers(["a=b"]), clock.now(), clock.now() + timedelta(hours=1), "t", "")
    clock.advance(days=6)
    assert store.prune(clock.now() - timedelta(days=5)) == 4  # the delivery, two log entries, the silence
    assert [n.seq for n in store.notifications()] == [waiting.seq] and store.silences() == []


def test_alerts_table_of_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text(
        """
[alerts]
group_wait_seconds = 10
[alerts.slack]
bot_token = "xoxb-1"
channel = "#llm"
[alerts.pagerduty]
routing_key = "key"
[[alerts.routes]]
matchers = ["severity=critical"]
receivers = ["pagerduty"]
continue = true
[[alerts.routes]]
receivers = ["slack"]
group_by = ["detector"]
repeat_interval_seconds = 3600
[[alerts.inhibit_rules]]
source_matchers = ["detector=cache_hit_collapse"]
target_matchers = ["detector=cost_spike"]
equal = ["service"]
"""
    )
    config_settings = alert_settings(load_settings(config).alerts, {})
    pager, chat = config_settings.routes
    assert pager.receivers == ("pagerduty",) and pager.continue_ and pager.group_wait == timedelta(seconds=10)
    assert chat.group_by == ("detector",) and chat.repeat_interval == timedelta(hours=1)
    assert config_settings.receivers["slack"].values == {"bot_token": "xoxb-1", "channel": "#llm"}
    assert config_settings.inhibit_rules[0].equal == ("service",)
