"""quality_drop: the answers of a scope (service + route (+ model) + evaluation name) pass their evaluations
clearly less often than usual — and, where the same scope's calls got cheaper, the alert says both.

Evaluations are the ``gen_ai.evaluation.result`` events apps send (an LLM judge, user feedback, a task
check; ``collector.evaluations``). An evaluation is judged when it carries a verdict: a pass/fail label
(``PASS_LABELS`` / ``FAIL_LABELS``), else a score in [0, 1], which passes at ``PASS_SCORE`` or above.
Scores on other scales and evaluations that themselves failed (``error.type``) are not judged.

The evidence model is ``evidence.ShareDetector``'s on the share of failed evaluations — "fewer passes"
— against the scope's own usual share: evaluations are sampled and thin, and the evidence weighs each
minute's few verdicts for "the odds of a failure grew 1.5x, 3x, 8x or 25x". A judge that passes 91%
of answers and now passes 74% (odds of a failure x3.5) pages after some tens of verdicts. A scope
with fewer than 30 verdicts of history is learning and not watched: a new judge prompt's scale tells
nothing about the route yet. Critical: half of the answers fail, with confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import ClassVar

import pandas as pd

from tokenpulse.detectors.base import Coverage, Observation, Scope, format_scope, scope_dict
from tokenpulse.detectors.evidence import ShareDetector, ShareSettings, Signal
from tokenpulse.detectors.history import ROLLUP, TENANT, History, Query

# A score in [0, 1] without a label passes at this level (the midpoint: a judge's "more right than wrong").
PASS_SCORE = 0.5
DIMENSIONS = ("service", "route", "model", "evaluation")
# Evaluations are sampled: the raw table is small enough to read, and the verdict needs each score.
EVALUATIONS = Query(
    "evaluations:verdicts",
    f"SELECT toStartOfMinute(time) AS minute, {TENANT}, {', '.join(DIMENSIONS)}, "
    f"countIf(passed IS NOT NULL OR (score >= 0 AND score <= 1)) AS judged, "
    f"countIf(passed = false OR (passed IS NULL AND score >= 0 AND score < {PASS_SCORE})) AS failures "
    "FROM evaluations WHERE time >= {start:DateTime('UTC')} AND time < {end:DateTime('UTC')} "
    "AND error_type = '' GROUP BY ALL",
    per="minute",
)
# The cost of the same route's calls is compared over this last stretch against the day before it.
COST_WINDOW = timedelta(hours=1)
COST_BASELINE = timedelta(hours=24)
# A cost change smaller than this is not worth naming beside the quality drop.
COST_CHANGE = 0.10


@dataclass(frozen=True)
class Settings(ShareSettings):
    # The route, not its model, by default: a router that moves a route to a cheaper model makes the
    # cheap model's scope new (learning), while the route's own pass rate shows the drop. Add "model" to
    # watch each model of a route on its own.
    scope: tuple[str, ...] = ("service", "route", "evaluation")
    prior_share: float | None = None  # a scope without history is learning, not held to a default
    critical_share: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = set(self.scope) - set(DIMENSIONS)
        if unknown or "evaluation" not in self.scope:
            raise ValueError(f"quality_drop scope must include evaluation, of {', '.join(DIMENSIONS)}")
        object.__setattr__(self, "scope", tuple(self.scope))


class QualityDrop(ShareDetector):
    name: ClassVar[str] = "quality_drop"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings
    part: ClassVar[str] = "failures"
    total: ClassVar[str] = "judged"

    def signals(self) -> list[Signal]:
        return [Signal(EVALUATIONS, self.settings.scope)]

    def queries(self) -> list[Query]:
        return [EVALUATIONS, ROLLUP]  # the rollup: the cost of the calls the evaluations judged

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        evaluation = scope_dict(scope).get("evaluation", "")
        return (
            f"{evaluation} pass rate {1 - usual:.0%} -> {1 - value:.0%} since the drop began (evidence "
            f"past {1 - threshold:.0%}) for {format_scope(scope)}"
        )

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        observations, coverage = super().assess(history, times)
        costs = history.frames.get(ROLLUP.name)
        if costs is None or costs.empty:
            return observations, coverage
        return [self._with_cost(o, costs) if o.active else o for o in observations], coverage

    def _with_cost(self, observation: Observation, costs: pd.DataFrame) -> Observation:
        """The observation, its summary saying how the cost per call of the same route (and model) moved
        over the last hour against the day before — the trade a cheaper path made, when it made one."""
        change = cost_per_call_change(costs, scope_dict(observation.scope), observation.at)
        if change is None or abs(change) < COST_CHANGE:
            return observation
        return replace(observation, summary=f"cost per call {change:+.0%}, {observation.summary}")


def cost_per_call_change(costs: pd.DataFrame, scope: dict[str, str], at: datetime) -> float | None:
    """The relative change of the cost per call of ``scope``'s calls (its service, route, model and
    tenant) over the hour before ``at`` against the day before that; None without calls in either."""
    rows = costs
    for key in (TENANT, "service", "route", "model"):
        if key in scope and key in rows:
            rows = rows[rows[key] == scope[key]]
    end = pd.Timestamp(at)
    recent = rows[(rows["minute"] > end - COST_WINDOW) & (rows["minute"] <= end)]
    before = rows[
        (rows["minute"] > end - COST_WINDOW - COST_BASELINE) & (rows["minute"] <= end - COST_WINDOW)
    ]
    now, usual = _per_call(recent), _per_call(before)
    if now is None or not usual:
        return None
    return now / usual - 1


def _per_call(rows: pd.DataFrame) -> float | None:
    calls = float(rows["calls"].sum())
    cost = float(rows["cost_usd"].sum())
    return cost / calls if calls and math.isfinite(cost) else None


DETECTOR = QualityDrop
