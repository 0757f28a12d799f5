"""coverage_gap: the provider counted materially more requests or tokens for a model than tokenpulse
received, or charged materially other dollars for what both counted.

Its evidence is the providers' own usage and cost reports (``provider_usage``, imported by
``tokenpulse reconcile`` or daily by ``serve`` with an admin key), per complete UTC day x provider x
model, against the calls the rollup counted that day. A gap is what no other detector can see: an
uninstrumented service, a broken exporter or a sampler dropping LLM spans look like quiet traffic
everywhere else, and a price change or a new tier makes every dollar figure wrong without changing a
token. The latest reported day of each model decides (providers revise a day for a while; an import
replaces it). Warning: the provider counted ``min_missing_share`` (5%) more requests, input or output
tokens than tokenpulse received (critical from 25%), or, the counts agreeing, tokenpulse's dollars are
``max_price_drift`` (2%) and ``min_drift_usd`` ($0.50) off the bill. A model without a report row is not
watched: the detector says nothing about providers nobody imported.

The report is the organization's, so the scope is provider x model across every tenant. The rollup
counts a call in the minute it ended and the provider in the one it started: a call across midnight
moves a day, far below the thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pandas as pd

from tokenpulse.detectors.base import (
    CRITICAL,
    WARNING,
    WATCHED,
    Coverage,
    DetectorSettings,
    Observation,
    Scope,
    format_scope,
    make_scope,
)
from tokenpulse.detectors.history import Gate, History, Query

# Reports arrive a day or more late: this much history of them is read for each evaluation time.
REPORT_DAYS = 7

# Per complete day x provider x model: the report's counts and dollars beside the rollup's. Only days
# wholly inside the range are compared (a day cut by the range would look short on tokenpulse's side).
REPORTS = Query(
    "coverage_gap:reports",
    """
    SELECT p.day AS day, p.provider AS provider, p.model AS model,
           p.provider_calls AS provider_calls, p.has_calls AS has_calls,
           p.provider_input AS provider_input, p.provider_output AS provider_output,
           toFloat64(p.provider_cost) AS provider_cost, p.has_cost AS has_cost,
           c.calls AS calls, c.input_tokens AS input_tokens, c.output_tokens AS output_tokens,
           toFloat64(c.cost_usd) AS cost_usd
    FROM (
        SELECT day, provider, model,
               sum(ifNull(calls, 0)) AS provider_calls, countIf(calls IS NOT NULL) > 0 AS has_calls,
               sum(input_tokens) AS provider_input, sum(output_tokens) AS provider_output,
               sum(ifNull(cost_usd, 0)) AS provider_cost, countIf(cost_usd IS NOT NULL) > 0 AS has_cost
        FROM provider_usage FINAL
        WHERE day > toDate({start:DateTime('UTC')}) AND day < toDate({end:DateTime('UTC')})
        GROUP BY day, provider, model
    ) AS p
    LEFT JOIN (
        SELECT toDate(minute) AS day, provider, lower(model) AS model, sum(calls) AS calls,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cost_usd) AS cost_usd
        FROM calls_1m
        WHERE minute >= toDateTime(toDate({start:DateTime('UTC')}) + 1) AND minute < {end:DateTime('UTC')}
          -- only what a report covers: without any report the rollup is not summed at all
          AND (provider, lower(model)) IN (
              SELECT provider, model FROM provider_usage WHERE day > toDate({start:DateTime('UTC')})
          )
        GROUP BY day, provider, model
    ) AS c ON p.day = c.day AND p.provider = c.provider AND p.model = c.model
    """,
    recent=timedelta(days=REPORT_DAYS),
    # No report of a day in the range (p is empty): the query is not run.
    gate=Gate(
        "SELECT 1 FROM provider_usage "
        "WHERE day > toDate({start:DateTime('UTC')}) AND day < toDate({end:DateTime('UTC')})"
    ),
)


@dataclass(frozen=True)
class Settings(DetectorSettings):
    # One day's report decides: page at once, and resolve when a better day (or import) arrives.
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    window: timedelta = timedelta(days=1)
    min_missing_share: float = 0.05
    critical_missing_share: float = 0.25
    max_price_drift: float = 0.02
    min_drift_usd: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.min_missing_share <= self.critical_missing_share < 1:
            raise ValueError("coverage_gap: need 0 < min_missing_share <= critical_missing_share < 1")
        if self.max_price_drift <= 0 or self.min_drift_usd < 0:
            raise ValueError("coverage_gap: max_price_drift must be positive, min_drift_usd not negative")


def _missing_shares(row: Any) -> list[tuple[float, str]]:
    """The share of what the provider counted that tokenpulse did not receive, per kind it counted
    (requests first: the plainest figure to check against the report)."""
    counted = [
        ("requests", row.provider_calls if row.has_calls else 0, row.calls),
        ("input tokens", row.provider_input, row.input_tokens),
        ("output tokens", row.provider_output, row.output_tokens),
    ]
    return [((theirs - ours) / theirs, what) for what, theirs, ours in counted if theirs > 0]


class CoverageGap:
    """Reads ``provider_usage`` and the rollup per day; see the module docstring."""

    name: ClassVar[str] = "coverage_gap"
    settings_type: ClassVar[type[Settings]] = Settings
    splits_tenants: ClassVar[bool] = False  # the provider's report covers every tenant

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    def queries(self) -> list[Query]:
        return [REPORTS]

    def lookback(self) -> timedelta:
        return timedelta(0)  # REPORTS is a recent query: it reads its own days

    def same_hour_margin(self) -> timedelta:
        return timedelta(0)

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        return self.assess(history, times)[0]

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        frame = history[REPORTS]
        if frame.empty or not times:
            return [], []
        frame = frame.fillna({"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        days = pd.to_datetime(frame["day"]).dt.date
        observations: list[Observation] = []
        coverage: dict[Scope, Coverage] = {}
        for moment in times:
            # A day is complete, and comparable, once it is over.
            known = frame[(days < moment.date()) & (days >= moment.date() - timedelta(days=REPORT_DAYS))]
            latest = known.sort_values("day").groupby(["provider", "model"], sort=True).tail(1)
            for row in latest.itertuples(index=False):
                scope = make_scope(provider=row.provider, model=row.model)
                observations.append(self._observe(scope, moment, row))
                day = pd.Timestamp(row.day).date()
                coverage[scope] = Coverage(self.name, scope, WATCHED, f"the provider's report of {day}")
        return observations, list(coverage.values())

    def _observe(self, scope: Scope, moment: datetime, row: Any) -> Observation:
        s = self.settings
        shares = _missing_shares(row)
        missing = max((share for share, _ in shares), default=0.0)
        day = pd.Timestamp(row.day).date()
        samples = int(row.provider_calls if row.has_calls else row.provider_input)
        if missing >= s.min_missing_share:
            severity = CRITICAL if missing >= s.critical_missing_share else WARNING
            what = ", ".join(
                f"{share:.1%} more {kind}" for share, kind in shares if share >= s.min_missing_share
            )
            summary = (
                f"{row.provider} counted {what} of {row.model} on {day} than tokenpulse received "
                f"({format_scope(scope)}): an uninstrumented service, a broken exporter or a sampler?"
            )
            return Observation(
                self.name, scope, moment, severity, missing, s.min_missing_share, 0.0, samples, summary
            )
        if row.has_cost and row.provider_cost > 0:
            off = row.cost_usd - row.provider_cost
            drift = abs(off) / row.provider_cost
            if drift >= s.max_price_drift and abs(off) >= s.min_drift_usd:
                direction = "above" if off > 0 else "below"
                summary = (
                    f"tokenpulse's dollars for {row.model} on {day} are {drift:.1%} {direction} "
                    f"{row.provider}'s bill (${row.cost_usd:.2f} vs ${row.provider_cost:.2f}) with the "
                    "same tokens: a price change or a tier tokenpulse does not price?"
                )
                return Observation(
                    self.name, scope, moment, WARNING, drift, s.max_price_drift, 0.0, samples, summary
                )
        summary = f"{row.provider}'s report of {day} matches what tokenpulse received for {row.model}"
        return Observation(
            self.name, scope, moment, None, missing, s.min_missing_share, 0.0, samples, summary
        )


DETECTOR = CoverageGap
