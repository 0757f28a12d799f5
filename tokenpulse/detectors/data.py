"""Pure helpers of the window-based detectors: per-minute grids of the history's frames, trailing
windows, baselines and held conditions; and what the catalog's detectors share (``CatalogDetector``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np
import pandas as pd

from tokenpulse.detectors.base import CRITICAL, WARNING, Coverage, DetectorSettings, Observation, Scope
from tokenpulse.detectors.history import (
    BASELINE_DAYS,
    DETECTOR_DIMENSIONS,
    ROLLUP,
    SAME_HOUR_MARGIN,
    History,
    Query,
)

MINUTES_PER_DAY = 1440

# Rollup column -> canonical scope dimension.
SCOPE_NAMES = {"service_version": "deploy_version"}


def hourly_baseline(
    frame: pd.DataFrame,
    dims: Sequence[str],
    times: Sequence[datetime],
    window_minutes: int,
    min_calls: int,
    days: int = BASELINE_DAYS,
) -> pd.DataFrame:
    """The baseline of an hourly signal (hourly_quantile_query) at ``times``: the median of the same
    hour of previous days, else the median of the complete hours of the trailing day before the
    current window. Hours with fewer than ``min_calls`` calls do not count."""
    index = pd.DatetimeIndex([pd.Timestamp(t) for t in times])
    if frame.empty:
        return pd.DataFrame(index=index, dtype=float)
    value = frame.pivot_table(
        index="hour", columns=list(dims), values="value", aggfunc="first", observed=True
    )
    calls = frame.pivot_table(index="hour", columns=list(dims), values="calls", aggfunc="sum", observed=True)
    hours = pd.date_range(value.index.min(), index.max().floor("h"), freq="1h")
    value = value.where(calls >= min_calls).reindex(hours)
    value.columns = _scope_index(dims, value.columns)
    previous = [
        value.reindex((index - pd.Timedelta(days=k)).floor("h")).to_numpy() for k in range(1, days + 1)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: the normal "no history" case
        same_hour = np.nanmedian(np.stack(previous), axis=0)
    last_complete = (index - pd.Timedelta(minutes=window_minutes)).floor("h") - pd.Timedelta(hours=1)
    trailing = value.rolling(24, min_periods=3).median().reindex(last_complete)
    trailing.index = index
    return pd.DataFrame(same_hour, index=index, columns=value.columns).fillna(trailing)


TRAILING_DAY = timedelta(hours=25)  # the trailing-24h baseline, before the first window


class CatalogDetector:
    """What the catalog's detectors share: settings of their ``settings_type`` (defaults when none are
    given), the per-minute rollup as their data and a trailing day of history. Detectors override what
    they need otherwise; ``evaluate`` is theirs."""

    name: ClassVar[str]
    settings_type: ClassVar[type[DetectorSettings]]
    splits_tenants: ClassVar[bool] = True

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or self.settings_type()

    def queries(self) -> list[Query]:
        return [ROLLUP]

    def lookback(self) -> timedelta:
        return TRAILING_DAY

    def same_hour_margin(self) -> timedelta:
        return SAME_HOUR_MARGIN

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        """Not assessed per scope: these detectors watch a scope whenever a window has ``min_calls``."""
        return self.evaluate(history, times), []  # type: ignore[attr-defined]


def minute_index(start: datetime, end: datetime) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="1min", inclusive="left")


def grids(
    frame: pd.DataFrame, dims: Sequence[str], columns: Sequence[str], start: datetime, end: datetime
) -> dict[str, pd.DataFrame]:
    """Each of ``columns`` as a minute x scope grid over [start, end) (missing minutes are 0), summing
    rows of the same minute and scope.

    Scopes are tuples of (canonical dimension, value), in ``dims`` order, sorted. Built with numpy
    (bincount over minute x scope cells): detectors build many grids from the same large frames.
    """
    index = minute_index(start, end)
    if frame.empty:
        return {c: pd.DataFrame(index=index, dtype=float) for c in columns}
    offsets = (frame["minute"].to_numpy(dtype="datetime64[ns]") - index[0].to_datetime64()) // np.timedelta64(
        1, "m"
    )
    inside = (offsets >= 0) & (offsets < len(index))
    scope_codes = np.zeros(len(frame), dtype=np.int64)
    levels = []
    for dim in dims:
        codes, uniques = pd.factorize(frame[dim], sort=True)
        scope_codes = scope_codes * len(uniques) + codes
        levels.append(uniques)
    used, scope_ids = np.unique(scope_codes[inside], return_inverse=True)
    cells = offsets[inside].astype(np.int64) * len(used) + scope_ids
    keys = []
    for code in used:
        key = []
        for uniques in reversed(levels):
            code, position = divmod(int(code), len(uniques))
            key.append(uniques[position])
        keys.append(tuple(reversed(key)))
    scope_index = _scope_index(dims, pd.Index(keys, dtype=object, tupleize_cols=False))
    result = {}
    for column in columns:
        values = frame[column].to_numpy(dtype=float)[inside]
        summed = np.bincount(cells, weights=values, minlength=len(index) * len(used))
        result[column] = pd.DataFrame(summed.reshape(len(index), len(used)), index=index, columns=scope_index)
    return result


def value_grid(frame: pd.DataFrame, dims: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
    """The ``value`` column of a per-minute query as a minute x scope grid (missing: NaN)."""
    index = minute_index(start, end)
    if frame.empty:
        return pd.DataFrame(index=index, dtype=float)
    wide = frame.pivot_table(
        index="minute", columns=list(dims), values="value", aggfunc="first", observed=True
    )
    wide = wide.reindex(index)
    wide.columns = _scope_index(dims, wide.columns)
    return wide.astype(float)


def _scope_index(dims: Sequence[str], keys: pd.Index) -> pd.Index:
    """Grid columns: one Scope per column (a plain index of tuples, never a MultiIndex)."""
    scopes = [
        tuple(
            (SCOPE_NAMES.get(d, d), str(v))
            for d, v in zip(dims, key if isinstance(key, tuple) else (key,), strict=True)
        )
        for key in keys
    ]
    return pd.Index(scopes, dtype=object, tupleize_cols=False)


def trailing_sum(grid: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Value at minute t: the sum over [t - minutes, t), the last complete minutes before t."""
    return grid.rolling(minutes, min_periods=1).sum().shift(1)


# Baseline windows, in minutes: the hour around the same time of day, and the trailing day.
_HOUR, _HOUR_MIN_VALUES = 60, 10
_DAY_MIN_VALUES = 60
# Up to this many evaluation times (a live cycle has one) baselines are computed at those times only;
# beyond, rolling medians over the whole grid are cheaper (backtests).
_DIRECT_TIMES = 30


def baseline(
    signal: pd.DataFrame,
    window_minutes: int,
    days: int = BASELINE_DAYS,
    times: Sequence[datetime] | None = None,
) -> pd.DataFrame:
    """A robust baseline of ``signal``, at ``times`` (default: every minute of the grid).

    The same hour of previous days when that history exists (median over the days of the median of
    the hour around the same time of day), else the median of the trailing 24 hours before the
    current window. Medians only: one outlier never moves a baseline.
    """
    index = signal.index if times is None else pd.DatetimeIndex([pd.Timestamp(t) for t in times])
    if times is not None and len(index) <= _DIRECT_TIMES:
        return _baseline_at(signal, window_minutes, days, index)
    hourly = signal.rolling(_HOUR, min_periods=_HOUR_MIN_VALUES, center=True).median()
    previous_days = [hourly.reindex(index - pd.Timedelta(days=k)).to_numpy() for k in range(1, days + 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: the normal "no history" case
        same_hour = np.nanmedian(np.stack(previous_days), axis=0)
    trailing = signal.rolling(MINUTES_PER_DAY, min_periods=_DAY_MIN_VALUES).median().shift(window_minutes)
    return pd.DataFrame(same_hour, index=index, columns=signal.columns).fillna(trailing.reindex(index))


def _baseline_at(
    signal: pd.DataFrame, window_minutes: int, days: int, index: pd.DatetimeIndex
) -> pd.DataFrame:
    """``baseline`` computed only at ``index``: the same medians over the same slices of the grid."""
    values = signal.to_numpy(dtype=float)
    positions = signal.index.get_indexer(index)
    result = np.full((len(index), values.shape[1]), np.nan)

    def median(start: int, stop: int, min_values: int) -> np.ndarray:
        block = values[max(start, 0) : max(stop, 0)]
        out = np.full(values.shape[1], np.nan)
        if len(block):
            enough = (~np.isnan(block)).sum(axis=0) >= min_values
            if enough.any():
                out[enough] = np.nanmedian(block[:, enough], axis=0)
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for row, position in enumerate(positions):
            if position < 0:
                continue
            centres = [position - k * MINUTES_PER_DAY for k in range(1, days + 1)]
            same_hours = [median(c - _HOUR // 2, c + _HOUR // 2, _HOUR_MIN_VALUES) for c in centres]
            same_hour = np.nanmedian(np.stack(same_hours), axis=0)
            end = position - window_minutes + 1
            trailing = median(end - MINUTES_PER_DAY, end, _DAY_MIN_VALUES)
            result[row] = np.where(np.isnan(same_hour), trailing, same_hour)
    return pd.DataFrame(result, index=index, columns=signal.columns)


def at_times(grid: pd.DataFrame, times: Sequence[datetime]) -> pd.DataFrame:
    """Rows of ``grid`` at the evaluation ``times``."""
    return grid.reindex(pd.DatetimeIndex([pd.Timestamp(t) for t in times]))


def to_observations(
    detector: str,
    times: Sequence[datetime],
    value: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    warning: pd.DataFrame,
    critical: pd.DataFrame,
    warning_threshold: pd.DataFrame | float,
    critical_threshold: pd.DataFrame | float,
    baseline: pd.DataFrame | None,
    describe: Callable[[Scope, float, float, float | None], str],
) -> list[Observation]:
    """The active observations: one per (time, scope) where ``value`` is known and a condition holds.

    Healthy and unknown cells produce nothing; to the state machine both mean "not holding".
    ``describe(scope, value, threshold, baseline)`` writes the summary line.
    """
    index = pd.DatetimeIndex([pd.Timestamp(t) for t in times])
    columns = value.columns

    def rows(grid: pd.DataFrame | float) -> np.ndarray:
        if isinstance(grid, pd.DataFrame):
            return grid.reindex(index=index, columns=columns).to_numpy(dtype=float)
        return np.full((len(index), len(columns)), float(grid))

    values, counts = rows(value), rows(samples)
    warn, crit = rows(warning.astype(float)) > 0, rows(critical.astype(float)) > 0
    warn_at, crit_at = rows(warning_threshold), rows(critical_threshold)
    base = rows(baseline) if baseline is not None else None
    observations = []
    for i, j in zip(*np.nonzero(~np.isnan(values) & (warn | crit)), strict=True):
        severity = CRITICAL if crit[i, j] else WARNING
        threshold = crit_at[i, j] if severity == CRITICAL else warn_at[i, j]
        base_value = None if base is None or np.isnan(base[i, j]) else float(base[i, j])
        scope = columns[j]
        observations.append(
            Observation(
                detector=detector,
                scope=scope,
                at=times[i],
                severity=severity,
                value=float(values[i, j]),
                threshold=float(threshold),
                baseline=base_value,
                samples=int(counts[i, j]) if not np.isnan(counts[i, j]) else 0,
                summary=describe(scope, float(values[i, j]), float(threshold), base_value),
            )
        )
    return observations


# Fills minutes without a value (rolling quantiles turn infinities into NaN): below any threshold.
_NO_VALUE = -1e300


def kth_largest(
    grid: pd.DataFrame, window: int, k: int, times: Sequence[datetime] | None = None
) -> pd.DataFrame:
    """Value at minute t: the ``k``-th largest per-minute value of ``grid`` over [t - window, t), minutes
    without a value counting as below any threshold; at ``times`` only when given (default: every
    minute of the grid).

    "At least k minutes of the window were past x" is ``kth_largest(grid, window, k) > x``, also when x
    differs at every t (a baseline). Over the whole grid it is a rolling order statistic, computed once
    (backtests); at a few times (a live cycle has one) only those windows are sorted.
    """
    filled = grid.fillna(_NO_VALUE)
    if times is not None and len(times) <= _DIRECT_TIMES:
        index = pd.DatetimeIndex([pd.Timestamp(t) for t in times])
        values = filled.to_numpy(dtype=float)
        result = np.full((len(index), values.shape[1]), np.nan)
        for row, position in enumerate(grid.index.get_indexer(index)):
            if position >= window:  # as the rolling form: a whole window of minutes before t
                result[row] = np.sort(values[position - window : position], axis=0)[window - k]
        return pd.DataFrame(result, index=index, columns=grid.columns)
    if window == 1:
        return filled.shift(1)
    position = (window - k) / (window - 1)  # exactly the (window - k)-th smallest of the window
    result = filled.rolling(window).quantile(position, interpolation="nearest").shift(1)
    return result if times is None else at_times(result, times)


def check_scope(detector: str, scope: Sequence[str], required: Sequence[str] = ()) -> tuple[str, ...]:
    """A configured ``scope`` setting: dimensions of the rollup detectors read, in their canonical order."""
    if not scope or not set(scope) <= set(DETECTOR_DIMENSIONS) or not set(required) <= set(scope):
        raise ValueError(
            f"{detector}: scope {list(scope)!r} must be some of {', '.join(DETECTOR_DIMENSIONS)}"
            + (f" and include {', '.join(required)}" if required else "")
        )
    return tuple(d for d in DETECTOR_DIMENSIONS if d in scope)


def lowest_over(grid: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Value at minute t: the lowest of a windowed signal over the evaluations t - minutes + 1 ... t.

    "lowest_over(signal, m) >= x" says the signal has held past x for m minutes: how the moderate
    (warning) rules of the fast-paging detectors hold, while their severe rules page at once.
    """
    return grid.rolling(minutes, min_periods=1).min()


def minutes(duration: timedelta) -> int:
    """A settings duration in whole minutes, the unit of every grid."""
    return int(duration.total_seconds() // 60)


def check_for_covers_window(detector: str, settings: DetectorSettings) -> None:
    """For quantile signals: one slow call lifts the p99 of every window containing it, so ``for`` shorter
    than the window would let a single call fire."""
    if settings.for_ < settings.window:
        raise ValueError(
            f"{detector}: for ({settings.for_}) must be at least the window ({settings.window}), "
            "else one slow call, which lifts the p99 of every window containing it, fires"
        )


def check_sustained(sustained: timedelta, window: timedelta) -> None:
    if not timedelta(minutes=1) <= sustained <= window:
        raise ValueError(f"sustained ({sustained}) must be between 1 minute and the window ({window})")


@dataclass(frozen=True)
class SampledSettings(DetectorSettings):
    """Settings of the detectors not yet on the evidence kernel (``evidence``): a window with fewer than
    ``min_calls`` calls gives no observation."""

    min_calls: int = 30


@dataclass(frozen=True)
class HeldSettings(SampledSettings):
    """Settings of a detector whose condition is *held* by ``sustained`` of the window's minutes (each past
    the threshold on its own) rather than by a ``for`` delay: it fires as soon as it holds."""

    for_: timedelta = timedelta(0)
    sustained: timedelta = timedelta(minutes=4)  # of the window's minutes, each past the threshold

    def __post_init__(self) -> None:
        check_sustained(self.sustained, self.window)
