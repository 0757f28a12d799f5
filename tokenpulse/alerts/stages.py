"""The pure stages of the notify pipeline, after Alertmanager's: route, inhibit, silence, dedup/repeat.

Each is a function of alerts, configuration and ``now``; the dispatcher runs them and does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tokenpulse.alerts.matchers import Matcher, match_all
from tokenpulse.alerts.model import FIRING, RESOLVED, AlertEvent
from tokenpulse.alerts.store import LogEntry, Silence

ALL_LABELS = "..."  # group_by = ["..."]: every alert its own group (Alertmanager's spelling)


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


def inhibited(alert: AlertEvent, firing: Iterable[AlertEvent], rules: Sequence[InhibitRule]) -> bool:
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
                return True
    return False


def silenced(alert: AlertEvent, silences: Iterable[Silence], now: datetime) -> bool:
    labels = alert.labels
    return any(s.active(now) and match_all(s.matchers, labels) for s in silences)


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
