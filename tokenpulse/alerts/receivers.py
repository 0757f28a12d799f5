"""Receivers as named entries of a registry of types (Alertmanager's named integrations).

A receiver is ``[[alerts.receivers]] name = "oncall-slack" type = "slack"`` plus its type's keys; several
receivers may share a type (two Slack channels, a PagerDuty service per team). Each type is declared
once here: the keys it takes, which of them it needs, which hold URLs, and how its notifier is built.

The older spelling, one table per kind (``[alerts.slack]``) and its ``TOKENPULSE_*`` variables, still
works: it declares one receiver named after its kind.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the notifiers import the delivery machinery; settings parsing must not need it
    from tokenpulse.alerts.delivery import Notifier
    from tokenpulse.alerts.model import Clock
    from tokenpulse.alerts.store import AlertStore


@dataclass(frozen=True)
class Receiver:
    """One configured receiver: its name (what routes say), its type, and its type's settings."""

    name: str
    type: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Build:
    """What a notifier may need besides its own settings."""

    store: AlertStore
    clock: Clock
    external_url: str  # the daemon's API as receivers should link to it


@dataclass(frozen=True)
class ReceiverType:
    keys: tuple[str, ...]  # every key it takes
    required: tuple[str, ...]  # it is configured when one of these is set
    urls: frozenset[str]  # keys holding an http(s) URL: a typo would fail only at the first alert
    environment: Mapping[str, str]  # key -> variable of the one receiver named after the type
    build: Callable[[Receiver, Build], Notifier]
    gets_every_alert: bool = False  # groups and routes on its own (Alertmanager): sent alerts, not incidents


def _slack(receiver: Receiver, context: Build) -> Notifier:
    from tokenpulse.alerts.notifiers.slack import SlackNotifier

    v = receiver.values
    return SlackNotifier(
        receiver.name, context.store, context.clock, webhook_url=v.get("webhook_url"),
        bot_token=v.get("bot_token"), channel=v.get("channel"), api_url=v.get("api_url"),
    )  # fmt: skip


def _pagerduty(receiver: Receiver, context: Build) -> Notifier:
    from tokenpulse.alerts.notifiers.pagerduty import EVENTS_URL, PagerDutyNotifier

    return PagerDutyNotifier(receiver.values["routing_key"], receiver.values.get("events_url") or EVENTS_URL)


def _webhook(receiver: Receiver, context: Build) -> Notifier:
    from tokenpulse.alerts.notifiers.webhook import WebhookNotifier

    return WebhookNotifier(receiver.values["url"], context.external_url)


def _alertmanager(receiver: Receiver, context: Build) -> Notifier:
    from tokenpulse.alerts.notifiers.alertmanager import AlertmanagerNotifier
    from tokenpulse.alerts.settings import ALERTMANAGER_REFRESH

    return AlertmanagerNotifier(receiver.values["url"], context.clock, ALERTMANAGER_REFRESH)


TYPES: dict[str, ReceiverType] = {
    "slack": ReceiverType(
        keys=("webhook_url", "bot_token", "channel", "api_url"),
        required=("webhook_url", "bot_token"),
        urls=frozenset({"webhook_url", "api_url"}),
        environment={
            "webhook_url": "TOKENPULSE_SLACK_WEBHOOK_URL",
            "bot_token": "TOKENPULSE_SLACK_BOT_TOKEN",
            "channel": "TOKENPULSE_SLACK_CHANNEL",
            "api_url": "TOKENPULSE_SLACK_API_URL",
        },
        build=_slack,
    ),
    "pagerduty": ReceiverType(
        keys=("routing_key", "events_url"),
        required=("routing_key",),
        urls=frozenset({"events_url"}),
        environment={
            "routing_key": "TOKENPULSE_PAGERDUTY_ROUTING_KEY",
            "events_url": "TOKENPULSE_PAGERDUTY_EVENTS_URL",
        },
        build=_pagerduty,
    ),
    "webhook": ReceiverType(
        keys=("url",),
        required=("url",),
        urls=frozenset({"url"}),
        environment={"url": "TOKENPULSE_WEBHOOK_URL"},
        build=_webhook,
    ),
    "alertmanager": ReceiverType(
        keys=("url",),
        required=("url",),
        urls=frozenset({"url"}),
        environment={"url": "TOKENPULSE_ALERTMANAGER_URL"},
        build=_alertmanager,
        gets_every_alert=True,
    ),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _is_url(value: str) -> bool:
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _checked(receiver: Receiver, where: str) -> Receiver:
    kind = TYPES[receiver.type]
    if unknown := sorted(set(receiver.values) - set(kind.keys)):
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)} for type {receiver.type!r}; "
            f"known: {', '.join(kind.keys)}"
        )
    if not any(receiver.values.get(key) for key in kind.required):
        raise ValueError(f"{where}: type {receiver.type!r} needs {' or '.join(kind.required)}")
    for key, value in receiver.values.items():
        if key in kind.urls and not _is_url(value):
            raise ValueError(f"{where}: {key} {value!r} is not an http(s) URL")
    return receiver


def legacy_receivers(table: dict[str, object], environ: Mapping[str, str]) -> list[Receiver]:
    """The receivers of the per-kind spelling: ``[alerts.<type>]`` tables (popped from ``table``) and
    ``TOKENPULSE_*`` variables (which win), one receiver named after its type."""
    found = []
    for kind, spec in TYPES.items():
        raw = table.pop(kind, {})
        if not isinstance(raw, dict):
            raise ValueError(f"[alerts.{kind}] must be a table")
        values = {str(k): str(v) for k, v in raw.items()}
        values |= {key: environ[var] for key, var in spec.environment.items() if environ.get(var)}
        if not values:
            continue
        variables = ", ".join(spec.environment.values())
        where = f"[alerts.{kind}] (or {variables})"
        if not any(values.get(key) for key in spec.required):
            continue  # e.g. a channel without a token: not configured, as before
        found.append(_checked(Receiver(kind, kind, values), where))
    return found


def named_receivers(entries: object) -> list[Receiver]:
    """The ``[[alerts.receivers]]`` entries, each checked against its type."""
    if not isinstance(entries, list):
        raise ValueError("[[alerts.receivers]] must be an array of tables")
    found = []
    for index, entry in enumerate(entries):
        where = f"[[alerts.receivers]] #{index + 1}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a table")
        values = {str(k): str(v) for k, v in entry.items()}
        name, kind = values.pop("name", ""), values.pop("type", "")
        if not _NAME.match(name):
            raise ValueError(f"{where}: name {name!r} must be letters, digits, '_', '-' or '.'")
        where = f"[[alerts.receivers]] {name!r}"
        if kind not in TYPES:
            raise ValueError(f"{where}: type {kind!r} is not one of {', '.join(TYPES)}")
        found.append(_checked(Receiver(name, kind, values), where))
    return found


def receivers_of(table: dict[str, object], environ: Mapping[str, str]) -> dict[str, Receiver]:
    """Every receiver by name: the named entries, then the per-kind tables and variables; a name
    declared twice is an error that says which two."""
    named = named_receivers(table.pop("receivers", []))
    legacy = legacy_receivers(table, environ)
    receivers: dict[str, Receiver] = {}
    for receiver in [*named, *legacy]:
        if receiver.name in receivers:
            raise ValueError(
                f"receiver {receiver.name!r} is declared twice (an [[alerts.receivers]] entry and "
                f"[alerts.{receiver.name}] or its TOKENPULSE_* variables): rename the entry"
            )
        receivers[receiver.name] = receiver
    return receivers


def build_notifiers(receivers: Mapping[str, Receiver], context: Build) -> dict[str, Notifier]:
    """One notifier per receiver, built by its type."""
    return {name: TYPES[r.type].build(r, context) for name, r in receivers.items()}
