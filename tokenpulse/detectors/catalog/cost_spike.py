"""cost_spike: a scope's spend rate jumps far above its usual level, or a configured budget burns too fast.

Two rules come out of this one detector, one alert per scope (when both hold for the same scope at the
same minute, the more severe observation is kept; on a tie the budget's, whose summary names the budget):

1. **Relative spike**, per service, service+route, service+model (from the rollup) and service+user (from
   the raw ``calls`` table; the rollup leaves the user out on purpose). The spend rate over the window
   ($/h) is at least ``warning_ratio`` (``critical_ratio``) times the scope's baseline rate and at least
   ``min_usd_per_hour``, *and the extra spend is not ordinary traffic* (below). The classic incident is
   one user's agent stuck in a loop, spending 20x.

   Why the traffic guard: a surge of ordinary traffic multiplies spend exactly as it multiplies calls,
   so comparing spend alone with its baseline would page on every launch, campaign or Monday morning —
   the "traffic surge with flat per-call metrics" that must stay quiet. So the relative rule also
   requires that the spend outgrew the traffic: the scope's per-call cost, or (for a route, model or
   user) its share of its service's spend, is at least ``unexplained_ratio`` times its own baseline.
   A runaway user is a surge of *that user's* traffic only: their share of the service's spend jumps
   (2% -> 27% for a 20x loop), so it alerts. A service-wide surge leaves every per-call cost and every
   share flat, so it does not. What a surge of ordinary traffic costs is the budgets' job: they are
   absolute and alert on spend however it arose. The limit of the guard: a scope that is (nearly) all
   of its service's traffic — a one-user batch service — cannot be told from a surge; budgets cover it.

   Baselines (``data.baseline``) are taken over the minutes the scope was active (calls in the window),
   so a user who comes by a few times an hour has a baseline of what they spend when they do, not a
   median of idle zeros; a scope never active before (a new user, a new model snapshot after a deploy)
   has no baseline and never fires the relative rule.

   Users are unbounded and grids are minute x scope, so only scopes that can fire are computed: those
   whose window reaches ``min_calls`` and the floor at some evaluation time, and those with a budget.
   The user query already leaves out users whose spend never reaches the floor in its range.

2. **Budgets** (``budgets``: ``{scope = {service = "...", route|model|user = "..."}, hourly_usd,
   daily_usd}``), multi-window burn rate: the spend over a slow and a fast window, each extrapolated to
   the budget's period, must both reach ``budget_warning_fraction`` of the budget (warning) or all of it
   (critical). The slow window makes it significant, the fast one makes it current (and resolves the
   alert soon after the burn stops). Defaults: daily budgets 6 h / 1 h, hourly budgets 15 / 5 minutes.
   This is a projection of the current burn rate, not calendar-day accounting of what was already spent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tokenpulse.detectors.base import (
    CRITICAL,
    SCOPE_DIMENSIONS,
    WARNING,
    Observation,
    Scope,
    format_scope,
)
from tokenpulse.detectors.data import (
    CatalogDetector,
    HeldSettings,
    at_times,
    baseline,
    grids,
    kth_largest,
    lowest_over,
    minutes,
    to_observations,
    trailing_sum,
)
from tokenpulse.detectors.history import ENDED_MINUTE, ROLLUP, History, Query, sql_string

DIMENSIONS = ("service", "route", "model")
ROLLUP_LEVELS = (("service",), ("service", "route"), ("service", "model"))
USER_DIMS = ("service", "user")
LEVELS = (*ROLLUP_LEVELS, USER_DIMS)
COLUMNS = ("calls", "cost_usd")
BUDGET_DIMENSIONS = ("route", "model", "user")  # besides the service, at most one of these


@dataclass(frozen=True)
class Budget:
    scope: Scope  # canonical order: service first
    hourly_usd: float | None = None
    daily_usd: float | None = None


@dataclass(frozen=True)
class Settings(HeldSettings):
    window: timedelta = timedelta(minutes=5)
    # Each severity holds its own way (``for_`` is 0): a critical spike (>= critical_ratio) must have been
    # past its threshold in ``sustained`` of the window's minutes — all five: a heavy user's busiest
    # session can reach 10x for four — so a runaway pages 5 minutes after it starts while a 4-minute
    # spike, however tall, never does. A warning (>= warning_ratio) must have held over every window of
    # the last ``warning_for``: ordinary sessions run at 3-6x for several minutes, a runaway does not stop.
    sustained: timedelta = timedelta(minutes=5)
    warning_for: timedelta = timedelta(minutes=15)
    min_calls: int = 10  # the floor in dollars is the main guard; a runaway makes calls quickly
    warning_ratio: float = 3.0
    critical_ratio: float = 10.0
    unexplained_ratio: float = 2.0  # per-call cost or share of the service's spend vs its baseline
    min_usd_per_hour: float = 1.0
    # Users are bursty: an ordinary heavy user's session is many times their usual rate for a few
    # minutes. A runaway loop is the same rate kept up, so a user must also spend real money to page.
    user_min_usd_per_hour: float = 3.0
    budgets: tuple[Budget, ...] = ()  # also accepts mappings, as read from the config file
    budget_warning_fraction: float = 0.8
    hourly_fast_window: timedelta = timedelta(minutes=5)
    hourly_slow_window: timedelta = timedelta(minutes=15)
    daily_fast_window: timedelta = timedelta(hours=1)
    daily_slow_window: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        super().__post_init__()
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


def users_query(window_minutes: int, min_window_usd: float, budget_users: Sequence[tuple[str, str]]) -> Query:
    """Per-minute calls and spend by service and user, for the users who could matter: those whose spend
    over some ``window_minutes`` of the range reaches ``min_window_usd``, and ``budget_users``.

    A call counts in the minute it ended, like in the rollup (``data.ENDED_MINUTE``): a user's spend and
    their service's line up minute for minute. Calls that started up to an hour before the range and
    ended in it are in.
    """
    named = "".join(f" OR (service = {sql_string(s)} AND user = {sql_string(u)})" for s, u in budget_users)
    in_range = (
        "time >= {start:DateTime('UTC')} - INTERVAL 1 HOUR AND time < {end:DateTime('UTC')} AND user != ''"
    )
    # A user's spend over any window is at most their spend over the whole range: users below the floor
    # over the range are left out before the (costly) window functions. At 10M calls, 3x faster.
    candidates = (
        f"SELECT tenant, service, user FROM calls WHERE {in_range} GROUP BY tenant, service, user "
        f"HAVING sum(cost_usd) >= {min_window_usd!r}{named}"
    )
    sql = (
        "SELECT minute, tenant, service, user, calls, cost_usd FROM ("
        " SELECT minute, tenant, service, user, calls, cost_usd,"
        "  max(window_usd) OVER (PARTITION BY tenant, service, user) AS peak"
        " FROM ("
        "  SELECT minute, tenant, service, user, calls, cost_usd,"
        "   sum(cost_usd) OVER (PARTITION BY tenant, service, user ORDER BY minute"
        f"   RANGE BETWEEN {(window_minutes - 1) * 60} PRECEDING AND CURRENT ROW) AS window_usd"
        "  FROM ("
        f"   SELECT toDateTime({ENDED_MINUTE}) AS minute, tenant, service, user, count() AS calls,"
        "    toFloat64(sum(cost_usd)) AS cost_usd"
        f"   FROM calls WHERE {in_range} AND (tenant, service, user) IN ({candidates})"
        "   GROUP BY minute, tenant, service, user"
        "   HAVING minute >= {start:DateTime('UTC')} AND minute < {end:DateTime('UTC')})))"
        f" WHERE peak >= {min_window_usd!r}{named}"
    )
    return Query(f"calls:service, user:{hashlib.sha256(sql.encode()).hexdigest()[:12]}", sql)


class CostSpike(CatalogDetector):
    name: ClassVar[str] = "cost_spike"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        window = minutes(s.window)
        budget_users = [(dict(b.scope)["service"], dict(b.scope)["user"]) for b in s.budgets
                        if "user" in dict(b.scope)]  # fmt: skip
        # 0.999: never drop a user the floor would catch by a rounding difference between SQL and pandas.
        self.users = users_query(window, s.user_min_usd_per_hour * window / 60 * 0.999, budget_users)

    def queries(self) -> list[Query]:
        return [ROLLUP, self.users]

    def lookback(self) -> timedelta:
        # the trailing-24h baseline before the first window, or the slowest budget window if longer
        return max(timedelta(hours=25), self.settings.daily_slow_window + self.settings.window)

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        start, end = history.start, history.end
        services = grids(
            history[ROLLUP], ("service",), COLUMNS, start, end
        )  # all of them: the parents of shares
        per_minute = {}
        for dims in LEVELS:
            frame = history[self.users] if dims == USER_DIMS else history[ROLLUP]
            level = grids(self._watched(frame, dims, times), dims, COLUMNS, start, end)
            # an empty route, model or user is the service again: watched there
            per_minute[dims] = level if len(dims) == 1 else {k: _named(g) for k, g in level.items()}
        spikes = self._spikes(per_minute, services["cost_usd"], times)
        return _most_severe(spikes + self._budgets(per_minute, times))

    def _watched(self, frame: pd.DataFrame, dims: tuple[str, ...], times: Sequence[datetime]) -> pd.DataFrame:
        """The rows of the scopes that can fire: those whose window, at some evaluation time, has
        ``min_calls`` calls and spends at least the floor, and those with a budget.

        Exact (no other scope can fire) and cheap (computed over the evaluation span only): the grids
        and baselines after it cost per scope, and users are many.
        """
        s = self.settings
        window = minutes(s.window)
        budgeted = {tuple(v for _, v in b.scope) for b in s.budgets if tuple(d for d, _ in b.scope) == dims}
        if frame.empty:
            return frame
        first, last = pd.Timestamp(times[0]) - pd.Timedelta(minutes=window), pd.Timestamp(times[-1])
        recent = frame[(frame["minute"] >= first) & (frame["minute"] < last)]
        span = grids(recent, dims, COLUMNS, first, last + pd.Timedelta(minutes=1))
        calls, usd = _sums_at(span["calls"], times, window), _sums_at(span["cost_usd"], times, window)
        floor = s.user_min_usd_per_hour if dims == USER_DIMS else s.min_usd_per_hour
        reaching = (calls >= s.min_calls) & (usd * (60 / window) >= floor) & (usd > 0)
        keep = {tuple(v for _, v in scope) for scope in span["calls"].columns[reaching.any(axis=0)]}
        rows = pd.MultiIndex.from_frame(frame[list(dims)].astype(str)).isin(list(keep | budgeted))
        return frame[rows]

    def _spikes(
        self, per_minute: dict[tuple[str, ...], dict[str, pd.DataFrame]], services_usd: pd.DataFrame, times
    ) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        service_usd = trailing_sum(services_usd, window)
        calls, usd, share, minute_usd = [], [], [], []
        for dims in LEVELS:
            level_calls = trailing_sum(per_minute[dims]["calls"], window)
            level_usd = trailing_sum(per_minute[dims]["cost_usd"], window)
            if len(dims) == 1:
                level_share = pd.DataFrame(np.nan, index=level_usd.index, columns=level_usd.columns)
            else:
                parent = _service_of(service_usd, level_usd.columns)
                level_share = (level_usd / parent).where(parent > 0)
            calls.append(level_calls)
            usd.append(level_usd)
            share.append(level_share)
            minute_usd.append(per_minute[dims]["cost_usd"])
        calls, usd, share, minute_usd = (
            pd.concat(parts, axis=1) for parts in (calls, usd, share, minute_usd)
        )
        active = calls > 0
        rate = usd * (60 / window)  # $/h
        per_call = (usd / calls).where(active)
        share = share.where(active)
        usual = baseline(rate.where(active), window, times=times)
        usual_per_call = baseline(per_call, window, times=times)
        usual_share = baseline(share, window, times=times)
        held = kth_largest(minute_usd * 60, window, minutes(s.sustained), times)  # $/h, k-th worst minute
        lowest_rate = lowest_over(rate, minutes(s.warning_for))
        # Compare at the evaluation times only: grids are long, the times few (one, live).
        rate, per_call, share, calls, held, lowest_rate = (
            at_times(grid, times) for grid in (rate, per_call, share, calls, held, lowest_rate)
        )
        unexplained = (per_call >= s.unexplained_ratio * usual_per_call) | (
            share >= s.unexplained_ratio * usual_share
        )
        floor = pd.Series(
            [
                s.user_min_usd_per_hour if "user" in dict(scope) else s.min_usd_per_hour
                for scope in rate.columns
            ],
            index=rate.columns,
        )
        spiking = (calls >= s.min_calls) & rate.ge(floor, axis=1) & (rate > 0) & unexplained
        warning_at = (usual * s.warning_ratio).clip(lower=floor, axis=1)
        critical_at = (usual * s.critical_ratio).clip(lower=floor, axis=1)
        return to_observations(
            self.name, times, rate, calls,
            warning=spiking & (lowest_rate >= warning_at),
            critical=spiking & (rate >= critical_at) & (held >= critical_at),
            warning_threshold=warning_at,
            critical_threshold=critical_at,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip

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


def _sums_at(grid: pd.DataFrame, times: Sequence[datetime], window: int) -> np.ndarray:
    """``trailing_sum(grid, window)`` at ``times`` (times x scopes), from cumulative sums: one pass."""
    values = grid.to_numpy(dtype=float)
    cumulative = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    positions = grid.index.get_indexer(pd.DatetimeIndex([pd.Timestamp(t) for t in times]))
    return cumulative[positions] - cumulative[np.maximum(positions - window, 0)]


def _named(grid: pd.DataFrame) -> pd.DataFrame:
    """``grid`` without the scopes whose last dimension is empty (calls without a route, model or user)."""
    return grid.loc[:, np.array([column[-1][1] != "" for column in grid.columns], dtype=bool)]


def _service_of(service_grid: pd.DataFrame, columns: pd.Index) -> pd.DataFrame:
    """For each scope of ``columns``, the column of its service in ``service_grid`` (NaN if absent)."""
    keys = pd.Index([column[:1] for column in columns], dtype=object, tupleize_cols=False)
    positions = service_grid.columns.get_indexer(keys)
    values = np.full((len(service_grid.index), len(columns)), np.nan)
    found = positions >= 0
    values[:, found] = service_grid.to_numpy(dtype=float)[:, positions[found]]
    return pd.DataFrame(values, index=service_grid.index, columns=columns)


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


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    return (
        f"spend ${value:,.2f}/h (threshold ${threshold:,.2f}/h, usually ${usual or 0:,.2f}/h) "
        f"for {format_scope(scope)}"
    )


def _describe_budget(label: str, amount: float, scope: Scope, value: float, threshold: float, _: None) -> str:
    return (
        f"projected {label} spend ${value:,.2f} at the current burn rate (threshold ${threshold:,.2f}, "
        f"{label} budget ${amount:,.2f}) for {format_scope(scope)}"
    )


DETECTOR = CostSpike
