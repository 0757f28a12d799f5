"""cost_spike: a scope's spend rate jumps far above its usual level, or a configured budget burns too fast.

Two rules come out of this one detector, one alert per scope (when both hold for the same scope at the
same minute, the more severe observation is kept; on a tie the budget's, whose summary names the budget):

1. **Relative spike**, on the evidence model of ``evidence.MeanDetector``:

   - per service, service+route and service+model (from the rollup): the *cost per call* rises clearly
     past 2x, 5x or 10x its own usual level (a switch to a pricier model, prompts that grew, a reasoning
     budget left open). A surge of ordinary traffic multiplies spend exactly as it multiplies calls and
     leaves the cost per call flat, so launches, campaigns and Monday mornings stay quiet by
     construction: what a surge costs is the budgets' job (below). So is a shift between routes: a
     service's or a model's usual level is what the routes its calls go to now usually cost per call
     (a model that takes over a heavier route costs more per call, as it should).
   - per service+user (from the raw ``calls`` table; the rollup leaves the user out on purpose): the
     user's *spend per active minute* rises clearly past 3x, 10x or 30x their own usual level (what they
     spend in a minute they make calls) beyond what the rest of their service explains:
     the usual level is scaled by how much more the service's other users spend than usual right now,
     so a service-wide surge moves no one user. The classic incident is one user's agent stuck in a
     loop, spending 20x. The same rises are also tested on the user's *cost per call*, given the calls
     each minute holds (a mixture of both): a minute's spend varies with its calls, a call's price does
     not, so dearer calls (a pricier model, a context that grows) show sooner per call. The level is
     reached when the spend since the spike began is 3x what as many active minutes, or as many calls,
     usually cost.

   Business floors: a spike pages only once its spend since it began reaches ``min_usd_per_hour``
   ($1/h; ``user_min_usd_per_hour``, $3/h, for a user), and then stays paged while its alarm is on (a
   spend hovering at the floor pages once). Critical: that spend rate is ``critical_ratio``
   (10x) the scope's usual spend rate. A spike must last ``min_duration`` (10 min: a heavy session runs
   at 3-6x for several minutes, a runaway loop does not stop; and a spike that is the symptom of a cache
   collapse or an escalating router is held back by that alert, which has paged by then). A scope whose
   baseline has fewer than 30 calls (a new model snapshot after a deploy) is learning: never paged by
   this rule. A user seen too little at this time of day before (fewer than 30 calls in those hours) is
   watched on their cost per call alone, against their trailing day (allowed to run 25% higher at some
   hours, as every mean's trailing day): how much they spend a minute follows how many calls they make
   in it, which follows the time of day; what a call costs does not. Users are unbounded, so only those
   whose spend over some ``window`` of the range reaches the floor, and those with a budget, are
   read (``users_query``).

2. **Budgets** (``budgets``: ``{scope = {service = "...", route|model|user = "..."}, hourly_usd,
   daily_usd}``), multi-window burn rate: the spend over a slow and a fast window, each extrapolated to
   the budget's period, must both reach ``budget_warning_fraction`` of the budget (warning) or all of it
   (critical). The slow window makes it significant, the fast one makes it current (and resolves the
   alert soon after the burn stops). Defaults: daily budgets 6 h / 1 h, hourly budgets 15 / 5 minutes.
   This is a projection of the current burn rate, not calendar-day accounting of what was already spent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tokenpulse.detectors import stats, windows
from tokenpulse.detectors.base import (
    CRITICAL,
    SCOPE_DIMENSIONS,
    WARNING,
    Coverage,
    Observation,
    Scope,
    format_scope,
    scope_dict,
)
from tokenpulse.detectors.data import at_times, grid_timeline, grids, minutes, to_observations, trailing_sum
from tokenpulse.detectors.evidence import (
    BASELINE_LAG,
    SCAN,
    Assessment,
    MeanDetector,
    MeanScan,
    MeanSettings,
    Run,
    Signal,
)
from tokenpulse.detectors.history import (
    BASELINE_DAYS,
    DETECTOR_DIMENSIONS,
    ENDED_MINUTE,
    LONGEST_CALL,
    ROLLUP,
    TENANT,
    Gate,
    History,
    Query,
    sql_string,
    tenant_histories,
)

ROLLUP_LEVELS = (("service",), ("service", "route"), ("service", "model"))
USER_DIMS = ("service", "user")
COLUMNS = ("calls", "cost_usd")
_TOKENS = ("input_tokens", "output_tokens")
BUDGET_DIMENSIONS = ("route", "model", "user")  # besides the service, at most one of these
# How long the service's other users' spend is averaged over to say how much more than usual they spend.
_OTHERS_MINUTES = 15
_LAG = int(BASELINE_LAG.total_seconds() // 60)


@dataclass(frozen=True)
class Budget:
    scope: Scope  # canonical order: service first
    hourly_usd: float | None = None
    daily_usd: float | None = None


@dataclass(frozen=True)
class Settings(MeanSettings):
    rises: tuple[float, ...] = (2.0, 5.0, 10.0)  # cost per call of a service, route or model
    user_rises: tuple[float, ...] = (3.0, 10.0, 30.0)  # a user's spend per minute, beyond the service's
    critical_ratio: float = 10.0  # the spend rate since the spike began against the usual spend rate
    # Spend is about minutes, not seconds: a spike must last this long (a heavy session runs 3-6x a user's
    # usual for minutes, a runaway does not stop), and the cause a spike is a symptom of (a cache
    # collapse, an escalating router) has paged by then and holds it back.
    min_duration: timedelta = timedelta(minutes=10)
    min_usd_per_hour: float = 1.0
    # Users are bursty and many: a user must also spend real money to page.
    user_min_usd_per_hour: float = 3.0
    budgets: tuple[Budget, ...] = ()  # also accepts mappings, as read from the config file
    budget_warning_fraction: float = 0.8
    hourly_fast_window: timedelta = timedelta(minutes=5)
    hourly_slow_window: timedelta = timedelta(minutes=15)
    daily_fast_window: timedelta = timedelta(hours=1)
    daily_slow_window: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "user_rises", tuple(float(r) for r in self.user_rises))
        if not self.user_rises or min(self.user_rises) <= 1:
            raise ValueError("user_rises must be above 1")
        object.__setattr__(self, "budgets", tuple(parse_budget(b) for b in self.budgets))


def parse_budget(value: Budget | Mapping[str, Any]) -> Budget:
    """A budget from its config table: ``{scope = {service = "a", user = "u"}, daily_usd = 50}``."""
    if isinstance(value, Budget):
        return value
    unknown = set(value) - {"scope", "hourly_usd", "daily_usd"}
    if unknown:
        raise ValueError(f"unknown budget keys {sorted(unknown)}; known: daily_usd, hourly_usd, scope")
    scope = dict(value.get("scope") or {})
    others = [d for d in scope if d != "service"]
    if "service" not in scope or len(others) > 1 or (others and others[0] not in BUDGET_DIMENSIONS):
        raise ValueError(
            f"budget scope {scope!r}: give a service and at most one of {', '.join(BUDGET_DIMENSIONS)}"
        )
    hourly, daily = value.get("hourly_usd"), value.get("daily_usd")
    if hourly is None and daily is None:
        raise ValueError(f"budget for {scope!r}: give hourly_usd and/or daily_usd")
    canonical = tuple((d, str(scope[d])) for d in SCOPE_DIMENSIONS if d in scope)
    return Budget(
        canonical, None if hourly is None else float(hourly), None if daily is None else float(daily)
    )


def users_query(
    min_usd: float, budget_users: Sequence[tuple[str, str]], paging_usd: float | None = None
) -> Query:
    """Per-minute calls and spend by service and user, for the users who could matter: those who spend at
    least ``min_usd`` over the range read (the range now, or the same hours of a previous day, which is
    what a user's baseline rests on), and ``budget_users``.

    A call counts in the minute it ended, like in the rollup (``data.ENDED_MINUTE``): a user's spend and
    their service's line up minute for minute. Calls that started up to an hour before the range and
    ended in it are in.

    Without budget users, only users who spent ``paging_usd`` over the scan can page (``_could_page``
    drops everyone else's rows): where nobody did, the query is not run (``history.Gate``: a scan of the
    calls that ended in it, not two of every range read).
    """
    named = "".join(f" OR (service = {sql_string(s)} AND user = {sql_string(u)})" for s, u in budget_users)
    in_range = (
        "time >= {start:DateTime('UTC')} - INTERVAL 1 HOUR AND time < {end:DateTime('UTC')} AND user != ''"
    )
    candidates = (
        f"SELECT tenant, service, user FROM calls WHERE {in_range} GROUP BY tenant, service, user "
        f"HAVING sum(cost_usd) >= {float(min_usd)!r}{named}"
    )
    sql = (
        f"SELECT toDateTime({ENDED_MINUTE}) AS minute, tenant, service, user, count() AS calls,"
        " toFloat64(sum(cost_usd)) AS cost_usd"
        f" FROM calls WHERE {in_range} AND (tenant, service, user) IN ({candidates})"
        " GROUP BY minute, tenant, service, user"
        " HAVING minute >= {start:DateTime('UTC')} AND minute < {end:DateTime('UTC')}"
    )
    name = f"calls:service, user:{hashlib.sha256(sql.encode()).hexdigest()[:12]}"
    if budget_users or paging_usd is None:
        return Query(name, sql)
    # Whoever _could_page keeps spent at least ``paging_usd`` in rows of calls that ended in the scan,
    # read from a range's start: this sums a superset of those calls (never a negative cost), in exact
    # decimals, against a hair less than the floor (the rows' spend is summed as floats).
    gate = (
        f"SELECT tenant, service, user FROM calls WHERE time >= {{start:DateTime('UTC')}} - {LONGEST_CALL}"
        f" AND time < {{end:DateTime('UTC')}} AND user != ''"
        f" AND {ENDED_MINUTE} >= {{scan_start:DateTime('UTC')}} GROUP BY tenant, service, user"
        f" HAVING sum(greatest(cost_usd, 0)) >= {float(paging_usd) * (1 - 1e-9)!r}"
    )
    return Query(name, sql, gate=Gate(gate, SCAN))


class CostSpike(MeanDetector):
    name: ClassVar[str] = "cost_spike"
    settings_type: ClassVar[type[Settings]] = Settings
    numerator: ClassVar[str] = "cost_usd"
    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        window = minutes(s.window)
        budget_users = [(dict(b.scope)["service"], dict(b.scope)["user"]) for b in s.budgets
                        if "user" in dict(b.scope)]  # fmt: skip
        # A user who spends less than ``window`` minutes at the floor over a range read has too little
        # spend to page now or to be part of anyone's baseline.
        paging = s.user_min_usd_per_hour * minutes(s.min_duration) / 60  # as _could_page needs
        self.users = users_query(s.user_min_usd_per_hour * window / 60, budget_users, paging)

    def queries(self) -> list[Query]:
        return [ROLLUP, self.users]

    def lookback(self) -> timedelta:
        # the trailing day of the baselines, or the slowest budget window if longer
        return max(super().lookback(), self.settings.daily_slow_window + self.settings.window)

    def signals(self) -> list[Signal]:
        # an empty route, model or user is the service again: watched there
        return [
            *(Signal(ROLLUP, dims, _named(dims[-1]) if len(dims) > 1 else None) for dims in ROLLUP_LEVELS),
            Signal(self.users, USER_DIMS),
        ]

    def _evaluate(
        self, frame: pd.DataFrame, dims: Sequence[str], history: History, times: Sequence[datetime]
    ) -> Assessment:
        if "user" in dims and not frame.empty:
            frame = frame[_could_page(frame, times, self.settings)]
        return super()._evaluate(frame, dims, history, times)

    def rises(self, dims: Sequence[str]) -> tuple[float, ...]:
        return tuple(sorted(self.settings.user_rises if "user" in dims else self.settings.rises))

    def draws(self, grids: dict[str, np.ndarray], dims: Sequence[str]) -> np.ndarray:
        # A user's spend is per active minute (minutes with calls): users come and go, so a quiet minute
        # says they left, not that the loop stopped (no traffic is no evidence), and a user who comes by a
        # few times an hour is compared with what they spend when they do.
        return (grids["calls"] > 0).astype(float) if "user" in dims else grids["calls"]

    def per_call_too(self, dims: Sequence[str]) -> bool:
        # A user's spend rises with more calls (a loop) or dearer ones (a pricier model, a context that
        # grows): the second shows sooner per call, the calls a minute holds no longer adding their noise.
        return "user" in dims

    def null_scale(self, scan: MeanScan) -> np.ndarray | float:
        """For users: how many times their usual spend the service's other users spend now (at least 1).
        For a service and a service's model: how many times their usual cost per call the routes their
        calls went to now usually cost (a route's own cost is its own scope's)."""
        if "user" in scan.dims:
            return self._others_scale(scan)
        if "route" in scan.dims:
            return 1.0
        return self._route_mix(scan)

    def _route_mix(self, scan: MeanScan) -> np.ndarray | float:
        """The usual cost per call of each route, weighed by the scope's calls to it now, against the
        scope's usual cost per call (per scan row and scope; at least 1): a model that starts serving a
        heavier route costs more per call, and that is no spike of the model's (nor of the service's:
        more calls to a pricier route is traffic, like a surge, the budgets' job). A route the model
        never served costs what its tokens per call (on any model) cost at the model's usual price per
        token."""
        history, rows, scopes = scan.history, scan.rows, scan.scopes
        # The route among the scope's dimensions in the rollup's order: the grids other detectors laid
        # out at these dimensions (service, route, model) serve. The sums below are per column but
        # ``by_scope``'s, which adds a scope's routes in the order of the routes either way.
        wanted = {*scan.dims, "route"}
        canonical = wanted <= set(DETECTOR_DIMENSIONS)
        dims = tuple(d for d in DETECTOR_DIMENSIONS if d in wanted) if canonical else (*scan.dims, "route")
        by_route, routes = self._grids(scan.frame, dims, COLUMNS, history)
        if not routes:
            return 1.0
        (base_calls, base_cost), _, _ = windows.baseline_sums(
            (by_route["calls"], by_route["cost_usd"]), rows, lag=_LAG, days=BASELINE_DAYS,
            enough=self.settings.learning_calls, timeline=grid_timeline(history),
        )  # fmt: skip
        known = base_calls > 0
        usual = np.where(known, base_cost / np.where(known, base_calls, 1.0), 0.0)
        parent = _parents(routes, scopes, "route")
        inside = parent >= 0

        def by_scope(values: np.ndarray) -> np.ndarray:
            out = np.zeros((len(rows), len(scopes)))
            np.add.at(out.T, parent[inside], values[:, inside].T)
            return out

        calls_now = by_route["calls"][rows]
        if "model" in scan.dims and (~known & (calls_now > 0)).any():
            # Only where a model serves a route it never served: its tokens are read for that.
            tokens, _ = self._grids(scan.frame, dims, _TOKENS, history)
            (_, base_tokens), _, _ = windows.baseline_sums(
                (by_route["calls"], tokens["input_tokens"] + tokens["output_tokens"]), rows, lag=_LAG,
                days=BASELINE_DAYS, enough=self.settings.learning_calls, timeline=grid_timeline(history),
            )  # fmt: skip
            usual, known = self._new_routes(history, routes, rows, usual, known, by_scope(base_cost),
                                            by_scope(base_tokens), parent)  # fmt: skip
        calls_now = calls_now * known
        counted = by_scope(calls_now)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = by_scope(calls_now * usual) / counted / scan.usual
        valid = (counted > 0) & (scan.usual > 0) & np.isfinite(factor)
        return np.where(valid, np.maximum(factor, 1.0), 1.0)

    def _new_routes(
        self,
        history: History,
        routes: list[Scope],
        rows: np.ndarray,
        usual: np.ndarray,
        known: np.ndarray,
        model_cost: np.ndarray,
        model_tokens: np.ndarray,
        parent: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``usual`` cost per call of each (model, route) with, where it has no baseline, the route's usual
        tokens per call on any model at the model's usual cost per token (``model_cost`` / ``model_tokens``
        over the routes it served, per scan row and model scope), and where that is known."""
        on_any, route_scopes = self._grids(
            history[ROLLUP], ("service", "route"), (*_TOKENS, "calls"), history
        )
        if not route_scopes:
            return usual, known
        (route_tokens, route_calls), _, _ = windows.baseline_sums(
            (on_any["input_tokens"] + on_any["output_tokens"], on_any["calls"]), rows, lag=_LAG,
            days=BASELINE_DAYS, enough=self.settings.learning_calls, timeline=grid_timeline(history),
        )  # fmt: skip
        route_of = _parents(routes, route_scopes, "model")
        with np.errstate(divide="ignore", invalid="ignore"):
            per_call = route_tokens / route_calls
            per_token = model_cost / model_tokens
            estimate = per_call[:, np.maximum(route_of, 0)] * per_token[:, np.maximum(parent, 0)]
        estimable = ~known & (route_of >= 0) & (parent >= 0) & np.isfinite(estimate) & (estimate > 0)
        return np.where(estimable, estimate, usual), known | estimable

    def _others_scale(self, scan: MeanScan) -> np.ndarray | float:
        """How many times their usual spend a user's service's other users spend now (at least 1)."""
        history, scopes, total, rows = scan.history, scan.scopes, scan.total, scan.rows
        service_grids, services = self._grids(history[ROLLUP], ("service",), ("cost_usd",), history)
        if not services:
            return 1.0
        columns = _parents(scopes, services, "user")
        spend = np.where(columns >= 0, service_grids["cost_usd"][:, np.maximum(columns, 0)], 0.0)
        others = np.maximum(spend - total, 0.0)
        cumulative = stats.cumulative(others)
        now = (
            stats.window_sums(cumulative, rows[:, None] + 1, rows[:, None] + 1 - _OTHERS_MINUTES)
            / _OTHERS_MINUTES
        )
        # Minutes the service had traffic: a minute outside the history read (before the store began, the
        # days between the same hours read) is no minute of usual spend.
        (usual_spend, usual_minutes), _, _ = windows.baseline_sums(
            (others, (spend > 0).astype(float)), rows, lag=_LAG, days=BASELINE_DAYS, enough=stats.SAME_HOURS,
            weight_index=1, timeline=grid_timeline(history),
        )  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(usual_spend > 0, now / (usual_spend / usual_minutes), 1.0)
        return np.clip(np.nan_to_num(factor, nan=1.0), 1.0, None)

    def same_hour_only(self, dims: Sequence[str]) -> bool:
        # A user's spend per active minute follows how many calls they make in it, which follows the time
        # of day: it is watched once they have been seen at this time of day before (their cost per call,
        # before that too: a thin user may make fewer than 30 calls in those hours).
        return "user" in dims

    def floors(
        self, total: np.ndarray, draws: np.ndarray, dims: Sequence[str]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        # Spend per hour since the spike began (every minute counts, with calls or not).
        s = self.settings
        floor = s.user_min_usd_per_hour if "user" in dims else s.min_usd_per_hour
        return [(total, np.ones_like(total), np.full(total.shape[0], floor / 60))]

    def critical(self, lower: np.ndarray, run: Run, usual: np.ndarray) -> np.ndarray:
        return _per_hour(run) >= self.settings.critical_ratio * run.usual_rate * 60

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        if "user" in scope_dict(scope):
            return (
                f"spend ${value * 60:,.2f}/h since the spike began (usually ${usual * 60:,.2f}/h; evidence "
                f"past ${threshold * 60:,.2f}/h) for {format_scope(scope)}"
            )
        return (
            f"cost per call ${value:,.4f} since the spike began (usually ${usual:,.4f}; evidence past "
            f"${threshold:,.4f}) for {format_scope(scope)}"
        )

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        observations, coverage = super().assess(history, times)
        budgeted = tenant_histories(history) if self.settings.budgets else {}  # the split copies frames
        for tenant, tenant_history in budgeted.items():
            for observation in self._tenant_budgets(tenant_history, times):
                if tenant:
                    observation = replace(observation, scope=((TENANT, tenant), *observation.scope))
                observations.append(observation)
        return _most_severe(observations), coverage

    def _tenant_budgets(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        if not self.settings.budgets:
            return []
        per_minute = {}
        for dims in {tuple(d for d, _ in b.scope) for b in self.settings.budgets}:
            frame = history[self.users] if dims == USER_DIMS else history[ROLLUP]
            per_minute[dims] = grids(frame, dims, COLUMNS, history.start, history.end)
        return self._budgets(per_minute, times)

    def _budgets(
        self, per_minute: dict[tuple[str, ...], dict[str, pd.DataFrame]], times
    ) -> list[Observation]:
        s = self.settings
        observations: list[Observation] = []
        for budget in s.budgets:
            level = per_minute[tuple(d for d, _ in budget.scope)]
            mask = np.array([column == budget.scope for column in level["cost_usd"].columns], dtype=bool)
            if not mask.any():
                continue  # no spend at all for this scope in the range
            usd, calls = level["cost_usd"].loc[:, mask], level["calls"].loc[:, mask]
            periods = (
                ("hourly", 60, budget.hourly_usd, s.hourly_fast_window, s.hourly_slow_window),
                ("daily", 1440, budget.daily_usd, s.daily_fast_window, s.daily_slow_window),
            )
            for label, period, amount, fast, slow in periods:
                if amount is None:
                    continue
                fast_m, slow_m = minutes(fast), minutes(slow)
                projected = np.minimum(
                    at_times(trailing_sum(usd, fast_m), times) * (period / fast_m),
                    at_times(trailing_sum(usd, slow_m), times) * (period / slow_m),
                )
                warning_at = s.budget_warning_fraction * amount
                observations += to_observations(
                    self.name, times, projected, at_times(trailing_sum(calls, slow_m), times),
                    warning=projected >= warning_at,
                    critical=projected >= amount,
                    warning_threshold=warning_at,
                    critical_threshold=amount,
                    baseline=None,
                    describe=partial(_describe_budget, label, amount),
                )  # fmt: skip
        return observations


def _could_page(frame: pd.DataFrame, times: Sequence[datetime], settings: Settings) -> pd.Series:
    """The rows of the users who could page at ``times``: those who spent at the floor for the floor's
    minutes within the scan before them (every user's history costs a grid of every minute read)."""
    scan = frame["minute"] >= pd.Timestamp(times[0]) - SCAN
    needed = settings.user_min_usd_per_hour * minutes(settings.min_duration) / 60
    key = [d for d in (TENANT, "service", "user") if d in frame]
    spent = frame[scan].groupby(key, observed=True)["cost_usd"].sum()
    keys = pd.MultiIndex.from_frame(frame[key])
    return pd.Series(keys.isin(spent[spent >= needed].index), index=frame.index)


def _parents(scopes: list[Scope], parents: list[Scope], without: str) -> np.ndarray:
    """Each scope's index in ``parents`` once its ``without`` dimension is left out (-1: none)."""
    index = {scope: i for i, scope in enumerate(parents)}
    return np.array(
        [index.get(tuple(p for p in scope if p[0] != without), -1) for scope in scopes], dtype=np.int64
    )


def _per_hour(run: Run) -> np.ndarray:
    """The spend rate since each alarm's evidence began, in $/h."""
    return run.total * 60 / np.maximum(run.minutes, 1)


def _named(dimension: str) -> Callable[[pd.DataFrame], pd.Series]:
    """Rows whose ``dimension`` is set (calls without a route or model are their service's)."""

    def named(frame: pd.DataFrame) -> pd.Series:
        column = frame[dimension]
        if isinstance(column.dtype, pd.CategoricalDtype):
            # Compared on the categories (the live cycle's text columns, ``HistoryCache``): the same
            # answer as on the text, without writing every row of a week of rollup out as a string.
            return column != ""
        return column.astype(str) != ""

    return named


_RANK = {WARNING: 1, CRITICAL: 2}


def _most_severe(observations: list[Observation]) -> list[Observation]:
    """One observation per (time, scope): the most severe, the later one on a tie (budgets come last)."""
    chosen: dict[tuple[datetime, Scope], Observation] = {}
    for observation in observations:
        key = (observation.at, observation.scope)
        current = chosen.get(key)
        if current is None or _rank(observation) >= _rank(current):
            chosen[key] = observation
    return list(chosen.values())


def _rank(observation: Observation) -> int:
    return _RANK.get(observation.severity or "", 0)


def _describe_budget(label: str, amount: float, scope: Scope, value: float, threshold: float, _: None) -> str:
    return (
        f"projected {label} spend ${value:,.2f} at the current burn rate (threshold ${threshold:,.2f}, "
        f"{label} budget ${amount:,.2f}) for {format_scope(scope)}"
    )


DETECTOR = CostSpike
