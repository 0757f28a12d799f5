"""The notify pipeline, after Alertmanager's ``notify``: route -> group -> inhibit -> silence -> dedup ->
record.

Routing and grouping place each alert, as it arrives, in the groups of the routes it takes
(``matching_routes``, ``Route.group_labels``). When a group is due, it is passed to each of its route's
receivers through ``PIPELINE``: stages with one signature, ``stage(flush, alerts) -> alerts``, each
given the alerts the previous one let through and the ``Flush`` they share (the group, the receiver,
``now``, and what each stage found: why an alert is muted, what the receiver is to be sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tokenpulse.alerts.matchers import Matcher, match_all
from tokenpulse.alerts.model import FIRING, RESOLVED, AlertEvent
from tokenpulse.alerts.store import LogEntry, Silence

if TYPE_CHECKING:
    from tokenpulse.alerts.store import AlertStore

ALL_LABELS = "..."  # group_by = ["..."]: every alert its own group (Alertmanager's spelling)
BY_INCIDENT = "incident"  # group_by = ["incident"] (the default): one group per incident


@dataclass(frozen=True)
class Route:
    """Alerts whose labels match ``matchers`` go to ``receivers``, grouped by ``group_by``.

    Routes are tried in order; the first match wins unless it says ``continue_``.
    """

    receivers: tuple[str, ...]
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = (ALL_LABELS,)
    group_wait: timedelta = timedelta(seconds=30)  # before a new group's first notification
    group_interval: timedelta = timedelta(minutes=5)  # between notifications of a group that changed
    repeat_interval: timedelta = timedelta(hours=4)  # before repeating an unchanged firing group
    send_resolved: bool = True
    continue_: bool = False

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if ALL_LABELS in self.group_by:
            return dict(labels)
        return {name: labels.get(name, "") for name in self.group_by}


def matching_routes(routes: Sequence[Route], labels: Mapping[str, str]) -> list[int]:
    """Indexes of the routes an alert takes."""
    chosen = []
    for index, route in enumerate(routes):
        if match_all(route.matchers, labels):
            chosen.append(index)
            if not route.continue_:
                break
    return chosen


def group_key(route_index: int, group_labels: Mapping[str, str]) -> str:
    """Alertmanager's form: ``<route>:{name="value",...}``."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    return f"{route_index}:{{{inner}}}"


@dataclass(frozen=True)
class InhibitRule:
    """A firing alert matching ``source`` mutes alerts matching ``target`` that share the ``equal`` labels."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = field(default=())


def inhibited_by(
    alert: AlertEvent, firing: Iterable[AlertEvent], rules: Sequence[InhibitRule]
) -> AlertEvent | None:
    """The firing alert that mutes ``alert`` under one of ``rules``, if any."""
    labels = alert.labels
    for rule in rules:
        if not match_all(rule.target, labels):
            continue
        for source in firing:
            source_labels = source.labels
            if (
                source.id != alert.id
                and source.status == FIRING
                and match_all(rule.source, source_labels)
                and all(source_labels.get(name, "") == labels.get(name, "") for name in rule.equal)
            ):
                return source
    return None


def inhibited(alert: AlertEvent, firing: Iterable[AlertEvent], rules: Sequence[InhibitRule]) -> bool:
    return inhibited_by(alert, firing, rules) is not None


def silenced_by(alert: AlertEvent, silences: Iterable[Silence], now: datetime) -> Silence | None:
    """The active silence that mutes ``alert``, if any."""
    labels = alert.labels
    return next((s for s in silences if s.active(now) and match_all(s.matchers, labels)), None)


def silenced(alert: AlertEvent, silences: Iterable[Silence], now: datetime) -> bool:
    return silenced_by(alert, silences, now) is not None


def firing_key(alert: AlertEvent) -> str:
    """What the log remembers of a firing alert: an escalation (same id, new severity) is news."""
    return f"{alert.id}:{alert.severity}"


@dataclass(frozen=True)
class Decision:
    """What one receiver is sent for one group now, and what its log then says."""

    send: bool
    alerts: list[AlertEvent]
    log: LogEntry


def decide(alerts: Sequence[AlertEvent], entry: LogEntry | None, route: Route, now: datetime) -> Decision:
    """Dedup and repeat (Alertmanager's DedupStage): send only what is new, or a repeat when it is due.

    A resolved alert is only ever reported to a receiver that was told it fired, so an alert that
    resolves before its group's first notification (while it waits) is never sent at all.
    """
    firing = [a for a in alerts if a.status == FIRING]
    told = {key.rsplit(":", 1)[0] for key in entry.firing} if entry else set()
    resolved = [a for a in alerts if a.status == RESOLVED and a.id in told]
    firing_keys = frozenset(firing_key(a) for a in firing)
    resolved_ids = frozenset(a.id for a in resolved)
    if entry is None:
        send = bool(firing)
    else:
        send = (
            not firing_keys <= entry.firing
            or (route.send_resolved and not resolved_ids <= entry.resolved)
            or (bool(firing) and now - entry.sent_at >= route.repeat_interval)
        )
    chosen = firing + (resolved if route.send_resolved else [])
    sent_at = now if send else (entry.sent_at if entry else now)
    return Decision(send and bool(chosen), chosen, LogEntry(firing_keys, resolved_ids, sent_at))


# Why an alert is muted: ``inhibited by <alert id>`` or ``silenced by <silence id>``.
INHIBITED_BY, SILENCED_BY = "inhibited by", "silenced by"


@dataclass
class Flush:
    """What the stages of one group's flush to one receiver share."""

    store: AlertStore
    route: Route
    group_key: str
    group_labels: dict[str, str]
    receiver: str
    now: datetime
    held: Sequence[AlertEvent]  # every alert the dispatcher holds: the sources of inhibitions
    silences: Sequence[Silence]
    inhibit_rules: Sequence[InhibitRule]
    muted: dict[str, str] = field(default_factory=dict)  # alert id -> why (shared by every flush of a pass)
    decision: Decision | None = None
    recorded: int = 0  # notifications recorded in the outbox
    # The group's incident as receivers show it, given why its alerts are muted ({} when none).
    incident: Callable[[Mapping[str, str]], dict[str, Any]] = lambda muted: {}


Stage = Callable[[Flush, list[AlertEvent]], list[AlertEvent]]


def _audible(
    flush: Flush, alerts: list[AlertEvent], why: str, muter: Callable[[AlertEvent], str | None]
) -> list[AlertEvent]:
    """The alerts ``muter`` names no muter for; the others are noted in ``flush.muted``."""
    audible = []
    for alert in alerts:
        found = muter(alert)
        if found is None:
            audible.append(alert)
        else:
            flush.muted[alert.id] = f"{why} {found}"
    return audible


def inhibit_stage(flush: Flush, alerts: list[AlertEvent]) -> list[AlertEvent]:
    """Drop what a configured inhibit rule mutes, noting by which alert."""
    firing = [a for a in flush.held if a.status == FIRING]

    def source(alert: AlertEvent) -> str | None:
        found = inhibited_by(alert, firing, flush.inhibit_rules)
        return found.id if found else None

    return _audible(flush, alerts, INHIBITED_BY, source)


def silence_stage(flush: Flush, alerts: list[AlertEvent]) -> list[AlertEvent]:
    """Drop what an active silence mutes, noting by which silence."""

    def silence(alert: AlertEvent) -> str | None:
        found = silenced_by(alert, flush.silences, flush.now)
        return found.id if found else None

    return _audible(flush, alerts, SILENCED_BY, silence)


def dedup_stage(flush: Flush, alerts: list[AlertEvent]) -> list[AlertEvent]:
    """Keep the alerts only when the receiver has not been told them yet (or a repeat is due)."""
    entry = flush.store.log_entry(flush.receiver, flush.group_key)
    flush.decision = decide(alerts, entry, flush.route, flush.now)
    # The log is written whenever what the receiver knows changes, sent or not.
    if not flush.decision.send and (entry is None or flush.decision.log == entry):
        flush.decision = None
    return flush.decision.alerts if flush.decision and flush.decision.send else []


def record_stage(flush: Flush, alerts: list[AlertEvent]) -> list[AlertEvent]:
    """Record the receiver's log and, when there is something to send, the notification (one
    transaction): the delivery workers send it from the outbox."""
    if flush.decision is not None:
        decision = flush.decision
        flush.store.enqueue(
            flush.receiver, flush.group_key, flush.group_labels, decision.alerts, decision.log,
            decision.send, flush.incident(flush.muted) if decision.send else None,
        )  # fmt: skip
        flush.recorded += decision.send
    return alerts


PIPELINE: tuple[Stage, ...] = (inhibit_stage, silence_stage, dedup_stage, record_stage)


def run_pipeline(
    flush: Flush, alerts: list[AlertEvent], stages: Sequence[Stage] = PIPELINE
) -> list[AlertEvent]:
    """Pass ``alerts`` through ``stages`` in order; what the last one lets through."""
    for stage in stages:
        alerts = stage(flush, alerts)
    return alerts
