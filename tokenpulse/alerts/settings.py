"""Receivers, routes and inhibition from the ``[alerts]`` table of the config file and the environment.

Receivers are named entries of a registry of types (``alerts.receivers``): ``[[alerts.receivers]]``
with a ``name`` and a ``type``, or, as before, one per kind from its table (``[alerts.slack]``) or its
environment variables (environment wins), so a container needs no file. Without ``[[alerts.routes]]``
every alert goes to every configured receiver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tokenpulse.alerts.matchers import parse_matchers
from tokenpulse.alerts.receivers import TYPES, Receiver, receivers_of
from tokenpulse.alerts.stages import BY_INCIDENT, InhibitRule, Route

TIMINGS = ("group_wait", "group_interval", "repeat_interval")
ALERTMANAGER_REFRESH = timedelta(minutes=1)

# The rule: a critical alert mutes the warning of the same detector and scope.
DEFAULT_INHIBIT = InhibitRule(
    source=parse_matchers(["severity=critical"]), target=parse_matchers(["severity=warning"]),
    equal=("detector", "scope"),
)  # fmt: skip


@dataclass(frozen=True)
class AlertSettings:
    receivers: dict[str, Receiver]  # configured receivers only, by name
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


def alert_settings(table: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> AlertSettings:
    """Parse ``[alerts]`` (``table``) with the environment's overrides."""
    env = os.environ if environ is None else environ
    table = dict(table)
    receivers = receivers_of(table, env)
    for name in TIMINGS:
        variable = f"TOKENPULSE_ALERTS_{name.upper()}_SECONDS"
        if env.get(variable):
            table[f"{name}_seconds"] = env[variable]
    route_defaults = Route(receivers=())
    defaults = _timing(table, {name: getattr(route_defaults, name) for name in TIMINGS})
    # By default a group is an incident: one message, one page, updated as its alerts change.
    group_by = tuple(table.pop("group_by", (BY_INCIDENT,)))
    send_resolved = bool(table.pop("send_resolved", True))
    every_alert = tuple(n for n, r in receivers.items() if TYPES[r.type].gets_every_alert)
    chat = [n for n in receivers if n not in every_alert]
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
    if every_alert:
        # Alertmanager groups, silences and routes by itself: it is sent every alert, refreshed while firing.
        routes.insert(0, Route(
            receivers=every_alert, group_wait=timedelta(0), group_interval=ALERTMANAGER_REFRESH,
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
