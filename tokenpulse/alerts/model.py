"""The alert as notifiers see it: a detector transition with its id, labels and links."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tokenpulse.alerts.contract import AlertState, Transition

FIRING = AlertState.FIRING
RESOLVED = AlertState.RESOLVED


def format_scope(scope: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in scope.items()) or "all"


@dataclass(frozen=True)
class AlertEvent:
    """One alert's latest transition. ``id`` is the stable fingerprint of (detector, scope)."""

    id: str
    status: str  # firing | resolved
    detector: str
    severity: str
    scope: dict[str, str]
    value: float
    threshold: float
    baseline: float | None
    summary: str
    suspects: list[dict[str, Any]]
    started_at: datetime
    at: datetime  # when it fired (or escalated) or resolved
    window_minutes: float
    runbook_url: str
    dashboard_url: str
    generator_url: str = ""  # the daemon's API page of this alert
    incident: str = ""  # the id of the incident it belongs to (alerts.incidents), once correlated

    @property
    def labels(self) -> dict[str, str]:
        """Alertmanager labels: the detector (also as ``alertname``), severity, scope and its dimensions."""
        return {
            "alertname": self.detector,
            "detector": self.detector,
            "severity": self.severity,
            "scope": format_scope(self.scope),
            **self.scope,
            **({"incident": self.incident} if self.incident else {}),
        }

    @property
    def suspects_text(self) -> str:
        return describe_suspects(self.suspects)

    @property
    def figures_text(self) -> str:
        baseline = "none" if self.baseline is None else f"{self.baseline:.6g}"
        window = f" over {self.window_minutes:g} min" if self.window_minutes else ""
        return f"value {self.value:.6g} vs threshold {self.threshold:.6g} (baseline {baseline}){window}"

    def annotations(self) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": f"{self.figures_text}. Suspects: {self.suspects_text}.",
            "runbook_url": self.runbook_url,
            "dashboard_url": self.dashboard_url,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertEvent:
        values = dict(data)
        values["started_at"] = datetime.fromisoformat(values["started_at"])
        values["at"] = datetime.fromisoformat(values["at"])
        return cls(**values)


def describe_suspects(suspects: list[dict[str, Any]]) -> str:
    """``prompt_version=v8 (new, 0% -> 100% of calls)``; "none found" when the change is not attributable."""
    if not suspects:
        return "none found"
    parts = []
    for s in suspects:
        new = "new, " if s.get("new") else ""
        parts.append(
            f"{s['dimension']}={s['value']} ({new}{s.get('share_before', 0):.0%} -> "
            f"{s.get('share_after', 0):.0%} of calls)"
        )
    return "; ".join(parts)


@dataclass(frozen=True)
class Links:
    """Where an alert's links point: the runbooks, a dashboard template and the daemon's own API."""

    runbook_base_url: str  # <base>/<detector>?alert=<id>
    api_base_url: str  # the daemon's API, for the alert's own page and the default dashboard
    dashboard_url: str = ""  # a template with {id}, {detector} and scope fields; default: the summary API

    def runbook(self, detector: str, alert_id: str) -> str:
        return f"{self.runbook_base_url.rstrip('/')}/{detector}?alert={alert_id}"

    def dashboard(self, detector: str, alert_id: str, scope: Mapping[str, str], at: datetime) -> str:
        if self.dashboard_url:
            fields = {k: urllib.parse.quote(v, safe="") for k, v in scope.items()}
            return self.dashboard_url.format_map(_Blank(id=alert_id, detector=detector, **fields))
        # The scope's calls over the two hours before the event.
        query = {
            "start": (at - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (at + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "group_by": ",".join(scope),
            **scope,
        }
        return f"{self.api_base_url.rstrip('/')}/api/v1/summary?{urllib.parse.urlencode(query)}"

    def alert(self, alert_id: str) -> str:
        return f"{self.api_base_url.rstrip('/')}/api/v1/alerts/{alert_id}"


class _Blank(dict[str, str]):
    """Template fields the scope does not have render empty instead of failing."""

    def __missing__(self, key: str) -> str:
        return ""


def event_from_transition(transition: Transition, links: Links) -> AlertEvent:
    alert_id = transition.fingerprint
    scope = dict(transition.scope)
    window = transition.window
    return AlertEvent(
        id=alert_id,
        status=str(transition.status),
        detector=transition.detector,
        severity=str(transition.severity),
        scope=scope,
        value=transition.value,
        threshold=transition.threshold,
        baseline=transition.baseline,
        summary=transition.summary,
        suspects=list(transition.suspects),
        started_at=transition.started_at,
        at=transition.at,
        window_minutes=window.total_seconds() / 60,
        runbook_url=links.runbook(transition.detector, alert_id),
        dashboard_url=links.dashboard(transition.detector, alert_id, scope, transition.at),
        generator_url=links.alert(alert_id),
    )


class Clock(Protocol):
    """Time for the dispatcher and delivery: the system clock live, a fake one in tests."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
