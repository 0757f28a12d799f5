"""What every detector shares: scopes, observations, settings and the detector interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from tokenpulse.alerts.contract import Transition as Transition  # the alert contract's; re-exported
from tokenpulse.detectors.history import History, Query

# Canonical scope dimensions (a public contract: alerts, config, runbooks and dashboards use them).
# The tenant comes first, and only where API keys give one (see ``engine.Engine.evaluate``).
SCOPE_DIMENSIONS = (
    "tenant", "service", "environment", "provider", "model", "route", "user", "tool", "router",
    "prompt_version", "deploy_version", "session",
)  # fmt: skip

Scope = tuple[tuple[str, str], ...]  # (dimension, value) pairs in a fixed order: hashable and stable


def make_scope(**values: str) -> Scope:
    return tuple((k, str(v)) for k, v in values.items())


def scope_dict(scope: Scope) -> dict[str, str]:
    return dict(scope)


def format_scope(scope: Scope) -> str:
    return ", ".join(f"{k}={v}" for k, v in scope) or "all"


WARNING = "warning"
CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Observation:
    """What a detector saw for one scope at one evaluation time.

    ``severity`` is None when the scope is healthy: an observation of health is what resolves alerts.
    Scopes without enough samples produce no observation at all.
    """

    detector: str
    scope: Scope
    at: datetime
    severity: str | None
    value: float
    threshold: float
    baseline: float | None
    samples: int
    summary: str
    # Whether its latest minutes give evidence for the change, or the alarm only awaits the evidence that
    # outweighs what it holds (a thin scope proving it is back): the evidence templates say.
    current: bool = True

    @property
    def active(self) -> bool:
        return self.severity is not None


# What a detector does with a scope (``Coverage.status``), so that "no alert" can be told from "not
# looking": watched; learning (its history does not say yet what is usual: held to a documented default,
# or not watched yet); not applicable (e.g. a scope that never cached, for the cache detectors).
WATCHED, LEARNING, NOT_APPLICABLE = "watched", "learning", "not_applicable"


@dataclass(frozen=True, slots=True)
class Coverage:
    """One detector's status for one scope at one time, with a line saying why."""

    detector: str
    scope: Scope
    status: str
    note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "scope": scope_dict(self.scope),
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True)
class DetectorSettings:
    """Settings every detector has; each detector adds its thresholds in a subclass."""

    enabled: bool = True
    window: timedelta = timedelta(minutes=5)
    for_: timedelta = timedelta(minutes=5)  # the condition must hold this long before firing
    keep_firing_for: timedelta = timedelta(minutes=5)  # one good window does not resolve


class Detector(Protocol):
    """A detector: ``evaluate`` is a pure function of the history and the evaluation times."""

    name: ClassVar[str]
    settings: DetectorSettings
    # False: ``evaluate`` takes every tenant's history at once (the tenant is one of its scope keys);
    # True: the engine hands it each tenant's history on its own.
    splits_tenants: ClassVar[bool]

    def queries(self) -> list[Query]:
        """The reads ``evaluate`` needs (the engine runs each distinct query once per cycle)."""
        ...

    def lookback(self) -> timedelta:
        """How much history before the first evaluation time ``evaluate`` needs."""
        ...

    def same_hour_margin(self) -> timedelta:
        """How much history around the same times of previous days ``evaluate`` needs."""
        ...

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        """Observations for every scope at each of ``times`` (whole minutes, ascending)."""
        ...

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        """``evaluate``'s observations, and each scope's status at the last of ``times`` (none from
        detectors that do not assess it per scope), from one pass."""
        ...


def settings_from_mapping(cls: type[DetectorSettings], values: Mapping[str, Any]) -> DetectorSettings:
    """Build detector settings from a config table; durations are minutes (``window_minutes = 10``)."""
    fields = {f for f in cls.__dataclass_fields__}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = key.removesuffix("_minutes")
        name = "for_" if name == "for" else name
        if name not in fields:
            raise ValueError(f"unknown detector setting {key!r}; known: {', '.join(sorted(fields))}")
        kwargs[name] = timedelta(minutes=value) if key.endswith("_minutes") else value
    return cls(**kwargs)
