"""Receivers, routes and inhibition from the ``[alerts]`` table of the config file and the environment.

Receivers are named by their kind — ``slack``, ``pagerduty``, ``webhook``, ``alertmanager`` — and each
is configured by its table (``[alerts.slack]``) or its environment variables (environment wins), so a
container needs no file. Without ``[[alerts.routes]]`` every alert goes to every configured receiver.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tokenpulse.alerts.matchers import parse_matchers
from tokenpulse.alerts.stages import ALL_LABELS, InhibitRule, Route

# (receiver, key) -> environment variable
ENVIRONMENT = {
    ("slack", "webhook_url"): "TOKENPULSE_SLACK_WEBHOOK_URL",
    ("slack", "bot_token"): "TOKENPULSE_SLACK_BOT_TOKEN",
    ("slack", "channel"): "TOKENPULSE_SLACK_CHANNEL",
    ("slack", "api_url"): "TOKENPULSE_SLACK_API_URL",
    ("pagerduty", "routing_key"): "TOKENPULSE_PAGERDUTY_ROUTING_KEY",
    ("pagerduty", "events_url"): "TOKENPULSE_PAGERDUTY_EVENTS_URL",
    ("webhook", "url"): "TOKENPULSE_WEBHOOK_URL",
    ("alertmanager", "url"): "TOKENPULSE_ALERTMANAGER_URL",
}
# A receiver is configured when its required key is set.
REQUIRED = {"slack": ("webhook_url", "bot_token"), "pagerduty": ("routing_key",), "webhook": ("url",),
            "alertmanager": ("url",)}  # fmt: skip
TIMINGS = ("group_wait", "group_interval", "repeat_interval")
# Receiver keys that hold a URL: a typo there would fail only at the first alert, hours later.
URL_KEYS = {("slack", "webhook_url"), ("slack", "api_url"), ("pagerduty", "events_url"), ("webhook", "url"),
            ("alertmanager", "url")}  # fmt: skip
ALERTMANAGER_REFRESH = timedelta(minutes=1)

# The rule: a critical alert mutes the warning of the same detector and scope.
DEFAULT_INHIBIT = InhibitRule(
    source=parse_matchers(["severity=critical"]), target=parse_matchers(["severity=warning"]),
    equal=("detector", "scope"),
)  # fmt: skip


@dataclass(frozen=True)
class AlertSettings:
    receivers: dict[str, dict[str, str]]  # configured receivers only
    routes: list[Route]
    inhibit_rules: list[InhibitRule]
    dashboard_url: str = ""
    external_url: str = ""  # the daemon's API as receivers should link to it; default http://host:port


def _timing(table: Mapping[str, Any], defaults: Mapping[str, timedelta]) -> dict[str, timedelta]:
    return {
        name: timedelta(seconds=float(table[f"{name}_seconds"]))
        if f"{name}_seconds" in table
        else defaults[name]
        for name in TIMINGS
    }


def _is_url(value: str) -> bool:
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def alert_settings(table: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> AlertSettings:
    """Parse ``[alerts]`` (``table``) with the environment's overrides."""
    env = os.environ if environ is None else environ
    table = dict(table)
    receivers: dict[str, dict[str, str]] = {}
    for kind, required in REQUIRED.items():
        config = {str(k): str(v) for k, v in dict(table.pop(kind, {})).items()}
        for (receiver, key), variable in ENVIRONMENT.items():
            if receiver == kind and env.get(variable):
                config[key] = env[variable]
        if any(config.get(key) for key in required):
            receivers[kind] = config
        for key, value in config.items():
            if (kind, key) in URL_KEYS and not _is_url(value):
                variable = ENVIRONMENT[(kind, key)]
                raise ValueError(f"[alerts.{kind}] {key} (or {variable}) {value!r} is not an http(s) URL")
    for name in TIMINGS:
        variable = f"TOKENPULSE_ALERTS_{name.upper()}_SECONDS"
        if env.get(variable):
            table[f"{name}_seconds"] = env[variable]
    route_defaults = Route(receivers=())
    defaults = _timing(table, {name: getattr(route_defaults, name) for name in TIMINGS})
    group_by = tuple(table.pop("group_by", (ALL_LABELS,)))
    send_resolved = bool(table.pop("send_resolved", True))
    chat = [r for r in receivers if r != "alertmanager"]
    routes = [
        Route(
            receivers=tuple(r["receivers"]),
            matchers=parse_matchers(r.get("matchers", [])),
            group_by=tuple(r.get("group_by", group_by)),
            send_resolved=bool(r.get("send_resolved", send_resolved)),
            continue_=bool(r.get("continue", False)),
            **_timing(r, defaults),
        )
        for r in table.pop("routes", [])
    ] or (
        [Route(receivers=tuple(chat), group_by=group_by, send_resolved=send_resolved, **defaults)]
        if chat
        else []
    )
    for route in routes:
        unknown = [r for r in route.receivers if r not in receivers]
        if unknown:
            raise ValueError(
                f"[alerts] route to unconfigured receiver(s) {', '.join(unknown)}; configured: "
                f"{', '.join(receivers) or 'none'}"
            )
    if "alertmanager" in receivers:
        # Alertmanager groups, silences and routes by itself: it is sent every alert, refreshed while firing.
        routes.insert(0, Route(
            receivers=("alertmanager",), group_wait=timedelta(0), group_interval=ALERTMANAGER_REFRESH,
            repeat_interval=ALERTMANAGER_REFRESH, continue_=True,
        ))  # fmt: skip
    rules = [
        InhibitRule(
            parse_matchers(r.get("source_matchers", [])),
            parse_matchers(r.get("target_matchers", [])),
            tuple(r.get("equal", [])),
        )
        for r in table.pop("inhibit_rules", [])
    ] or [DEFAULT_INHIBIT]
    dashboard_url = env.get("TOKENPULSE_DASHBOARD_URL") or str(table.pop("dashboard_url", ""))
    external_url = env.get("TOKENPULSE_EXTERNAL_URL") or str(table.pop("external_url", ""))
    table.pop("dashboard_url", None)  # when the environment won
    table.pop("external_url", None)
    for name in TIMINGS:
        table.pop(f"{name}_seconds", None)
    if table:
        raise ValueError(f"[alerts]: unknown setting(s) {', '.join(sorted(table))}")
    return AlertSettings(receivers, routes, rules, dashboard_url, external_url)
