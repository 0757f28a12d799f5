"""Incidents: the alerts that start close together and share their cause, as one thing to page about.

A runaway user makes the service's, the route's and the user's costs spike and the route's prompts
grow: four alerts, one incident. A provider slowing one model makes every route on it drift: one alert
per route, one incident. An alert joins an open incident when it started within ``JOIN_WITHIN`` of one
of the incident's alerts, of the same tenant, and when, with one of them,

- its detector is related (the same detector, or one a declared cause of the other: ``contract.CAUSES``,
  e.g. cache_hit_collapse -> cost_spike + ttft_slo, routing_escalation -> cost_spike), and
- its scope is nested in or overlaps the other's (service > route > user), or names the same model or
  provider (one model under several routes);

or, whatever the detectors, their scopes overlap and one's scope is the change the other's suspects name
(a route's answers moved to a cheaper model: quality_drop on the route names the model, cost_spike fires
on the model's spend; one change, one incident).

Otherwise, if it is the same trouble coming back within ``REOPEN_WITHIN`` of its incident's resolve (one
of the incident's alerts firing again, or a declared symptom of one on a scope they share: the cost spike
an escalating router leaves behind), it reopens that incident: on-call gets the same Slack message
edited, the same PagerDuty key triggered again, a webhook saying "reopened", rather than a new page.
Else it opens an incident of its own. The incident's severity is the worst of its alerts', it keeps a
timeline, and it resolves when its last alert resolves. ``Correlator`` is pure (events in, incidents
out), so the daemon and the benchmark correlate alike; the daemon persists every change
(``AlertStore.save_incident``) so a restart keeps them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from tokenpulse.alerts.contract import CAUSES, TENANT, AlertState, Severity, overlaps, related, worst
from tokenpulse.alerts.model import AlertEvent

JOIN_WITHIN = timedelta(minutes=30)
# A trouble that comes back this soon after its incident resolved is that incident again (a fix that did
# not hold, a detector's condition dipping under its level for longer than keep_firing_for).
REOPEN_WITHIN = timedelta(minutes=30)
SHARED_VALUES = ("model", "provider")  # one value under several scopes is one upstream
OPEN, RESOLVED = "open", "resolved"
# Resolved incidents stay listed this long (the views show them as recent), then only their rows remain.
RECENT = timedelta(hours=24)


def _scope_items(scope: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(scope.items())


def share_cause(a: AlertEvent, b: AlertEvent) -> bool:
    """Whether two alerts can be one incident's, never across tenants: related detectors on overlapping
    scopes or on scopes naming the same model or provider; or any two on overlapping scopes when one's
    scope is the change the other's suspects name (calls moved to a cheaper model: the answers' quality
    drops on the route, with the model as its suspect, and the spend on that model rises)."""
    if a.scope.get(TENANT, "") != b.scope.get(TENANT, ""):
        return False
    overlapping = overlaps(_scope_items(a.scope), _scope_items(b.scope))
    if not related(a.detector, b.detector):
        return overlapping and (_names_the_change(a, b) or _names_the_change(b, a))
    if overlapping:
        return True
    return any(a.scope.get(d) and a.scope.get(d) == b.scope.get(d) for d in SHARED_VALUES)


def _names_the_change(suspecting: AlertEvent, other: AlertEvent) -> bool:
    """Whether ``other``'s scope holds a change ``suspecting``'s suspects name (one carrying most of its
    scope's calls since the onset, as the ranked cause counts them)."""
    return any(
        str(s.get("value", "")) and other.scope.get(s["dimension"]) == str(s["value"])
        for s in suspecting.suspects
        if s.get("share_after", 0.0) >= MIN_SHARE_AFTER
    )


def _comes_back(alert: AlertEvent, event: AlertEvent) -> bool:
    """Whether ``event`` is ``alert``'s trouble again: the same alert, or a declared symptom of it on a
    scope they share."""
    return alert.id == event.id or (
        alert.detector in CAUSES.get(event.detector, ()) and share_cause(alert, event)
    )


@dataclass
class Incident:
    """Alerts sharing a cause: the latest event of each, and what happened to them, in order."""

    id: str
    opened_at: datetime  # its first alert fired
    alerts: dict[str, AlertEvent] = field(default_factory=dict)
    timeline: list[dict[str, str]] = field(default_factory=list)
    resolved_at: datetime | None = None
    updated_at: datetime | None = None
    reopened_at: datetime | None = None  # the last time an alert came back after it resolved

    @property
    def state(self) -> str:
        return RESOLVED if self.resolved_at is not None else OPEN

    @property
    def started_at(self) -> datetime:
        """The onset: the earliest start of its alerts' conditions."""
        return min(a.started_at for a in self.alerts.values())

    @property
    def severity(self) -> Severity:
        """The worst of its alerts' severities (of those still firing while any is)."""
        firing = [a.severity for a in self.alerts.values() if a.status == AlertState.FIRING]
        return worst(firing or [a.severity for a in self.alerts.values()])

    @property
    def cause(self) -> list[dict[str, Any]]:
        return ranked_cause(self.alerts.values())

    @property
    def primary(self) -> AlertEvent:
        """The alert that says most: one on the most likely change's own scope (the runaway user's),
        then a cause before its symptoms, the narrowest scope, the worst severity, the earliest start."""
        detectors = {a.detector for a in self.alerts.values()}
        top = self.cause[0]

        def rank(alert: AlertEvent) -> tuple[int, int, int, int, float]:
            explains = any(alert.detector in CAUSES.get(other, ()) for other in detectors)
            return (
                -int(alert.scope.get(top["dimension"]) == top["value"]),
                -int(explains),
                -len(alert.scope),
                -Severity(alert.severity).rank,
                alert.started_at.timestamp(),
            )

        return min(self.alerts.values(), key=rank)

    @property
    def title(self) -> str:
        """One line: the most likely change, the primary alert's summary, and what else it holds."""
        primary = self.primary
        scope = ", ".join(f"{k}={v}" for k, v in primary.scope.items() if k != TENANT) or "everything"
        others = sorted({a.detector for a in self.alerts.values() if a.id != primary.id})
        related_text = f" (+{len(self.alerts) - 1} related: {', '.join(others)})" if others else ""
        top = self.cause[0]
        change = f"{top['dimension']} {top['value']} changed: " if top["dimension"] != "none" else ""
        return f"{change}{primary.detector} on {scope}: {primary.summary}{related_text}"

    def takes(self, event: AlertEvent) -> bool:
        """Whether a new alert's event belongs here."""
        return self.state == OPEN and any(
            abs(event.started_at - a.started_at) <= JOIN_WITHIN and share_cause(a, event)
            for a in self.alerts.values()
        )

    def reopens(self, event: AlertEvent) -> bool:
        """Whether a new alert's firing brings this resolved incident back: it started within
        ``REOPEN_WITHIN`` of the resolve, and is one of its alerts again or a symptom of one. A cause
        appearing after its symptom's incident (a deploy breaking the cache after a runaway user's spike)
        is news: it opens its own."""
        return (
            self.resolved_at is not None
            and event.status == AlertState.FIRING
            and event.started_at - self.resolved_at <= REOPEN_WITHIN
            and any(_comes_back(a, event) for a in self.alerts.values())
        )

    def record(self, event: AlertEvent) -> None:
        """Take an alert's event: it joins, escalates or resolves; the last resolve resolves the incident,
        a firing after it reopens it."""
        if self.resolved_at is not None and event.status == AlertState.FIRING:
            self.reopened_at = event.at
            self.timeline.append({"at": event.at.isoformat(), "alert": "", "text": "incident reopened"})
        before = self.alerts.get(event.id)
        if before is not None and not event.suspects and before.started_at == event.started_at:
            # A resolve does not name the suspects again: the ones found when it fired still hold.
            event = replace(event, suspects=before.suspects)
        self.alerts[event.id] = event
        self.updated_at = event.at
        scope = ", ".join(f"{k}={v}" for k, v in event.scope.items()) or "all"
        if event.status == AlertState.RESOLVED:
            what = "resolved"
        elif before is None:
            what = "opened the incident" if len(self.alerts) == 1 else "joined"
        elif before.status == AlertState.RESOLVED:
            what = "fired again"
        elif Severity(event.severity).rank > Severity(before.severity).rank:
            what = f"escalated to {event.severity}"
        else:
            what = "still firing"
        self.timeline.append(
            {"at": event.at.isoformat(), "alert": event.id, "text": f"{event.detector} [{scope}] {what}"}
        )
        if all(a.status == AlertState.RESOLVED for a in self.alerts.values()):
            self.resolved_at = event.at
            self.timeline.append({"at": event.at.isoformat(), "alert": "", "text": "incident resolved"})
        else:
            self.resolved_at = None

    def to_json(self, muted: Mapping[str, str] | None = None, api_base_url: str = "") -> dict[str, Any]:
        """The incident as the API, the page and the receivers show it; ``muted`` says why an alert
        of it is muted (inhibited by ..., silenced by ...); its page is under ``api_base_url``."""
        muted = muted or {}
        return {
            "id": self.id,
            "url": f"{api_base_url.rstrip('/')}/incidents/{self.id}" if api_base_url else "",
            "title": self.title,
            "state": self.state,
            "severity": str(self.severity),
            "opened_at": self.opened_at.isoformat(),
            "started_at": self.started_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "reopened_at": self.reopened_at.isoformat() if self.reopened_at else None,
            "cause": self.cause,
            "primary": self.primary.id,
            "alerts": [
                {**_alert_brief(a), "state": muted.get(a.id, str(a.status))} for a in self.alerts.values()
            ],
            "timeline": list(self.timeline),
        }

    def document(self) -> dict[str, Any]:
        """What the store keeps (everything, to rebuild it)."""
        return {
            "id": self.id,
            "opened_at": self.opened_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "reopened_at": self.reopened_at.isoformat() if self.reopened_at else None,
            "alerts": [a.to_json() for a in self.alerts.values()],
            "timeline": self.timeline,
        }

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> Incident:
        alerts = [AlertEvent.from_json(a) for a in data["alerts"]]
        return cls(
            id=data["id"],
            opened_at=datetime.fromisoformat(data["opened_at"]),
            alerts={a.id: a for a in alerts},
            timeline=list(data["timeline"]),
            resolved_at=datetime.fromisoformat(data["resolved_at"]) if data["resolved_at"] else None,
            updated_at=datetime.fromisoformat(data["updated_at"]) if data.get("updated_at") else None,
            reopened_at=datetime.fromisoformat(data["reopened_at"]) if data.get("reopened_at") else None,
        )


def _alert_brief(alert: AlertEvent) -> dict[str, Any]:
    return {
        "id": alert.id,
        "detector": alert.detector,
        "status": str(alert.status),
        "severity": str(alert.severity),
        "scope": dict(alert.scope),
        "summary": alert.summary,
        "started_at": alert.started_at.isoformat(),
        "at": alert.at.isoformat(),
        "runbook_url": alert.runbook_url,
        "dashboard_url": alert.dashboard_url,
    }


def incident_id(first: AlertEvent) -> str:
    """Stable for one alert's firing: the same events correlate to the same ids in every run."""
    text = f"{first.id}\0{first.started_at.isoformat()}"
    return "inc-" + hashlib.sha256(text.encode()).hexdigest()[:12]


class Correlator:
    """Puts each alert event in an incident; pure (no I/O, no clock)."""

    def __init__(self, incidents: Iterable[Incident] = ()) -> None:
        self.incidents: dict[str, Incident] = {i.id: i for i in incidents}

    def open(self) -> list[Incident]:
        return [i for i in self.incidents.values() if i.state == OPEN]

    def observe(self, event: AlertEvent) -> tuple[Incident, AlertEvent]:
        """The incident ``event`` belongs to (updated), and the event labelled with it."""
        incident = next((i for i in self.open() if event.id in i.alerts), None)
        if incident is None:
            incident = next((i for i in self.open() if i.takes(event)), None)
        if incident is None:  # the latest resolved incident it brings back
            back = [i for i in self.incidents.values() if i.reopens(event)]
            incident = max(back, key=lambda i: i.resolved_at or i.opened_at, default=None)
        if incident is None:
            incident = Incident(incident_id(event), event.at)
            self.incidents[incident.id] = incident
        labelled = replace(event, incident=incident.id)
        incident.record(labelled)
        return incident, labelled

    def observe_all(self, events: Sequence[AlertEvent]) -> tuple[list[Incident], list[AlertEvent]]:
        """Every event in order; the incidents they changed (each once) and the labelled events."""
        changed: dict[str, Incident] = {}
        labelled = []
        for event in events:
            incident, event = self.observe(event)
            changed[incident.id] = incident
            labelled.append(event)
        return list(changed.values()), labelled

    def forget(self, before: datetime) -> None:
        """Drop resolved incidents older than ``before`` from memory (the store keeps them)."""
        self.incidents = {
            k: i for k, i in self.incidents.items() if i.resolved_at is None or i.resolved_at >= before
        }


NO_CHANGE = (
    "no change found: no deploy, prompt version, model, provider, router or user took over the calls "
    "when it started (a change upstream, at the provider, shows so)"
)


# A suspect must carry most of its scope's calls since the onset: a new user at a quarter of the calls,
# a prompt version that grew from a quarter to a half, are traffic, not the change.
MIN_SHARE_AFTER = 0.5
# A dimension whose values a scope's key chooses: a model switch under a router is the router's change.
CHOSEN_BY = {"model": "router"}
# Scope keys that name the change itself: an alert on one user's spend (a runaway user) or on one tool's
# cost is about that user or tool, whatever else moved (the suspects never name the alert's own scope).
NAMES_THE_CHANGE = ("user", "tool")


def _candidate(alert: AlertEvent, suspect: Mapping[str, Any]) -> tuple[str, str, str]:
    """(dimension, value, what happened) of a suspect, attributed to what chose it when declared."""
    dimension, value = suspect["dimension"], str(suspect["value"])
    before, after = suspect.get("share_before", 0.0), suspect.get("share_after", 0.0)
    scope = ", ".join(f"{k}={v}" for k, v in alert.scope.items()) or "all calls"
    chooser = CHOSEN_BY.get(dimension)
    if chooser and alert.scope.get(chooser):
        what = f"now sends {after:.0%} of its calls to {dimension} {value} (was {before:.0%})"
        return chooser, alert.scope[chooser], f"{chooser} {alert.scope[chooser]} {what}"
    how = "appeared" if suspect.get("new") else "took over"
    return dimension, value, f"{dimension} {value} {how}: {before:.0%} -> {after:.0%} of the calls of {scope}"


def ranked_cause(alerts: Iterable[AlertEvent], limit: int = 3) -> list[dict[str, Any]]:
    """The candidate changes behind the alerts, most likely first, each with a sentence saying why;
    one "no change found" entry when none lines up (never an empty list, never an empty value).

    A candidate is a suspect of the alerts (a value whose share of the scope's calls jumped at the
    alert's onset: ``detectors.suspects``) that carries most of the calls since. It ranks by how much
    of the signal it carries (the share it took, and how many of the incident's alerts name it) and by
    its onset (new at the onset first: a deploy, a prompt version that did not exist before).
    """
    alerts = list(alerts)
    found: dict[tuple[str, str], list[tuple[AlertEvent, dict[str, Any], str]]] = {}
    for alert in alerts:
        for named in (key for key in NAMES_THE_CHANGE if alert.scope.get(key)):
            itself = {"share_before": 0.0, "share_after": 1.0}
            what = f"{named} {alert.scope[named]}: {alert.summary}"
            found.setdefault((named, alert.scope[named]), []).append((alert, itself, what))
        for suspect in alert.suspects:
            if str(suspect.get("value", "")).strip() and suspect.get("share_after", 0.0) >= MIN_SHARE_AFTER:
                dimension, value, what = _candidate(alert, suspect)
                found.setdefault((dimension, value), []).append((alert, suspect, what))
    ranked = []
    for (dimension, value), named in found.items():
        naming = len({a.id for a, _, _ in named})  # an alert may name it twice: by its scope and a suspect
        carried = naming / len(alerts)
        change = max(s.get("share_after", 0.0) - s.get("share_before", 0.0) for _, s, _ in named)
        new = any(s.get("new") for _, s, _ in named)
        score = carried * change + (0.5 if new else 0.0)
        _, _, what = max(named, key=lambda item: item[1].get("share_after", 0.0))
        onset = min(a.started_at for a, _, _ in named)
        why = (
            f"{what}, since the onset (about {onset:%H:%M} UTC); "
            f"named by {naming} of the incident's {len(alerts)} alert(s)"
        )
        ranked.append((score, {"dimension": dimension, "value": value, "score": round(score, 3), "why": why}))
    ranked.sort(key=lambda item: -item[0])
    if not ranked:
        return [{"dimension": "none", "value": "no change found", "score": 0.0, "why": NO_CHANGE}]
    return [entry for _, entry in ranked[:limit]]
