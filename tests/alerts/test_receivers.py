"""Receivers are named entries of a registry of types; several of one type; the old spelling still works."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.alert_helpers import FakeClock
from tokenpulse.alerts.notifiers.pagerduty import PagerDutyNotifier
from tokenpulse.alerts.notifiers.slack import SlackNotifier
from tokenpulse.alerts.receivers import Build, build_notifiers
from tokenpulse.alerts.settings import alert_settings
from tokenpulse.alerts.store import AlertStore

TWO_SLACKS = {
    "receivers": [
        {"name": "oncall-slack", "type": "slack", "bot_token": "xoxb-1", "channel": "#oncall"},
        {"name": "costs-slack", "type": "slack", "webhook_url": "https://hooks.slack.test/T/B/x"},
        {"name": "team-pager", "type": "pagerduty", "routing_key": "R1"},
    ],
    "routes": [
        {"matchers": ["severity=critical"], "receivers": ["team-pager", "oncall-slack"], "continue": True},
        {"matchers": ["detector=cost_spike"], "receivers": ["costs-slack"]},
    ],
}


def test_several_receivers_of_one_type_each_with_its_own_notifier(tmp_path: Path) -> None:
    config = alert_settings(TWO_SLACKS, {})
    assert {n: r.type for n, r in config.receivers.items()} == {
        "oncall-slack": "slack",
        "costs-slack": "slack",
        "team-pager": "pagerduty",
    }
    assert [r.receivers for r in config.routes] == [("team-pager", "oncall-slack"), ("costs-slack",)]
    notifiers = build_notifiers(config.receivers, Build(AlertStore(tmp_path / "a.sqlite"), FakeClock(), ""))
    assert (
        isinstance(notifiers["oncall-slack"], SlackNotifier)
        and notifiers["oncall-slack"].channel == "#oncall"
    )
    assert isinstance(notifiers["costs-slack"], SlackNotifier) and notifiers["costs-slack"].web is None
    assert isinstance(notifiers["team-pager"], PagerDutyNotifier)


def test_the_per_kind_tables_and_variables_still_declare_one_receiver_each() -> None:
    config = alert_settings(
        {"slack": {"bot_token": "xoxb-1", "channel": "#llm"}},
        {"TOKENPULSE_PAGERDUTY_ROUTING_KEY": "R", "TOKENPULSE_ALERTMANAGER_URL": "http://am.test:9093"},
    )
    assert {n: r.type for n, r in config.receivers.items()} == {
        "slack": "slack",
        "pagerduty": "pagerduty",
        "alertmanager": "alertmanager",
    }
    every_alert, everyone = config.routes
    assert every_alert.receivers == ("alertmanager",) and everyone.receivers == ("slack", "pagerduty")


def test_named_alertmanagers_get_every_alert_beside_the_routes() -> None:
    config = alert_settings(
        {"receivers": [{"name": "am-eu", "type": "alertmanager", "url": "http://am-eu.test"},
                       {"name": "chat", "type": "webhook", "url": "http://hook.test/x"}]}, {}
    )  # fmt: skip
    assert [r.receivers for r in config.routes] == [("am-eu",), ("chat",)]


def named(**entry: str) -> dict[str, list[dict[str, str]]]:
    return {"receivers": [entry]}


HOOK = "http://h.test"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (named(name="x", type="sms"), "[[alerts.receivers]] 'x': type 'sms' is not one of slack"),
        (named(type="slack"), "[[alerts.receivers]] #1: name '' must be"),
        (named(name="x", type="slack", channel="#c"), "'x': type 'slack' needs webhook_url or bot_token"),
        (named(name="x", type="webhook", url="hook.test"), "'x': url 'hook.test' is not an http(s) URL"),
        (
            named(name="x", type="webhook", url=HOOK, token="t"),
            "'x': unknown key(s) token for type 'webhook'; known: url",
        ),
        (
            {**named(name="slack", type="webhook", url=HOOK), "slack": {"webhook_url": HOOK}},
            "receiver 'slack' is declared twice",
        ),
        (
            {**named(name="a", type="webhook", url=HOOK), "routes": [{"receivers": ["b"]}]},
            "route to unconfigured receiver(s) b; configured: a",
        ),
        ({"slack": {"webhook_url": "not a url"}}, "[alerts.slack] (or TOKENPULSE_SLACK_WEBHOOK_URL"),
    ],
)
def test_a_bad_receiver_is_an_error_naming_its_entry(table: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        alert_settings(table, {})
    assert message in str(raised.value)
