"""Detector templates on the statistics kernel (``stats``): a detector that tests a share or a ratio of
a scope against the scope's own baseline is a short declaration on one of these.

- ``ShareDetector``: a share of calls (timeouts, uncached calls, escalations) rises. Binomial evidence
  against the scope's usual share, for changes of the odds by each of ``odds_ratios``.
- ``RatioDetector``: a ratio of sums (the prompt-cache hit ratio) falls. The per-minute ratio times
  the minute's calls is a quasi-binomial count of hits, with the dispersion of the scope's history;
  evidence for relative drops of each of ``drops``.

Both evaluate every tenant in one pass (the tenant is one more scope key), page when the evidence
reaches the threshold of the false-alarm budget (``stats.evidence_threshold``) and resolve on evidence
that the scope is back to usual (``stats.sequential_alarm``): never because minutes were empty.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np
import pandas as pd

from tokenpulse.detectors import stats, windows
from tokenpulse.detectors.base import (
    CRITICAL,
    LEARNING,
    NOT_APPLICABLE,
    WARNING,
    WATCHED,
    Coverage,
    DetectorSettings,
    Observation,
    Scope,
)
from tokenpulse.detectors.data import GridMemo, grid_timeline, hourly_baseline, minute_index
from tokenpulse.detectors.history import (
    BASELINE_DAYS,
    ROLLUP,
    SIZE_CLASS,
    TAIL_EDGES_MS,
    TAILS,
    TAILS_HOURLY,
    TENANT,
    History,
    Query,
    fixed_lists,
    hourly_quantile_query,
    tails_by_size,
)

# The alarm is re-derived each cycle from this much history before the evaluated minute: evidence older
# than this is forgotten (an incident older than that has paged already; one that is still going
# on rebuilds its evidence within minutes).
SCAN = timedelta(hours=2)
# The trailing-day baseline ends this long before the minute it serves: the first hour of a change is
# never part of its own baseline.
BASELINE_LAG = timedelta(hours=1)
_LAG = int(BASELINE_LAG.total_seconds() // 60)
# Where a baseline falls back to the trailing day (no same time of day in history yet), the usual level
# may move this much over the day (observed: shares and hit ratios +-20% between peak and trough), so the
# null hypothesis takes that much worse as still usual.
DIURNAL_ODDS, DIURNAL_DROP = 1.5, 0.25
# Today's level against yesterday's: the calls of the two hours ending half an hour ago, over the same
# two hours yesterday (the half hour keeps a drop's first half hour out of its own baseline: a drop
# that pulled the level down with it would lower the bar it has to clear). A quieter day scales
# yesterday's rate down, to at most ``LEVEL_FLOOR`` of it; a busier one never scales it up (a surge
# earlier today must not make ordinary traffic read as a drop). Pseudo-calls shrink a thin scope's
# level towards yesterday's, and the level is taken ``LEVEL_Z`` standard errors (Poisson) above its
# estimate: a thin scope's level is scaled down only where its counts say the day is quieter.
LEVEL_LAG, LEVEL_WINDOW, LEVEL_FLOOR, LEVEL_PRIOR_CALLS, LEVEL_Z = 30, 120, 0.7, 10.0, 1.0
# How much lower than the level-adjusted rate a scope's calls may run on an ordinary day is measured, not
# assumed (``_usual_variation``): the half hours of the trailing six hours against the same half hours
# yesterday show how far the scope's course strays from yesterday's beyond chance. A scope with little
# such history leans on the prior: an ordinary day's course strays this much (a standard deviation, on
# the log scale), worth this many half hours of measurement.
VARIATION_BLOCK, VARIATION_BLOCKS = 30, 12
VARIATION_PRIOR, VARIATION_PRIOR_BLOCKS = 0.075, 1
# The null rate sits this many standard deviations of the course's straying under the estimate, and
# never more than ``VARIATION_CAP`` under it (a scope that strays more is still watched for larger drops).
# One is enough: the smallest drop tested (50%) gains evidence only from calls more than 28% under the
# null (x ln 0.5 + 0.5 > 0 below 0.72 of it), and the page waits for 40% under the usual rate, so a day
# that strays further than its usual course gives no page by itself; two cost recall at the margin
# (randomized seeds 1-10: 94.3% with two, 95.5% with one; false pages 2 and 1 in 2,004 scope-days).
VARIATION_Z, VARIATION_CAP = 1.0, 0.3
# Evidence to resolve: the scope looked usual 1,000 times likelier than halfway to the change that fired
# the alarm. While the change goes on, that evidence reaches this level less than once in 1,000 minutes
# (Wald; far less, since the change is beyond the halfway level), so an incident does not resolve in its
# middle and fire again.
CLEAR_EVIDENCE = math.log(1_000)
# A share's (a ratio's) null sits this many standard errors of its baseline on the side of the change.
# Half of one: the weakest change tested (odds x1.5) already tolerates a usual level a fifth above the
# null before its evidence drifts up under the usual (its halfway point, odds x1.22), and a thin
# scope's minutes are too few for the rest of a baseline's error to add up to a page. Measured on the
# randomized benchmark's tuning seeds (1-2): one sigma, as before, missed 2-4 more incidents in 100 of
# timeouts and tools for one false page fewer in 400 scope-days; none, 2-3 fewer misses for 3 more.
BASELINE_MARGIN = 0.5


@dataclass(frozen=True)
class EvidenceSettings(DetectorSettings):
    """Settings of the evidence-based detectors. The detector itself holds the alarm with hysteresis, so
    the state machine fires and resolves as soon as the alarm does (``for`` and ``keep_firing_for`` 0).
    ``min_duration`` is a business floor, not a detection mechanism: the change must have been seen for
    this long, and still be there, before it pages, so a provider blip that is over sooner, however
    intense, wakes no one."""

    for_: timedelta = timedelta(0)
    min_duration: timedelta = timedelta(minutes=4)
    keep_firing_for: timedelta = timedelta(0)
    # At most one false page per this many days, per detector, across all of its scopes: the evidence
    # threshold grows with the log of the number of scopes tested.
    false_page_budget_days: float = 100.0
    clear_evidence: float = CLEAR_EVIDENCE
    # A scope whose baseline holds fewer calls is learning: its own history does not say yet what is usual.
    learning_calls: float = 30.0

    def __post_init__(self) -> None:
        if self.false_page_budget_days <= 0 or self.clear_evidence <= 0:
            raise ValueError("false_page_budget_days and clear_evidence must be positive")


@dataclass(frozen=True)
class Signal:
    """One source of a detector's scopes: a query's frame, the dimensions that make its scopes, and a
    filter on its rows (e.g. routed calls only)."""

    query: Query
    dims: tuple[str, ...]
    rows: Callable[[pd.DataFrame], pd.Series] | None = None


@dataclass(frozen=True)
class Assessment:
    """What a template made of one signal's scopes: the observations, and each scope's status at the
    evaluation times (``STATUSES`` codes, times x scopes)."""

    observations: list[Observation]
    scopes: list[Scope]
    status: np.ndarray

    @classmethod
    def empty(cls, times: int) -> Assessment:
        return cls([], [], np.zeros((times, 0)))


# Status codes of ``Assessment.status``: watched, learning and held to a documented default, learning and
# not watched, not applicable.
_WATCHED, _HELD, _LEARNING, _NOT_APPLICABLE = 0, 1, 2, 3


def status_codes(learning: np.ndarray, applicable: np.ndarray, held: bool) -> np.ndarray:
    """Each scope's status code from whether it is learning, applicable, and learning scopes are held."""
    return np.where(learning, _HELD if held else _LEARNING, np.where(applicable, _WATCHED, _NOT_APPLICABLE))


@dataclass(frozen=True)
class Alarm:
    """The kernel's verdict for the scopes of one signal at the evaluation times. An alarm starts only
    where its scope is watched (elsewhere its evidence is nothing); once on, minutes in which the scope's
    baseline falls to learning (a thin scope's same-hour history at the edge of enough) neither end it
    nor start it again: they are minutes without evidence."""

    on: np.ndarray  # times x scopes
    onset: np.ndarray  # index in the grid of the first minute of the evidence run
    current: np.ndarray  # its last minutes give evidence for the change (``sequential_alarm``)


class EvidenceDetector:
    """What the templates share: settings, one pass over all tenants, the scan and the observations."""

    name: ClassVar[str]
    settings_type: ClassVar[type[EvidenceSettings]]
    splits_tenants: ClassVar[bool] = False  # the engine hands it every tenant's history at once

    def __init__(self, settings: EvidenceSettings | None = None) -> None:
        self.settings = settings or self.settings_type()

    def signals(self) -> list[Signal]:
        return [Signal(ROLLUP, self.settings.scope)]  # type: ignore[attr-defined]

    def queries(self) -> list[Query]:
        return [s.query for s in self.signals()]

    def lookback(self) -> timedelta:
        return SCAN + BASELINE_LAG + timedelta(days=1, minutes=5)

    def same_hour_margin(self) -> timedelta:
        """How far around the evaluation times the previous days are read (for same-hour baselines)."""
        return SCAN + timedelta(minutes=stats.SAME_HOURS + 5)

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        return self.assess(history, times)[0]

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        """The observations at ``times`` and each scope's status at the last of them (watched, learning
        or not applicable), from one pass."""
        observations, coverage = [], []
        for assessment in self._assess(history, times):
            observations += assessment.observations
            for scope, code in zip(assessment.scopes, assessment.status[-1], strict=True):
                coverage.append(Coverage(self.name, scope, *self._status(int(code))))
        return observations, coverage

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        """The alert's summary line: what the scope does now, and what it usually does."""
        raise NotImplementedError

    def _status(self, code: int) -> tuple[str, str]:
        learning = (
            f"its baseline (the same time of previous days, else the day before the last hour) holds fewer "
            f"than {self.settings.learning_calls:.0f} calls"
        )
        return {
            _WATCHED: (WATCHED, "compared with its own usual level"),
            _HELD: (LEARNING, f"{learning}: held to the documented default"),
            _LEARNING: (LEARNING, f"{learning}: not watched yet"),
            _NOT_APPLICABLE: (NOT_APPLICABLE, self.not_applicable),
        }[code]

    not_applicable: ClassVar[str] = "not applicable"

    def _assess(self, history: History, times: Sequence[datetime]) -> list[Assessment]:
        assessments = []
        for signal in self.signals():
            frame = history[signal.query]
            if signal.rows is not None and not frame.empty:
                frame = _memo(history).rows(frame, signal.rows(frame))
            assessments.append(self._evaluate(frame, signal.dims, history, times))
        return assessments

    def _evaluate(
        self, frame: pd.DataFrame, dims: Sequence[str], history: History, times: Sequence[datetime]
    ) -> Assessment:
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------------------

    def _grids(
        self, frame: pd.DataFrame, dims: Sequence[str], columns: Sequence[str], history: History
    ) -> tuple[dict[str, np.ndarray], list[Scope]]:
        if frame.empty or not len(frame.columns):
            return {c: np.zeros((0, 0)) for c in columns}, []
        scoped = (TENANT, *dims) if TENANT in frame else tuple(dims)
        # One layout and one grid per frame, scope and column per evaluation, shared between detectors
        # (a column the source never reports is all 0: none).
        columns_of, by_minute = _memo(history).grid_arrays(
            frame, scoped, columns, history.start, history.end, grid_timeline(history)
        )
        scopes = [tuple((k, v) for k, v in scope if not (k == TENANT and v == "")) for scope in columns_of]
        return by_minute, scopes

    @staticmethod
    def _positions(history: History, times: Sequence[datetime]) -> np.ndarray:
        """Grid row of the last minute before each time: what a time's verdict has seen."""
        first = pd.Timestamp(history.start)  # the grid's first minute
        minutes = np.array([(pd.Timestamp(t) - first) // pd.Timedelta(minutes=1) - 1 for t in times])
        return grid_timeline(history).row(minutes)

    def _threshold(self, scopes: int) -> float:
        return stats.evidence_threshold(scopes, self.settings.false_page_budget_days)

    def _alarm(
        self,
        evidence: np.ndarray,
        recovery: np.ndarray,
        expected: np.ndarray,
        threshold: float,
        first: int,
        positions: np.ndarray,
        min_duration: timedelta | None = None,
        levels: Sequence[stats.Level] = (),
        weights: np.ndarray | None = None,
        lasting_on_a_minute: bool = False,
        weaker_by_clear: bool = False,
        lasting_unless_denied: bool = False,
        blip_margin: float = 0.0,
    ) -> Alarm:
        s = self.settings
        minimum = int((min_duration or s.min_duration).total_seconds() // 60)
        on, onset, current = stats.sequential_alarm(
            evidence,
            recovery,
            threshold,
            s.clear_evidence,
            minimum,
            expected,
            levels,
            weights,
            lasting_on_a_minute,
            weaker_by_clear,
            lasting_unless_denied,
            blip_margin,
        )
        rows = positions - first
        return Alarm(on[rows], onset[rows] + first, current[rows])

    def _binomial_alarm(
        self,
        x: np.ndarray,
        n: np.ndarray,
        null: np.ndarray,
        changed: np.ndarray,
        dispersion: np.ndarray,
        watched: np.ndarray,
        first: int,
        positions: np.ndarray,
        recovered: Recovery | None = None,
        weights: np.ndarray | None = None,
    ) -> Alarm:
        """The alarm of counts ``x`` in ``n`` draws (scan rows x scopes) against the ``null`` share, for
        each ``changed`` level (the last axis); a firing alarm resolves as ``recovered`` says (default:
        the scope looks like the null rather than halfway to the change). ``weights``: the mixture's
        (``stats.sequential_alarm``)."""
        evidence, recovery, expected = _evidence(
            x, n, null, changed, dispersion, watched, recovered=recovered
        )
        threshold = self._threshold(x.shape[1])
        # A share's blip (a hiccup upstream timing out or escalating every call for a minute or two) is a
        # documented confounder: a stray minute after it does not page. A change no blip explains pages
        # once held for the floor unless its minutes since it fired deny it: a share's minutes seldom
        # show a change again on cue. Randomized tuning seeds 451-462: recall of every share and hit
        # ratio up (timeouts 96.0 -> 96.7%, tools 95.4 -> 96.3%), false pages 28 -> 19 in 14,400
        # scope-days.
        return self._alarm(
            evidence,
            recovery,
            expected,
            threshold,
            first,
            positions,
            weights=weights,
            lasting_unless_denied=True,
            blip_margin=stats.SHARE_BLIP_MARGIN,
        )

    def _observations(
        self,
        times: Sequence[datetime],
        scopes: list[Scope],
        alarm: Alarm,
        value: np.ndarray,
        samples: np.ndarray,
        critical: np.ndarray,
        threshold: np.ndarray,
        usual: np.ndarray,
        describe: Callable[[Scope, float, float, float], str],
    ) -> list[Observation]:
        observations = []
        for i, j in zip(*np.nonzero(alarm.on & ~np.isnan(value)), strict=True):
            observations.append(
                Observation(
                    detector=self.name,
                    scope=scopes[j],
                    at=times[i],
                    severity=CRITICAL if critical[i, j] else WARNING,
                    value=float(value[i, j]),
                    threshold=float(threshold[i, j]),
                    baseline=None if np.isnan(usual[i, j]) else float(usual[i, j]),
                    samples=int(samples[i, j]),
                    summary=describe(
                        scopes[j], float(value[i, j]), float(threshold[i, j]), float(usual[i, j])
                    ),
                    current=bool(alarm.current[i, j]),
                )
            )
        return observations


def _memo(history: History) -> GridMemo:
    """The grids the evaluation of ``history`` shares between detectors."""
    memo = history.derived.get("grids") or history.derived.setdefault("grids", GridMemo.of(history))
    assert isinstance(memo, GridMemo)
    return memo


def _scan_rows(positions: np.ndarray) -> tuple[int, np.ndarray]:
    """The first grid row of the scan and every row from it to the last position."""
    first = max(int(positions.min()) - int(SCAN.total_seconds() // 60), 0)
    return first, np.arange(first, int(positions.max()) + 1)


def _evidence(
    x: np.ndarray,
    n: np.ndarray,
    null: np.ndarray,
    changed: np.ndarray,
    dispersion: np.ndarray,
    watched: np.ndarray,
    resolve_at: Callable[[np.ndarray, np.ndarray], np.ndarray] = stats.halfway,
    recovered: Recovery | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each minute's evidence for each changed level against the null, its recovery evidence (for the
    null against the level ``resolve_at`` gives between it and each changed one: halfway on the log-odds
    scale by default; or as ``recovered`` says), and the evidence a changed minute of as many calls is
    expected to give. Nothing where a scope is not watched."""
    trials, usual, spread = n[..., None], null[..., None], dispersion[..., None]
    evidence = stats.binomial_evidence(x[..., None], trials, usual, changed, spread)
    if recovered is None:
        recovered = Recovery(usual, resolve_at(usual, changed))
    counted = x if recovered.x is None else recovered.x
    recount = spread if recovered.dispersion is None else recovered.dispersion[..., None]
    recovery = -stats.binomial_evidence(
        counted[..., None], trials, recovered.back, recovered.against, recount
    )
    expected = stats.binomial_evidence(trials * changed, trials, usual, changed, spread)
    mask = watched[..., None]
    return tuple(np.where(mask, grid, 0.0) for grid in (evidence, recovery, expected))  # type: ignore[return-value]


@dataclass(frozen=True)
class Recovery:
    """What a firing alarm resolves on: its minutes look like share ``back`` rather than ``against`` (per
    changed level), counting ``x`` with ``dispersion`` (None: the alarm's own counts and dispersion)."""

    back: np.ndarray
    against: np.ndarray
    x: np.ndarray | None = None
    dispersion: np.ndarray | None = None


def _recovery(settled: np.ndarray, changes: Callable[[np.ndarray], np.ndarray]) -> Recovery:
    """The levels a firing alarm resolves between: the scope looks like ``settled`` (the far end of its
    baseline) rather than halfway from it to each of the ``changes`` tested."""
    return Recovery(settled[..., None], stats.halfway(settled[..., None], changes(settled)))


# More than the excess functions' local half-window (15 minutes): the rows they compute exactly.
_EXCESS_MARGIN = 30


def _dispersion(trailing: list[np.ndarray], calls: np.ndarray) -> np.ndarray:
    """Each minute's dispersion: 1 + (n - 1) rho, rho measured on the scope's trailing day (the sums of
    ``stats.share_excess``, the last two baseline sums)."""
    return stats.dispersion(calls - 1, stats.burstiness(trailing[2], trailing[3]))


def _run_sums(cumulative: np.ndarray, onset: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Sums over each alarm's evidence run, [onset, position] inclusive, per (time, scope)."""
    return stats.window_sums(cumulative, positions[:, None] + 1, onset)


# The recent traffic that sets which alternatives a share's mixture weighs (minutes before the minute).
_RATE_MINUTES = 60
_SCAN_MINUTES = int(SCAN.total_seconds() // 60)

# How much a share's level at a time of day varies around its day's (a standard deviation, relative to
# the day's share): the observed swing of +-20% over the day (``DIURNAL_ODDS``) is one of 0.14.
HOURS_SPREAD = 0.15


@dataclass(frozen=True)
class ShareSettings(EvidenceSettings):
    odds_ratios: tuple[float, ...] = (
        1.5,
        3.0,
        8.0,
        25.0,
    )  # the changes tested: odds of the share times these
    critical_share: float = 0.20  # critical when the share is past this with confidence
    # What a learning scope is taken to do (a documented default, e.g. 1% of calls time out); None: a
    # learning scope is not watched.
    prior_share: float | None = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.odds_ratios or min(self.odds_ratios) <= 1:
            raise ValueError("odds_ratios must be above 1")
        if self.prior_share is not None and not 0 < self.prior_share < 1:
            raise ValueError("prior_share must be in (0, 1) or unset")
        if not 0 < self.critical_share <= 1:
            raise ValueError("critical_share must be in (0, 1]")


class ShareDetector(EvidenceDetector):
    """A share ``part`` / ``total`` of a scope's calls rises clearly above the scope's own usual share.

    Declarations set ``part``, ``total``, the settings type, ``describe`` and, where some scopes are not
    applicable (a scope that never cached has no cache to lose), ``applicable``.
    """

    part: ClassVar[str]
    total: ClassVar[str]
    settings: ShareSettings

    def applicable(self, baseline_part: np.ndarray, baseline_total: np.ndarray) -> np.ndarray:
        """Scopes the detector applies to, from their baseline sums: by default all."""
        return np.ones(baseline_total.shape, dtype=bool)

    def _evaluate(
        self, frame: pd.DataFrame, dims: Sequence[str], history: History, times: Sequence[datetime]
    ) -> Assessment:
        s = self.settings
        g, scopes = self._grids(frame, dims, (self.part, self.total), history)
        if not scopes:
            return Assessment.empty(len(times))
        positions = self._positions(history, times)
        first, rows = _scan_rows(positions)
        total = g[self.total]
        # Computed only on the rows the sums below read (a third of the week-long grid).
        timeline = grid_timeline(history)
        spans = windows.read_spans(rows, _LAG, BASELINE_DAYS, _EXCESS_MARGIN, total.shape[0], timeline)
        part = windows.on_spans(lambda r: np.minimum(g[self.part][r], total[r]), spans, total.shape)
        (base_total, base_part), trailing, same_hour = windows.baseline_sums(
            (total, part), rows, lag=_LAG, days=BASELINE_DAYS, enough=s.learning_calls, timeline=timeline
        )
        trailing += windows.excess_sums(stats.share_excess, (part, total), rows, _LAG, _EXCESS_MARGIN)
        learning = base_total < s.learning_calls
        prior = np.nan if s.prior_share is None else s.prior_share
        with np.errstate(divide="ignore", invalid="ignore"):
            usual = np.where(learning, prior, base_part / base_total)

        # The same hours of previous days, leaning on the trailing day as far as they agree with it.
        hours_part, hours_total = stats.pooled_hours(
            base_part, base_total, trailing[1], trailing[0], HOURS_SPREAD
        )
        hours_part, hours_total = (
            np.where(same_hour, hours_part, base_part),
            np.where(same_hour, hours_total, base_total),
        )

        def upper(margin: float) -> np.ndarray:
            """The upper end of what the baseline says, ``margin`` standard errors up (NaN: not known)."""
            share = np.where(learning, prior, stats.wilson_bounds(hours_part, hours_total, margin)[1])
            # A trailing day knows nothing of the time of day: allow for a share that moves over the day.
            diurnal = np.maximum(
                stats.odds_shift(share, DIURNAL_ODDS), np.minimum(share * DIURNAL_RISE, (1 + share) / 2)
            )
            return np.where(same_hour | learning, share, diurnal)

        # The baseline is not trusted further than it knows: evidence is weighed against the upper end
        # of what it says, and a firing alarm resolves once the scope looks like the far end of it.
        null = upper(BASELINE_MARGIN)
        x, n = part[rows], total[rows]
        dispersion = _dispersion(trailing, n)
        watched = ~np.isnan(null) & (learning | self.applicable(base_part, base_total))
        null = np.nan_to_num(null, nan=0.5)

        def changes(level: np.ndarray) -> np.ndarray:
            return np.stack([stats.odds_shift(level, r) for r in sorted(s.odds_ratios)], axis=-1)

        # The alternatives the scope's traffic lets page within the scan, each left out stood in for by the
        # nearest kept one (the mixture weighs only the kept ones): its calls a minute, the more of its
        # last hour's and its trailing day's (a quiet hour of a busy route keeps what its day can page).
        hour = windows.span_sums(total, timeline.earlier(rows, _RATE_MINUTES), rows) / _RATE_MINUTES
        day = trailing[0] / stats.MINUTES_PER_DAY
        grid = changes(null)
        stand_in, weights = stats.informative_alternatives(
            null, grid, np.maximum(hour, day), self._threshold(x.shape[1]), _SCAN_MINUTES
        )

        def tested(level: np.ndarray) -> np.ndarray:
            return np.take_along_axis(changes(level), stand_in, axis=-1)

        changed = np.take_along_axis(grid, stand_in, axis=-1)
        smallest = grid[..., 0]  # shown: the least change the grid tests
        recovered = _recovery(np.nan_to_num(upper(1.0), nan=0.5), tested)
        alarm = self._binomial_alarm(
            x, n, null, changed, dispersion, watched, first, positions, recovered, weights
        )
        at = positions - first
        run_part = windows.run_sums(part, alarm.onset, positions)
        run_total = windows.run_sums(total, alarm.onset, positions)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(run_total > 0, run_part / run_total, np.nan)
        lower, _ = stats.wilson_bounds(run_part, run_total, 3.0)
        critical = np.nan_to_num(lower, nan=0.0) >= s.critical_share
        observations = self._observations(
            times, scopes, alarm, value, run_total, critical,
            smallest[at], usual[at], self.describe,
        )  # fmt: skip
        applicable = self.applicable(base_part, base_total)[at]
        return Assessment(
            observations, scopes, status_codes(learning[at], applicable, s.prior_share is not None)
        )


@dataclass(frozen=True)
class RatioSettings(EvidenceSettings):
    drops: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)  # the changes tested: the ratio falls by these fractions
    critical_fraction: float = 0.35  # critical under this fraction of the usual ratio (0.9 -> 0.32)
    min_usual: float = 0.02  # a scope whose usual ratio is under this (it never caches) is not watched

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.drops or not all(0 < d < 1 for d in self.drops):
            raise ValueError("drops must be fractions in (0, 1)")
        if not 0 < self.critical_fraction < 1:
            raise ValueError("critical_fraction must be in (0, 1)")


class RatioDetector(EvidenceDetector):
    """A ratio of sums ``numerator`` / ``denominator`` of a scope falls clearly below its own usual level.

    Each minute's ratio counts with the weight of its ``weight`` column (calls): the calls are the
    independent draws, their tokens are not. A minute of n calls at ratio r is taken as r x n "hits" in
    n draws — exact for calls that hit or miss their whole prefix, a quasi-likelihood otherwise, with
    the dispersion the scope's history shows (never less than binomial).
    """

    numerator: ClassVar[str]
    denominator: ClassVar[str]
    weight: ClassVar[str] = "calls"
    settings: RatioSettings

    def _evaluate(
        self, frame: pd.DataFrame, dims: Sequence[str], history: History, times: Sequence[datetime]
    ) -> Assessment:
        s = self.settings
        g, scopes = self._grids(frame, dims, (self.numerator, self.denominator, self.weight), history)
        if not scopes:
            return Assessment.empty(len(times))
        numerator, denominator = g[self.numerator], g[self.denominator]
        positions = self._positions(history, times)
        first, rows = _scan_rows(positions)
        # Computed only on the rows the sums below read (a third of the week-long grid).
        timeline = grid_timeline(history)
        spans = windows.read_spans(rows, _LAG, BASELINE_DAYS, _EXCESS_MARGIN, numerator.shape[0], timeline)
        weight = windows.on_spans(
            lambda r: np.where(denominator[r] > 0, g[self.weight][r], 0.0), spans, numerator.shape
        )
        # Each call is a draw that hits its cacheable prefix for a share of it: ``hits`` = ratio x calls
        # is a (quasi-)binomial count, its dispersion measured on the scope's history.
        hits = windows.on_spans(
            lambda r: weight[r] * _ratio(numerator[r], denominator[r]), spans, numerator.shape
        )
        (base_weight, base_hits), _, same_hour = windows.baseline_sums(
            (weight, hits), rows, lag=_LAG, days=BASELINE_DAYS, enough=s.learning_calls, timeline=timeline
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            usual = base_hits / base_weight

        def lower(margin: float) -> np.ndarray:
            """The lower end of what the baseline says, ``margin`` standard errors down (0: not known)."""
            ratio = stats.wilson_bounds(base_hits, base_weight, margin)[0]
            # A trailing day knows nothing of the time of day: allow for a ratio that moves over the day.
            return np.nan_to_num(np.where(same_hour, ratio, ratio * (1 - DIURNAL_DROP)))

        # A thin baseline is not trusted: evidence is weighed against the lower end of what it says, and
        # a firing alarm resolves once the scope looks like the far end of it.
        null, settled = lower(BASELINE_MARGIN), lower(1.0)
        watched = (base_weight >= s.learning_calls) & (np.nan_to_num(usual) >= s.min_usual) & (null > 0)
        x, n = hits[rows], weight[rows]
        # A call's ratio is a fraction of its tokens, not a yes/no: its spread is measured, and the pairs'
        # correlation is what the minutes vary beyond it.
        sums = windows.excess_sums(stats.call_spread_terms, (hits, weight), rows, _LAG, _EXCESS_MARGIN)
        dispersion, ceiling, ceiling_dispersion = stats.ratio_dispersions(sums, usual, n - 1)

        def changes(level: np.ndarray) -> np.ndarray:
            return np.stack([level * (1 - d) for d in sorted(s.drops)], axis=-1)

        changed = changes(null)
        smallest = changed[..., 0]
        # The spread read at the usual level is right for the usual scope (the pages' false-alarm rate) but
        # not for a dropped one, whose all-or-nothing calls vary more against a coin: an alarm resolves
        # on its calls counted as hits of their ceiling, which weigh what they hold at every level.
        # Randomized seed 2304 i67 (2.3 calls a minute of 81% or nothing, down 45%) resolved mid-drop.
        levels = _recovery(settled, changes)
        top = ceiling[..., None]
        recovered = Recovery(
            levels.back / top, levels.against / top, np.minimum(x / ceiling, n), ceiling_dispersion
        )
        alarm = self._binomial_alarm(x, n, null, changed, dispersion, watched, first, positions, recovered)
        at = positions - first
        run_numerator = windows.run_sums(numerator, alarm.onset, positions)
        run_denominator = windows.run_sums(denominator, alarm.onset, positions)
        run_calls = windows.run_sums(weight, alarm.onset, positions)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(run_denominator > 0, run_numerator / run_denominator, np.nan)
        critical = np.nan_to_num(value, nan=1.0) < usual[at] * s.critical_fraction
        observations = self._observations(
            times, scopes, alarm, value, run_calls, critical,
            smallest[at], usual[at], self.describe,
        )  # fmt: skip
        learning = base_weight[at] < s.learning_calls
        return Assessment(observations, scopes, status_codes(learning, watched[at], held=False))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Each minute's ratio, at most 1 (0 without a denominator)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, np.minimum(numerator / denominator, 1.0), 0.0)


@dataclass(frozen=True)
class CountSettings(EvidenceSettings):
    drops: tuple[float, ...] = (0.5, 0.8, 0.95, 0.995)  # the changes tested: calls fall by these fractions
    # The documented level: the calls since the drop began are at least this fraction under the usual
    # rate before it pages (a day that runs 30% quieter from midnight is a quieter day, not a drop).
    least_drop: float = 0.4
    critical_fraction: float = 0.05  # critical under 5% of the usual rate: the scope stopped sending

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.drops or not all(0 < d < 1 for d in (*self.drops, self.least_drop)):
            raise ValueError("drops and least_drop must be fractions in (0, 1)")


# The same time of day of these previous days; the lower of them is the usual rate, so neither a
# weekend after a week (yesterday) nor a Monday after a weekend (a week ago) reads as a drop.
_RATE_DAYS = (1, 7)


class CountDetector(EvidenceDetector):
    """The number of calls a scope makes falls clearly below what it usually makes at this time of day.

    Calls a minute are negative binomial around the usual rate, with the variance over a quarter hour
    measured on the scope's history (calls come in sessions, at a rate that wanders: bursty, and
    correlated from minute to minute; ``stats.session_evidence``). The usual rate is the lower of the
    same time (±1 h) yesterday (``_same_time``), scaled to today's level (``_level``), and
    a week ago, so a scope without a previous day's history is learning.
    """

    count: ClassVar[str] = "calls"
    settings: CountSettings

    def lookback(self) -> timedelta:
        trailing = max(LEVEL_WINDOW, VARIATION_BLOCK * VARIATION_BLOCKS)
        return SCAN + timedelta(days=1, minutes=LEVEL_LAG + trailing + 5)

    def _evaluate(
        self, frame: pd.DataFrame, dims: Sequence[str], history: History, times: Sequence[datetime]
    ) -> Assessment:
        s = self.settings
        g, scopes = self._grids(frame, dims, (self.count,), history)
        if not scopes:
            return Assessment.empty(len(times))
        calls = g[self.count]
        positions = self._positions(history, times)
        first, rows = _scan_rows(positions)
        cumulative, timeline = stats.cumulative(calls), grid_timeline(history)

        def totals(end: np.ndarray, start: np.ndarray) -> np.ndarray:
            """The calls over [start, end), in minutes of the history, per (position, scope)."""
            return stats.window_sums(cumulative, timeline.row(end), timeline.row(start))

        here = timeline.minute(rows)[:, None] + np.zeros((1, calls.shape[1]), dtype=np.int64)
        rates = []
        for days in _RATE_DAYS:
            centre = here - days * stats.MINUTES_PER_DAY
            total, rate = _same_time(totals, centre)
            known = centre - stats.SAME_HOURS >= 0  # that day is in the history read
            rates.append(np.where(known & (total >= s.learning_calls), rate, np.nan))
        with np.errstate(invalid="ignore"):
            yesterday = rates[0] * _level(totals, here)
            usual, unadjusted = np.fmin(yesterday, rates[1]), np.fmin(*rates)
        watched = ~np.isnan(usual)
        usual = np.nan_to_num(usual, nan=1.0)
        blocks = stats.block_terms(calls, _BLOCK)
        trailing = [
            windows.block_trailing_day_sums(terms, _BLOCK, calls.shape[0], rows, _LAG) for terms in blocks
        ]
        dispersion, sessions, wander = stats.count_dispersion(*trailing, usual)
        # Drops are tested against a rate lower than the level-adjusted one by what an ordinary day
        # strays, and recovery against the unadjusted rate: a drop that lasts lowers today's level, and
        # must not lower the bar it has to clear to resolve.
        kept = 1 - _usual_variation(totals, here, dispersion)
        null = usual * kept
        recover_null = np.nan_to_num(unadjusted, nan=1.0) * kept
        x = calls[rows]
        keep = np.array([1 - d for d in sorted(s.drops)])
        changed = null[..., None] * keep
        rate, shape = null[..., None], (sessions[..., None], wander[..., None])
        evidence = stats.session_evidence(x[..., None], rate, changed, *shape)
        # An empty minute: the negative binomial of a quarter hour's variance makes it far likelier than a
        # scope whose sessions span minutes shows it. Its own trailing day says how rarely its minutes are
        # empty, and how rarely an empty one follows an empty one (``stats.silence_clusters``: clusters of
        # calls arriving at theta x rate); a drop by d keeps 1 - d of the clusters, whose absence in a
        # minute weighs d x theta x rate. The first empty minute of a run is weighed by how often any
        # minute is empty (after a minute with calls, an empty one is rarer still), the next ones by how
        # often silence runs on.
        silences = [
            windows.block_trailing_day_sums(terms, _BLOCK, calls.shape[0], rows, _LAG)
            for terms in stats.silence_terms(calls, blocks[1], _BLOCK)
        ]
        run_on = calls[np.maximum(rows - 1, 0)] == 0
        theta = np.where(run_on, stats.silence_clusters(*silences[:3]), stats.silence_clusters(*silences[3:]))
        silence = (theta * null)[..., None] * (1 - keep)
        evidence = np.where((x == 0)[..., None], np.maximum(evidence, silence), evidence)
        back = recover_null[..., None]
        recovery = -stats.session_evidence(x[..., None], back, back * np.sqrt(keep), *shape)
        expected = stats.session_evidence(changed, rate, changed, *shape)
        evidence, recovery, expected = (
            np.where(watched[..., None], g, 0.0) for g in (evidence, recovery, expected)
        )
        threshold = self._threshold(len(scopes))
        # The documented level, by a standard deviation of the calls at that level: a 30% quieter hour
        # read off four noisy minutes is not 40% under.
        at_level = usual * (1 - s.least_drop)
        level = (usual - x, usual, np.full(x.shape, s.least_drop), dispersion * at_level)
        # A drop's first minutes may fire a deeper drop than the one that goes on (25 calls where 118 are
        # usual, then 40-60 a minute): its minutes must still speak for the drop the run makes likeliest,
        # not the one that fired, else they deny it and the alarm is dropped as a blip (randomized
        # traffic_drop seed 280 i63, a 57% drop fired as 80%: paged at +16, not +5). A minute-long outage
        # is a blip like a share's. A drop that lasted pages on a minute that still speaks for it, as it did
        # before blips ended for counts (0 false pages in 1,601 held-out clean scope-days); a share's lone
        # minute pages clean scopes (randomized timeout_surge seeds 280-299 replayed: 15 -> 18 episodes).
        alarm = self._alarm(
            evidence,
            recovery,
            expected,
            threshold,
            first,
            positions,
            levels=[level],
            lasting_on_a_minute=True,
        )
        at = positions - first
        run_calls = _run_sums(cumulative, alarm.onset, positions)
        run_minutes = positions[:, None] + 1 - alarm.onset
        value = run_calls / np.maximum(run_minutes, 1)
        critical = value < usual[at] * s.critical_fraction
        observations = self._observations(
            times, scopes, alarm, value, run_calls, critical,
            changed[..., 0][at], usual[at], self.describe,
        )  # fmt: skip
        return Assessment(observations, scopes, status_codes(~watched[at], watched[at], held=False))


# The quarter hours a count's dispersion is measured on (``stats.block_terms``).
_BLOCK = 15


# The calls of a scope over [start, end) minutes, per (position, scope): ``totals(end, start)``.
_WindowCalls = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _today_and_yesterday(totals: _WindowCalls, end: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, ...]:
    """The calls over [start, end) and over the same minutes a day earlier."""
    day = stats.MINUTES_PER_DAY
    return totals(end, start), totals(end - day, start - day)


def _same_time(totals: _WindowCalls, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The calls within ``stats.SAME_HOURS`` of ``centre`` (minutes), and their rate a minute: the mean
    of the window's middle quarter hours (``SAME_TIME_KEPT`` of them, the highest and the lowest left
    out in equal numbers). A surge that day (a load test, a marketing email: a quarter hour or two far
    out of its neighbours' line) would make the same time today read as a drop; a course that rises or
    falls through the window keeps its mean, its quarter hours lying evenly either side of it."""
    start = centre - stats.SAME_HOURS
    quarters = np.sort(
        np.stack([totals(start + (i + 1) * _BLOCK, start + i * _BLOCK) for i in range(_SAME_TIME_BLOCKS)]),
        axis=0,
    )
    cut = (_SAME_TIME_BLOCKS - SAME_TIME_KEPT) // 2
    return quarters.sum(axis=0), quarters[cut : cut + SAME_TIME_KEPT].mean(axis=0) / _BLOCK


# The quarter hours of the same time of a previous day (two hours), and how many of the middle ones its
# rate is the mean of: half, so a surge of up to half an hour (two of them) is left out.
_SAME_TIME_BLOCKS = 2 * stats.SAME_HOURS // 15
SAME_TIME_KEPT = 4


def _level(totals: _WindowCalls, here: np.ndarray) -> np.ndarray:
    """Today's level against yesterday's per (position, scope), ``here`` in minutes: see ``LEVEL_LAG``."""
    end = here - LEVEL_LAG
    # Only where yesterday's same minutes are in the history read.
    start = np.maximum(end - LEVEL_WINDOW, stats.MINUTES_PER_DAY)
    today, before = _today_and_yesterday(totals, end, start)
    today, before = today + LEVEL_PRIOR_CALLS, before + LEVEL_PRIOR_CALLS
    return np.clip(today / before * np.exp(LEVEL_Z * np.sqrt(1 / today + 1 / before)), LEVEL_FLOOR, 1.0)


def _usual_variation(totals: _WindowCalls, here: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """How much lower than its level-adjusted usual rate a scope's calls may run on an ordinary day, per
    (position, scope): ``VARIATION_Z`` standard deviations of how far the scope's course strays from
    yesterday's (on the log scale), at most ``VARIATION_CAP``.

    Measured on the trailing half hours: the log ratio of each one's calls to the same half hour
    yesterday, around their median (the level's part), squared, less what chance alone gives it (both
    counts as variable as ``dispersion`` says), the largest left out (a surge earlier today is one or two
    half hours, not the course), averaged and shrunk towards ``VARIATION_PRIOR`` while few half hours
    are measured. The noise of the baseline's own estimate is not added: yesterday's two hours hold
    four times a half hour's calls, and the evidence threshold's budget is measured with it.
    """
    day = stats.MINUTES_PER_DAY
    ratios, noises = [], []
    for block in range(VARIATION_BLOCKS):
        end = here - LEVEL_LAG - block * VARIATION_BLOCK
        start = end - VARIATION_BLOCK
        today, before = _today_and_yesterday(totals, end, start)
        measured = (start >= day) & (today > 0) & (before > 0)
        today, before = np.maximum(today, 1), np.maximum(before, 1)
        ratios.append(np.where(measured, np.log(today / before), np.nan))
        noises.append(np.where(measured, dispersion * (1 / today + 1 / before), np.nan))
    ratio, noise = np.stack(ratios), np.stack(noises)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a scope without measured half hours: the prior
        squares = (ratio - np.nanmedian(ratio, axis=0)) ** 2 - noise
        squares = np.where(squares == np.nanmax(squares, axis=0), np.nan, squares)
        blocks = (~np.isnan(squares)).sum(axis=0)
        strays = np.nan_to_num(np.maximum(np.nanmean(squares, axis=0), 0.0))
    prior = VARIATION_PRIOR_BLOCKS
    course = (prior * VARIATION_PRIOR**2 + blocks * strays) / (prior + blocks)
    return np.minimum(1 - np.exp(-VARIATION_Z * np.sqrt(course)), VARIATION_CAP)


# Where a baseline falls back to the trailing day, a per-call mean may run this much higher at some hours.
DIURNAL_RISE = 1.25


@dataclass(frozen=True)
class MeanSettings(EvidenceSettings):
    rises: tuple[float, ...] = (2.0, 4.0, 8.0)  # the changes tested: the per-call mean times these
    critical_ratio: float = 4.0  # critical when the mean since the change began is this many times usual
    # A business floor: the smallest change tested is never under this much per call (short prompts,
    # a few reasoning tokens, a fraction of a cent cost nobody a page).
    floor: float = 0.0
    # How much better than a blip (nats) the change must explain its run to page (``stats.sequential_alarm``).
    # 0 by default: a spend's incident may be a session of a few heavy minutes, which any margin costs.
    blip_margin: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "rises", tuple(float(r) for r in self.rises))  # a config file gives a list
        if not self.rises or min(self.rises) <= 1:
            raise ValueError("rises must be above 1")
        if self.critical_ratio <= 1 or self.floor < 0 or self.blip_margin < 0:
            raise ValueError("critical_ratio must be above 1, floor and blip_margin not negative")


class MeanDetector(EvidenceDetector):
    """A per-call mean ``numerator`` / ``denominator`` (input tokens per call, LLM cost per tool call)
    rises clearly above the scope's own usual level.

    A minute of n calls summing to S weighs for "the mean rose by each of ``rises``" with a Gamma
    quasi-likelihood whose spread per call (the squared coefficient of variation) is measured on the
    scope's own trailing day: a scope whose prompts vary wildly needs more calls to show a doubling than
    one whose prompts are all alike. One enormous call is bounded evidence (``stats.gamma_evidence``),
    and must still be there after ``min_duration`` to page.
    """

    numerator: ClassVar[str]
    denominator: ClassVar[str] = "calls"
    settings: MeanSettings

    def critical(self, lower: np.ndarray, run: Run, usual: np.ndarray) -> np.ndarray:
        """Which alarms are critical, from the lower end of their run's mean (one standard error: the
        evidence run starts where the noise ran high), the run and the usual mean: by default, a mean of
        ``critical_ratio`` times the usual or more."""
        return lower >= self.settings.critical_ratio * usual

    def floors(
        self, total: np.ndarray, draws: np.ndarray, dims: Sequence[str]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Business floors on other ratios than the mean (numerator, denominator, level per scan row;
        ``stats.sequential_alarm``'s ``levels``) the change must reach, since it began, to page: none by
        default (the mean's own floor, ``floor``, is part of its level)."""
        return []

    def rises(self, dims: Sequence[str]) -> tuple[float, ...]:
        """The changes tested for a signal's scopes."""
        return tuple(sorted(self.settings.rises))

    def draws(self, grids: dict[str, np.ndarray], dims: Sequence[str]) -> np.ndarray:
        """What the mean is per (minutes x scopes): by default the ``denominator`` column (calls); the
        history a scope must have to be watched is counted in calls whatever this is."""
        return grids[self.denominator]

    def null_scale(self, scan: MeanScan) -> np.ndarray | float:
        """A factor on the usual level per (scan row, scope): what else explains a higher mean now."""
        return 1.0

    def min_duration(self, dims: Sequence[str]) -> timedelta:
        """How long a change must be seen before it pages (a business floor)."""
        return self.settings.min_duration

    def same_hour_only(self, dims: Sequence[str]) -> bool:
        """Whether the mean per draw needs the same time of day in the scope's history to be watched (its
        level follows the time of day more than ``DIURNAL_RISE`` allows for). Where a mean per draw that
        is not a call is also tested per call (``per_call_too``), the mean per call is watched against
        the trailing day without it, as every other mean."""
        return False

    def per_call_too(self, dims: Sequence[str]) -> bool:
        """Whether a mean per draw that is not a call is also tested per call (``draws``)."""
        return False

    def _family(
        self,
        x: np.ndarray,
        n: np.ndarray,
        usual: np.ndarray,
        base_draws: np.ndarray,
        spread: np.ndarray,
        scale: np.ndarray,
        rises: tuple[float, ...],
        recovery_spread: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The null mean per draw (scan rows x scopes; 0 where nothing is known) and the evidence,
        recovery and expected evidence of ``x`` in ``n`` draws for each of ``rises`` against it, given
        the ``usual`` mean over ``base_draws`` draws, the ``spread`` per draw and the null's ``scale``;
        the recovery is judged with ``recovery_spread`` where given (per scan row and scope: see
        ``_evaluate``).

        The baseline is not trusted further than it knows: the null is the upper end of what it says
        (one standard error of the mean), times ``scale`` (higher where it knows nothing of the time of
        day, or where something else explains a higher mean), and never under the business floor
        divided by the smallest change tested."""
        null = usual * (1 + np.sqrt(spread / np.maximum(base_draws, 1.0))) * scale
        null = np.maximum(null, self.settings.floor / rises[0])
        known = np.where(null > 0, null, 1.0)
        mean0, spread3, draws = known[..., None], spread[..., None], n[..., None]
        mean1 = np.stack([known * r for r in rises], axis=-1)
        evidence = stats.gamma_evidence(x[..., None], draws, mean0, mean1, spread3)
        back_spread = spread3 if recovery_spread is None else recovery_spread[..., None]
        recovery = -stats.gamma_evidence(x[..., None], draws, mean0, np.sqrt(mean0 * mean1), back_spread)
        expected = stats.gamma_evidence(draws * mean1, draws, mean0, mean1, spread3)
        return null, (evidence, recovery, expected)

    def _evaluate(
        self, frame: pd.DataFrame, dims: Sequence[str], history: History, times: Sequence[datetime]
    ) -> Assessment:
        s = self.settings
        g, scopes = self._grids(frame, dims, (self.numerator, self.denominator), history)
        if not scopes:
            return Assessment.empty(len(times))
        total, draws, calls = np.maximum(g[self.numerator], 0.0), self.draws(g, dims), g[self.denominator]
        positions = self._positions(history, times)
        first, rows = _scan_rows(positions)
        (base_draws, base_total, base_calls, base_minutes), trailing, same_hour = windows.baseline_sums(
            (draws, total, calls, _read(calls)), rows, lag=_LAG,
            days=BASELINE_DAYS, enough=s.learning_calls, weight_index=2, timeline=grid_timeline(history),
        )  # fmt: skip
        trailing += windows.excess_sums(stats.mean_excess, (total, draws), rows, _LAG, _EXCESS_MARGIN)
        with np.errstate(divide="ignore", invalid="ignore"):
            usual = np.nan_to_num(base_total / base_draws)
            usual_rate = np.nan_to_num(base_total / base_minutes)
        spread = stats.mean_dispersion(trailing[4], trailing[5])
        scan = MeanScan(history, frame, dims, scopes, total, rows, usual)
        scale = np.where(same_hour, 1.0, DIURNAL_RISE) * self.null_scale(scan)
        rises = self.rises(dims)
        # Learning: too few calls in the baseline, or (where a draw is an active minute, not a call) too few
        # minutes of them: ten active minutes of a user's say what a minute of theirs usually costs.
        learning = (base_calls < s.learning_calls) | (base_draws < s.learning_calls / 3)
        per_draw_known = same_hour if self.same_hour_only(dims) else np.ones_like(same_hour)
        if not self.per_call_too(dims):
            learning |= ~per_draw_known
        x = total[rows]
        n, n_calls = draws[rows], calls[rows]
        recovery_spread = None
        if self.per_call_too(dims):
            per_call = windows.excess_sums(stats.mean_excess, (total, calls), rows, _LAG, _EXCESS_MARGIN)
            spread_per_call = stats.mean_dispersion(*per_call)
            # A draw's recovery is judged with at least the spread of the calls it holds: the spread per
            # active minute is an average over minutes of many calls and of one, and a spike's cheap
            # minutes are mostly minutes of a call or two, whose spend varies as a call's does. Judged
            # with the average, their lull looked like a recovery (randomized cost_spike/user seed 41
            # i30, 2.3 calls a minute costing 8.7x: paged at +12, resolved at +84, paged again at +108).
            recovery_spread = np.maximum(spread, spread_per_call / np.maximum(n_calls, 1.0))
        null, family = self._family(x, n, usual, base_draws, spread, scale, rises, recovery_spread)
        watched = ~learning & (null > 0)
        families = [family]
        if self.per_call_too(dims):
            # Where a draw is not a call (a user's active minute), the same rise is also tested per call,
            # given the minute's calls: a minute's spend varies with how many calls it holds, which a
            # dearer call does not change, so pricier calls show in fewer minutes per call than per
            # minute. A loop of more calls at the usual price still shows per minute. The mixture of both
            # is a likelihood ratio (at most ln 2 nats more where one explains the minutes alone).
            with np.errstate(divide="ignore", invalid="ignore"):
                usual_per_call = np.nan_to_num(base_total / base_calls)
            null_per_call, by_call = self._family(
                x, n_calls, usual_per_call, base_calls, spread_per_call, scale, rises
            )
            watched &= null_per_call > 0
            families.append(by_call)
        # Where the mean per draw is not known at this time of day, only the mean per call is watched.
        watched_by = [watched & per_draw_known, watched][: len(families)]
        mask = _by_rise([np.repeat(w[..., None], len(rises), axis=-1) for w in watched_by])
        evidence, recovery, expected = (
            np.where(mask, _by_rise(grids), 0.0) for grids in zip(*families, strict=True)
        )
        threshold = self._threshold(len(scopes))
        # The documented level is a level: the evidence may favour a doubling before the mean since the
        # change began has doubled; it pages once that mean has (and stays paged while the alarm is on):
        # per draw, or per call where that is tested too.
        # Under the business floor (a mean of at least ``floor``), however clear the change, nobody is paged.
        # The level per draw counts only the minutes whose usual per draw is known at their time of day.
        known_x = np.where(per_draw_known, x, 0.0)
        level: stats.Level | stats.AnyLevel = (known_x, n, np.maximum(rises[0] * usual, s.floor))
        if self.per_call_too(dims):
            level = stats.AnyLevel((level, (x, n_calls, np.maximum(rises[0] * usual_per_call, s.floor))))
        levels = [level, *self.floors(x, n, dims)]
        duration = self.min_duration(dims)
        # A change that lasted pages unless denied, as a share's does (randomized tuning seeds 451-462:
        # each mean detector's recall up, its false pages as many), behind its detector's blip margin.
        alarm = self._alarm(
            evidence,
            recovery,
            expected,
            threshold,
            first,
            positions,
            duration,
            levels,
            lasting_unless_denied=True,
            blip_margin=s.blip_margin,
        )
        smallest = np.where(null > 0, null, 1.0) * rises[0]  # the smallest change tested, reported
        at = positions - first
        run = Run(
            total=windows.run_sums(total, alarm.onset, positions),
            draws=windows.run_sums(draws, alarm.onset, positions),
            calls=windows.run_sums(calls, alarm.onset, positions),
            minutes=positions[:, None] + 1 - alarm.onset,
            usual_rate=usual_rate[at],
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(run.draws > 0, run.total / run.draws, np.nan)
        lower = np.nan_to_num(value) * np.maximum(1 - np.sqrt(spread[at] / np.maximum(run.draws, 1.0)), 0.0)
        critical = self.critical(lower, run, usual[at])
        observations = self._observations(
            times, scopes, alarm, value, run.calls, critical,
            smallest[at], usual[at], self.describe,
        )  # fmt: skip
        return Assessment(observations, scopes, status_codes(learning[at], watched[at], held=False))


def _by_rise(grids: Sequence[np.ndarray]) -> np.ndarray:
    """Families' grids (... x rises each, the weakest first) as one, from the weakest rise to the
    strongest, a rise's families side by side: ``stats.sequential_alarm`` weighs a recovery against the
    change going on and every weaker one by their order. One family after the other, a user's 10x per
    call came after their 30x per active minute: a page fired by 30x per minute, whose run made 10x per
    call likeliest, was weighed against halfway to 30x, which a thin user spending 9x crosses in a lull
    while the spike goes on, and resolved and paged again."""
    return np.stack(grids, axis=-1).reshape(*grids[0].shape[:-1], -1)


def _read(calls: np.ndarray) -> np.ndarray:
    """1 for the minutes the history holds (any scope of the signal had calls), per minute (one column:
    the same for every scope, its sums broadcast): a minute outside the ranges read, or before the store
    began, is not a minute of usual spend."""
    return (calls.sum(axis=1) > 0)[:, None].astype(float)


@dataclass(frozen=True)
class MeanScan:
    """What a mean's scan has read, for ``MeanDetector.null_scale``: the history, the rows its scopes
    come from, their dimensions, the scopes, the numerator per minute and scope, the scan's rows of the
    grid, and the usual level per scan row and scope."""

    history: History
    frame: pd.DataFrame
    dims: Sequence[str]
    scopes: list[Scope]
    total: np.ndarray
    rows: np.ndarray
    usual: np.ndarray


@dataclass(frozen=True)
class Run:
    """Sums over each alarm's evidence run (times x scopes): the numerator, the draws of the mean, the
    calls, the minutes; and the scope's usual numerator per minute."""

    total: np.ndarray
    draws: np.ndarray
    calls: np.ndarray
    minutes: np.ndarray
    usual_rate: np.ndarray


@dataclass(frozen=True)
class TailSettings(EvidenceSettings):
    odds_ratios: tuple[float, ...] = (1.5, 3.0, 8.0, 25.0)  # the changes tested: odds of a slow call
    warning_ratio: float = 2.0  # a call is slow past the usual p99 times this ...
    critical_ratio: float = 3.0
    floor_ms: float = 2000.0  # ... and past this, whatever the usual
    scope: tuple[str, ...] = ("service", "route", "model")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.odds_ratios or min(self.odds_ratios) <= 1:
            raise ValueError("odds_ratios must be above 1")
        if self.warning_ratio <= 1:
            raise ValueError("warning_ratio must be above 1")


# A minute of longer calls is compared with what its sizes usually take (``TailDetector._size_factor``):
# the usual p99 scaled by the duration the scope's own line expects at the minute's mean size over what
# it expects at the trailing day's mean size, at most this many times. Only ever up: shorter calls than
# usual leave the level where it is (the line is a rough model of the tail, not a promise).
SIZE_FACTOR_CAP = 20.0
SIZE_PRIOR_CALLS = 10.0
# Where sizes moved the level by more than this, the whole-distribution test (against the trailing day's
# durations, of the usual sizes) sits the minute out; the share past the scaled level still tests it.
SIZE_SHIFT_TOLERANCE = 1.1

# The quantile the tail detectors watch: a p99 above a level is "more than 1% of calls past it".
QUANTILE = 0.99
_TAIL_SHARE = 1 - QUANTILE
_EDGES = np.asarray(TAIL_EDGES_MS)


class TailDetector(EvidenceDetector):
    """The p99 of a duration (latency, time to first token) rises above a level: twice the scope's own
    usual p99 by default.

    "The p99 is above L" is "more than 1% of calls take longer than L", a share: each minute's count of
    calls slower than L weighs for "that share's odds grew 1.5x, 3x, 8x or 25x" against 1%, the most a
    scope within its objective can have (binomial, with the burstiness the scan shows). A second test
    sees a distribution that moved as a whole, on far fewer calls: each minute's durations, bin by bin,
    weigh for "every call 2x, 2.4x, 4x, 8x or 44x slower" against the scope's own trailing day — each call
    against the calls of its size class there (within 2x of its size: ``history.tails_by_size``). The
    usual p99 is the median of the same hour of previous days (else of the trailing day's hours) merged
    from the rollup's t-digests, or on a thin scope (fewer than 300 calls an hour) the p99 of its trailing
    day's calls pooled; the counts come from a per-minute histogram of the raw calls (``TAIL_EDGES_MS``:
    L is taken at the first edge at or above it).
    """

    column: ClassVar[str]  # "latency" or "ttft": the histogram and the rollup digest read
    count: ClassVar[str]  # the calls that have the duration
    settings: TailSettings

    def __init__(self, settings: EvidenceSettings | None = None) -> None:
        super().__init__(settings)
        self.hourly = hourly_quantile_query(f"{self.column}_ms", self.settings.scope, QUANTILE)
        self.by_size = tails_by_size(self.column)

    def queries(self) -> list[Query]:
        return [TAILS, TAILS_HOURLY, self.hourly, *self.by_size]

    def objective(self, scopes: list[Scope], usual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The warning and critical levels (ms) per (minute, scope), from the usual p99 (NaN: unknown,
        the scope is learning), and the usual p99 the durations' shape is tested from (NaN: not tested).
        Where the floor sets the warning level, only the shifts whose evidence says the p99 passed it
        are tested (``_reaching``)."""
        s = self.settings
        warning = np.maximum(usual * s.warning_ratio, s.floor_ms)
        return warning, np.maximum(usual * s.critical_ratio, s.floor_ms), usual

    def _assess(self, history: History, times: Sequence[datetime]) -> list[Assessment]:
        s = self.settings
        frame = history[TAILS]
        start = max(
            pd.Timestamp(history.start), pd.Timestamp(times[0]).floor("min") - SCAN - pd.Timedelta(minutes=2)
        )
        if frame.empty:
            return [Assessment.empty(len(times))]
        dims = (TENANT, *s.scope) if TENANT in frame else s.scope
        index = minute_index(start, history.end)
        scopes, n_all, past, size = _histograms(
            frame,
            dims,
            self.count,
            f"{self.column}_over",
            index,
            sums=(f"{self.column}_size",),
            keys=_tail_keys(history, frame, dims),
        )
        if not scopes:
            return [Assessment.empty(len(times))]
        positions = np.array([(pd.Timestamp(t) - index[0]) // pd.Timedelta(minutes=1) - 1 for t in times])
        first, rows = _scan_rows(positions)
        sized = self._size_factor(history, dims, scopes, index, rows, n_all, size[..., 0])
        # The trailing day's durations, pooled per scope: the usual p99 of a thin scope and the shapes'.
        hourly = history[TAILS_HOURLY]
        day = _trailing_bins(
            hourly, dims, self.count, f"{self.column}_over", scopes, index, _tail_keys(history, hourly, dims)
        )
        usual = self._usual(history, dims, scopes, index, day) * sized
        warning_ms, critical_ms, body = self.objective(scopes, usual)
        shifted = np.where(sized <= SIZE_SHIFT_TOLERANCE, body, np.nan)
        watched = ~np.isnan(warning_ms)
        n, counts = n_all[rows], past[rows]
        # Two kinds of evidence that the p99 passed the warning level. More than 1% of calls past it: a
        # share, whatever changed in the tail (a few calls retried, a slow replica).
        slow = calls_past(counts, warning_ms[rows])
        excess, pairs = stats.share_excess(slow, n)
        dispersion = stats.dispersion(n - 1, stats.burstiness(excess.sum(axis=0), pairs.sum(axis=0)))
        null = np.full(n.shape, _TAIL_SHARE)
        changed = np.stack([stats.odds_shift(null, r) for r in sorted(s.odds_ratios)], axis=-1)
        # Resolved on evidence against the share halfway to the change (1% -> 20%: 10.5%): a share of 1%
        # is proven far from a log-odds midpoint (4.6%) only over hundreds of calls, hours on a thin route.
        tail = _evidence(slow, n, null, changed, dispersion, watched[rows], _midpoint)
        # Or calls got slower: each call's duration against the scope's own trailing day of calls of
        # its size class, every call or one in twenty (``_SHIFTS``); where the floor sets the level, only
        # by as much as takes the p99 past it (``_reaching``).
        known, whole = self._shapes(history, dims, scopes, index, rows, dispersion, body, shifted, day)
        reaching = _reaching(warning_ms[rows] / body[rows], s.warning_ratio)
        whole = tuple(np.where(reaching, grid, 0.0) for grid in whole)
        evidence, recovery, expected = (
            np.concatenate(pair, axis=-1) for pair in zip(tail, whole, strict=True)
        )
        # A minute denies a change (``stats.sequential_alarm``: its last informative minute no longer
        # speaks for it) only where a changed minute of as many calls more likely than not holds a
        # changed call. One call in twenty slower leaves most minutes of fewer than 14 calls without one:
        # their silence is what the change predicts, not a sign that it is over. Such a minute that does
        # speak for it (a slow call) is weighed as any other.
        fractions = np.concatenate(
            [changed, np.broadcast_to([f for f, _ in _SHIFTS], (*n.shape, len(_SHIFTS)))], axis=-1
        )
        silent = ((1 - fractions) ** n[..., None] > 0.5) & (evidence <= 0)
        expected = np.where(silent, 0.0, expected)
        # A change of one shape can look usual to a test of another (one call in twenty 4x slower is far
        # from every call 2x slower): an alarm resolves only when the durations also look usual against
        # every call being slower (half of each shift tested), whichever test fired.
        against_whole = np.where(reaching[..., :_WHOLE], whole[1][..., :_WHOLE], np.inf).min(axis=-1)
        recovery = np.where(known[..., None], np.minimum(recovery, against_whole[..., None]), recovery)
        # Nor while the calls past the level are still clearly more than usual: a minute whose share past
        # it is likelier halfway to each change tested than at the usual 1% (for the largest, halfway to
        # 20%, from about 4-5% of its calls) does not count for recovery. An hour after it began, a long
        # slowdown is in the trailing day the shapes are compared with, and looks usual to them (the
        # level comes from the same hours of previous days).
        recovery = np.where(tail[1].max(axis=-1, keepdims=True) < 0, np.minimum(recovery, 0.0), recovery)
        threshold = self._threshold(len(scopes))
        # The documented level is a level: more than 1% of the calls since the change began past the
        # warning level (the run's p99 past it) before it pages.
        level = (slow, n, np.full(n.shape, _TAIL_SHARE + 1e-9))
        # A page waits for minutes that speak for the change the run makes likeliest, not the one that
        # fired: one call 18x slower may fire "2% of calls 18x slower" where 2% of calls 7.5x slower go
        # on, whose calls then do not speak for 18x, and the alarm was dropped as a blip twice within
        # the incident (randomized ttft_slo seed 2702 i176, 50 calls a minute: never paged). So the
        # tails' alarm runs as the shares' and the means' do: its blips end, a change that lasted pages
        # unless denied, a blip must be outdone by the shares' margin (the share past the level and the
        # fractions of calls slower are shares). Randomized tuning seeds 471-478: latency 1,022 ->
        # 1,031 of 1,058, ttft 1,009 -> 1,011 of 1,046, false pages 5 -> 1 in 3,201 scope-days.
        alarm = self._alarm(
            evidence,
            recovery,
            expected,
            threshold,
            first,
            positions,
            levels=[level],
            weaker_by_clear=True,
            lasting_unless_denied=True,
            blip_margin=stats.SHARE_BLIP_MARGIN,
        )
        at = positions - first
        run_n = _run_sums(stats.cumulative(n), alarm.onset - first, at)
        run_past = np.stack(
            [
                _run_sums(stats.cumulative(counts[..., k]), alarm.onset - first, at)
                for k in range(len(_EDGES))
            ],
            axis=-1,
        )
        # The run's p99: the first edge past which at most 1% of the run's calls took longer.
        within = run_past <= _TAIL_SHARE * run_n[..., None]
        value = np.where(run_n > 0, _EDGES[np.minimum(within.argmax(axis=-1), len(_EDGES) - 1)], np.nan)
        very_slow = calls_past(counts, critical_ms[rows])
        run_critical = _run_sums(stats.cumulative(very_slow), alarm.onset - first, at)
        lower, _ = stats.wilson_bounds(run_critical, run_n, 1.0)
        critical = np.nan_to_num(lower) > _TAIL_SHARE
        observations = self._observations(
            times, scopes, alarm, value, run_n, critical,
            warning_ms[positions], usual[positions], self.describe,
        )  # fmt: skip
        learning = ~watched[positions]
        return [Assessment(observations, scopes, status_codes(learning, watched[positions], held=False))]

    def _shapes(
        self,
        history: History,
        dims: Sequence[str],
        scopes: list[Scope],
        index: pd.DatetimeIndex,
        rows: np.ndarray,
        dispersion: np.ndarray,
        body: np.ndarray,
        shifted: np.ndarray,
        day: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Where the durations' shape is tested (scanned minutes x scopes) and its evidence, recovery and
        expected evidence per shift (``_shift_evidence``), summed over each minute's size classes.

        A class with ``CLASS_LEARNING_CALLS`` calls in the trailing day is compared with that day's calls
        of its class; the calls of a thinner class with the scope's whole trailing day, as long as sizes
        did not move the level (``shifted`` not NaN). Where ``body`` is NaN (a fixed SLO), nothing is.
        ``day``: the scopes' trailing days over ``index`` (``_trailing_bins``)."""
        pooled, hour_of = day
        out = np.zeros((3, len(rows), len(scopes), len(_SHIFTS)))
        known = np.zeros((len(rows), len(scopes)), dtype=bool)
        frame = history[self.by_size[0]]
        if frame.empty:
            return known, (out[0], out[1], out[2])
        offsets = np.asarray((pd.DatetimeIndex(frame["minute"]) - index[0]) // pd.Timedelta(minutes=1))
        scanned = (offsets >= rows[0]) & (offsets <= rows[-1])
        frame, at = frame[scanned], offsets[scanned] - rows[0]
        class_codes, classes = _scope_keys(frame, (*dims, SIZE_CLASS))
        # Each class's scope is its scope with the class added: its column among ``scopes`` (or -1).
        column_of = {scope: i for i, scope in enumerate(scopes)}
        parent_of = [column_of.get(tuple(p for p in c if p[0] != SIZE_CLASS), -1) for c in classes]
        parent = np.array(parent_of, dtype=np.int64)[class_codes]
        home = np.maximum(parent, 0)
        by_class, _ = _trailing_bins(
            history[self.by_size[1]], (*dims, SIZE_CLASS), "calls", f"{self.column}_over", classes, index
        )
        counts = _edge_counts(frame, f"{self.column}_over", np.ones(len(frame), dtype=bool))
        row_bins = _bins(frame["calls"].to_numpy(dtype=np.float32), counts)
        hour = hour_of[rows][at]
        own = (by_class.sum(axis=-1) >= CLASS_LEARNING_CALLS)[hour, class_codes]
        tested = np.isfinite(body[rows])[at, home] & (parent >= 0)
        fallback = (pooled.sum(axis=-1) >= self.settings.learning_calls)[hour, home]
        fallback &= np.isfinite(shifted[rows])[at, home]
        use_own, use_pooled = tested & own, tested & ~own & fallback
        scope_calls = pooled.sum(axis=-1)
        class_scope = np.maximum(np.array(parent_of, dtype=np.int64), 0)
        for chosen, usual, which, ruled in (
            (use_own, by_class, class_codes, scope_calls[:, class_scope]),
            (use_pooled, pooled, parent, scope_calls),
        ):
            if not chosen.any():
                continue
            cells = (at[chosen], parent[chosen])
            grids = _shift_evidence(row_bins[chosen], usual, hour[chosen], which[chosen], ruled)
            for k, grid in enumerate(grids):
                _add_at(out[k], cells, grid)
            known[cells] = True
        out /= dispersion[None, ..., None]
        return known, (out[0], out[1], out[2])

    def _size_factor(
        self,
        history: History,
        dims: Sequence[str],
        scopes: list[Scope],
        index: pd.DatetimeIndex,
        rows: np.ndarray,
        minute_calls: np.ndarray,
        minute_size: np.ndarray,
    ) -> np.ndarray:
        """How many times longer than usual each minute's calls are expected to take given their sizes
        (output tokens for latency, prompt tokens for TTFT; ``minute_size`` their sum per minute of the
        grid and scope), per (minute of the grid, scope), at ``rows`` (1 elsewhere, and where the scope's
        line is unknown or flat). Each minute's line is least squares of the duration on the size over
        the calls of the 24 whole hours ending ``BASELINE_LAG`` or more before it, as the usual shape's
        (``_trailing``): a backtest of a day refits it as the hours roll, as live cycles do."""
        sums = tuple(f"{self.column}_{part}" for part in ("size", "sum_ms", "size_ms", "size_sq"))
        hourly = history[TAILS_HOURLY]
        factor = np.ones(minute_calls.shape)
        ends = (index[rows] - BASELINE_LAG).floor("h")
        keys = _tail_keys(history, hourly, dims)
        for end in ends.unique():
            day = ((hourly["hour"] >= end - pd.Timedelta(hours=24)) & (hourly["hour"] < end)).to_numpy()
            calls, size, duration, product, square = _scope_sums(
                hourly, dims, scopes, (self.count, *sums), rows=day, keys=keys
            ).T
            at = rows[ends == end]
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = (calls * product - size * duration) / (calls * square - size**2)
                usual_size, usual_ms = size / calls, duration / calls
                # A minute's mean size is shrunk towards the day's by ``SIZE_PRIOR_CALLS``: one long
                # answer in a thin minute does not excuse a slow call beside it.
                prior = SIZE_PRIOR_CALLS
                now_size = (minute_size[at] + prior * usual_size) / (minute_calls[at] + prior)
                line = (usual_ms + slope * (now_size - usual_size)) / usual_ms
            spread = calls * square - size**2  # n^2 x the variance of the sizes: none, no line
            fitted = (calls >= self.settings.learning_calls) & (spread > 1e-9 * calls * square) & (slope > 0)
            fitted &= usual_ms > 0
            factor[at] = np.where(fitted[None, :] & (minute_calls[at] > 0), line, 1.0)
        return np.clip(np.nan_to_num(factor, nan=1.0), 1.0, SIZE_FACTOR_CAP)

    def _usual(
        self,
        history: History,
        dims: Sequence[str],
        scopes: list[Scope],
        index: pd.DatetimeIndex,
        day: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """The usual p99 per (minute of the grid, scope): NaN where the scope has no baseline. A thin
        scope's is its trailing day's (``day``: ``_trailing_bins`` over ``index``, ``_pooled_p99``), not
        the median of its hours'."""
        hourly = history[self.hourly]
        if hourly.empty:
            return np.full((len(index), len(scopes)), np.nan)
        usual = hourly_baseline(hourly, dims, list(index), 0, int(self.settings.learning_calls))
        usual.columns = pd.Index(
            [tuple(p for p in scope if p != (TENANT, "")) for scope in usual.columns], tupleize_cols=False
        )
        by_hour = usual.reindex(columns=pd.Index(scopes, tupleize_cols=False)).to_numpy(dtype=float)
        pooled_day, hour_of = day
        calls = pooled_day.sum(axis=-1)
        # An hour of N calls places its p99 on about N/100 calls past it: under ``_THIN_HOUR_CALLS`` an
        # hour's "p99" is its slowest call or two, which a lone slow call sets (a usual p99 4x the true
        # one held the pages of a thin route back). The trailing day's calls pooled place it on more: on
        # a thin scope; where the same hours of previous days the median is taken over hold fewer calls
        # together (a busy route's night hours); and where fewer than ``_SAME_HOUR_DAYS`` days have the
        # hour: the median of one or two hours' p99s is as noisy as an hour's (bins 1.25x apart, a few
        # calls past it), not the robust level of a week's same hours it stands for. A young route's
        # one same hour read 1.4x its true p99 and held back the pages of 2-2.25x moves at 14-21 calls a
        # minute (ttft_slo, randomized seeds 7-8).
        keys = _tail_keys(history, hourly, dims)
        same_calls, same_days = _same_hour_calls(
            hourly, dims, scopes, index, self.settings.learning_calls, keys
        )
        thin = (calls < 24 * _THIN_HOUR_CALLS)[hour_of] | (same_calls < _THIN_HOUR_CALLS)
        thin |= same_days < _SAME_HOUR_DAYS
        pooled = np.where(
            (calls >= self.settings.learning_calls)[hour_of], _pooled_p99(pooled_day)[hour_of], np.nan
        )
        return np.where(thin & ~np.isnan(pooled), pooled, by_hour)


# The changes of the whole distribution tested: (the fraction of calls slower, by how many bins of the
# histogram, 1.25x each). Every call 2x, 2.4x, 4x, 8x or 44x slower; or one call in twenty or in fifty 4x,
# 8x or 18x slower (retries inside the call, a slow replica). A call slowed far past the largest shift tested
# lands where the shifted distribution is as empty as the usual one and weighs nothing for it; when a few
# calls move the p99 it is by a large factor (2% of calls that move it 4x are 8-25x slower where the usual
# p99 is 2-6x the median), so the fractions reach 18x (each change added costs the mixture at most
# ln(15/14) nats). A minute of calls all 40x slower (a provider's hiccup) is every call slower, not one
# in twenty: without the 44x shift only the fractions would explain it, and a thin scope's quiet minutes
# after it would not deny those (``TailDetector._assess``), so the blip would page. Each resolves against
# the change halfway to it.
# Up to 4x, every call slower is tested at most 1.6x from the next shift (2x apart, a slowdown of 2.5-3x,
# in the middle of the documented doubling and up, was tested at the wrong size): a shift of d bins tested at
# d' gives 1 - (1 - d'/d)^2 of its evidence on a log-normal body, 0.89 halfway between 3 and 6 bins, and
# less on a trailing day's sparse tail, where the calls of the larger change land past what the smaller
# shift's shifted day holds. Measured on the incidents ttft_slo missed on randomized seeds 7-12: over
# their first 15 minutes, the best shift tested gave 0.86 of the oracle's evidence against the true usual
# distribution, the best of a fine grid 0.93.
# The fractions go from the fewest calls slower: the kernel takes a lower index for a weaker change (a
# page chosen by 5% of calls slower is weighed against 2% too as it resolves, ``stats.sequential_alarm``).
_SHIFTS = (
    (1.0, 3), (1.0, 4), (1.0, 6), (1.0, 9), (1.0, 17),
    (0.02, 6), (0.02, 9), (0.02, 13), (0.05, 6), (0.05, 9), (0.05, 13),
)  # fmt: skip
_WHOLE = 5  # the first of them are every call slower
# Where the floor sets the warning level above twice the usual p99 (a fast route), a shift of the
# durations counts only if what its evidence says carries the p99 past that level: durations that favour
# a shift over the usual are past the geometric midpoint between them, so the midpoint (the square root of
# the shift's factor, 1.25 a bin) must reach the level. A route whose p99 tripled to just under the floor
# favours "every call 4x slower", not "8x" (midpoint 2.7x: 3x is barely past it) nor "44x". Nor is a
# fraction of calls far slower tested there: the upper calls of a route slowed to just under the floor
# land where "one call in twenty 18x slower" puts them (the quiet 3x route of the tests paged on it),
# and the calls of such a fraction are past the floor themselves, where the share past it counts them.
# Where the warning level is twice the usual p99, every shift is tested: the documented change is a
# doubling.
_MIDPOINT = np.array([float(_EDGES[1] / _EDGES[0]) ** (size / 2) for _, size in _SHIFTS])


def _reaching(level_ratio: np.ndarray, warning_ratio: float) -> np.ndarray:
    """Which shifts (the last axis) are tested per cell, given the warning level over the usual p99
    (``level_ratio``; NaN: none)."""
    ratio = np.nan_to_num(level_ratio, nan=np.inf)[..., None]
    return (ratio <= warning_ratio * (1 + 1e-9)) | ((ratio <= _MIDPOINT) & (np.arange(len(_SHIFTS)) < _WHOLE))


# Each call's evidence is that of a contaminated model, either way. The changed distribution admits 1%
# of calls as usual ones. The usual one admits as many calls of the changed shape as its trailing day
# of N calls cannot rule out: 3 in N (N calls in which a bin stayed empty put its probability under 3/N,
# 95% sure), never more than 1%. N counts the scope's calls of every size class that day, even where a
# call is weighed against its own class's: what slows a call for reasons of its own (a retried request,
# a stalled connection) slows it whatever its size, so each of the day's calls was a chance to show one,
# and the day of a thin scope's class (a few hundred calls) does not cap each call at ln 99 when the
# scope's day held a thousand (ln(N/3): latency's randomized seeds 1-2, recall 245 -> 247 of 256, no
# false page). So a call slower than any of the day's is evidence, not a certainty, and it is more
# evidence where the day held more calls (ln 99 nats up to 300 calls, about ln(N/3) at most past that).
# (1 in N: recall 87.7% instead of 86.6% on latency's randomized seeds 1-2, but a false page of longer
# answers.)
_CONTAMINATION = 0.01
_RULED_OUT = 3.0


# An hour of fewer calls than this places its p99 on fewer than 3 calls past it: a scope whose trailing
# day averages fewer an hour takes its usual p99 from the day's calls pooled.
_THIN_HOUR_CALLS = 300
# The same hours a usual p99's median needs before it is read from them rather than the trailing day.
_SAME_HOUR_DAYS = 3


def _same_hour_calls(
    hourly: pd.DataFrame,
    dims: Sequence[str],
    scopes: list[Scope],
    index: pd.DatetimeIndex,
    least: float,
    keys: tuple[np.ndarray, list[Scope]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The calls of the same hour of the ``BASELINE_DAYS`` previous days together, and how many of those
    days' hours have a value on ``least`` calls or more (the hours ``hourly_baseline``'s median of an
    hourly quantile frame is taken over), per (minute of ``index``, scope). ``keys``: the frame's
    ``_scope_keys``, if known."""
    hours = index.floor("h")
    distinct = hours.unique()
    calls, days = np.zeros((2, len(distinct), len(scopes)))
    column = _scope_columns(hourly, dims, scopes, keys)
    stamps, counts = pd.DatetimeIndex(hourly["hour"]), hourly["calls"].to_numpy(dtype=float)
    valued = (counts >= least) & hourly["value"].notna().to_numpy()
    for back in range(1, BASELINE_DAYS + 1):
        row = distinct.get_indexer(stamps + pd.Timedelta(days=back))
        inside = (row >= 0) & (column >= 0)
        _add_at(calls, (row[inside], column[inside]), counts[inside])
        _add_at(days, (row[inside], column[inside]), valued[inside].astype(float))
    at_minute = distinct.get_indexer(hours)
    return calls[at_minute], days[at_minute]


def _pooled_p99(bins: np.ndarray) -> np.ndarray:
    """The p99 (ms) of histograms (... x bins, as ``_bins`` gives them), interpolated geometrically
    within the bin it falls in (the edges are 1.25x apart); NaN where they hold no call."""
    total = bins.sum(axis=-1)
    above = total[..., None] - np.cumsum(bins, axis=-1)  # calls past each bin's upper end
    target = _TAIL_SHARE * total[..., None]
    k = np.minimum((above <= target).argmax(axis=-1), len(_EDGES))  # the bin holding the p99
    lower = np.take_along_axis(np.concatenate([_EDGES[:1] / 1.25, _EDGES]), k.ravel(), 0).reshape(k.shape)
    upper = np.take_along_axis(np.concatenate([_EDGES, _EDGES[-1:]]), k.ravel(), 0).reshape(k.shape)
    inside = np.take_along_axis(bins, k[..., None], axis=-1)[..., 0]
    past = np.take_along_axis(above, k[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        # The share of the bin's calls below the p99, placed evenly in log duration across it.
        position = np.clip(np.nan_to_num(1 - (target[..., 0] - past) / inside, nan=1.0), 0.0, 1.0)
    value = lower * (upper / lower) ** position
    return np.where(total > 0, value, np.nan)


# A size class is compared with its own trailing day once that day has this many of its calls.
CLASS_LEARNING_CALLS = 50


def _trailing_bins(
    hourly: pd.DataFrame,
    dims: Sequence[str],
    count: str,
    column: str,
    scopes: list[Scope],
    minutes: pd.DatetimeIndex,
    keys: tuple[np.ndarray, list[Scope]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The usual durations (x ``scopes`` x bins) the minutes use, once per distinct one, from an hourly
    tails frame: the bins of the 24 whole hours ending ``BASELINE_LAG`` or more before a minute change
    only when an hour rolls (a scan has three); and which of them each minute uses. ``keys``: the
    frame's ``_scope_keys``, if known."""
    first = (minutes[0] - BASELINE_LAG).floor("h") - pd.Timedelta(hours=24)
    hours = pd.date_range(first, minutes[-1].floor("h") + pd.Timedelta(hours=1), freq="1h", inclusive="left")
    last = np.clip((minutes - BASELINE_LAG - hours[0]) // pd.Timedelta(hours=1), 0, len(hours))
    ends, hour_of = np.unique(np.asarray(last), return_inverse=True)
    known, counts, past, _ = _histograms(hourly, dims, count, column, hours, "hour", keys=keys)
    if not known:
        return np.zeros((len(ends), len(scopes), len(_EDGES) + 1), dtype=np.float32), hour_of
    at = {scope: i for i, scope in enumerate(known)}
    columns = np.array([at.get(scope, -1) for scope in scopes], dtype=np.int64)
    bins = _bins(counts, past)[:, np.maximum(columns, 0)] * (columns >= 0)[None, :, None]
    totals = np.concatenate([np.zeros((1, *bins.shape[1:]), dtype=np.float32), np.cumsum(bins, axis=0)])
    return totals[ends] - totals[np.maximum(ends - 24, 0)], hour_of


def _bins(calls: np.ndarray, past: np.ndarray) -> np.ndarray:
    """Calls per duration bin (<= first edge, between edges, > last edge) from the calls and the calls
    past each edge (minutes x scopes x edges)."""
    below = calls[..., None].astype(np.float32) - past[..., :1]
    return np.maximum(np.concatenate([below, past[..., :-1] - past[..., 1:], past[..., -1:]], axis=-1), 0)


def _scope_keys(frame: pd.DataFrame, dims: Sequence[str]) -> tuple[np.ndarray, list[Scope]]:
    """Each row's scope (an index into the returned scopes) of a tails frame, by ``dims``, the scopes in
    the order they first appear: each column factorized on its own and the codes combined (a MultiIndex
    of the columns factorized as one is several times slower)."""
    combined = np.zeros(len(frame), dtype=np.int64)
    levels = []
    for dim in dims:
        column = frame[dim]  # categories of text (``HistoryCache``'s) need no copy as text
        codes, uniques = pd.factorize(
            column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype(str)
        )
        if len(codes) and codes.min() < 0:  # a missing value: as a MultiIndex factorizes it
            codes, keys = pd.factorize(pd.MultiIndex.from_frame(frame[list(dims)].astype(str)))
            return codes, [_tail_scope(dims, key) for key in keys]
        combined = combined * len(uniques) + codes
        levels.append(np.asarray(uniques, dtype=object))
    codes, used = pd.factorize(combined)
    values = []
    for uniques in reversed(levels):
        used, position = np.divmod(used, len(uniques))
        values.append(uniques[position])
    return codes, [_tail_scope(dims, key) for key in zip(*reversed(values), strict=True)]


def _tail_scope(dims: Sequence[str], key: Sequence[str]) -> Scope:
    return tuple((d, v) for d, v in zip(dims, key, strict=True) if not (d == TENANT and v == ""))


def _edge_counts(frame: pd.DataFrame, column: str, rows: np.ndarray) -> np.ndarray:
    """The histogram column's counts past each edge of ``rows`` (rows x edges, float32): the query
    gives each row's as a list, read as integers first (twice as fast as stacking the lists)."""
    held = fixed_lists(frame[column])  # the cache holds it as one array
    if held is not None:
        return held[rows].astype(np.float32)
    values = frame[column].to_numpy()[rows]
    if not len(values):
        return np.zeros((0, len(_EDGES)), dtype=np.float32)
    return np.array(values.tolist(), dtype=np.uint64).astype(np.float32)


def _histograms(
    frame: pd.DataFrame,
    dims: Sequence[str],
    count: str,
    column: str,
    index: pd.DatetimeIndex,
    time: str = "minute",
    sums: Sequence[str] = (),
    keys: tuple[np.ndarray, list[Scope]] | None = None,
) -> tuple[list[Scope], np.ndarray, np.ndarray, np.ndarray]:
    """The scopes of a tails frame, and per (row of ``index`` x scope) its calls, its calls past each
    edge (x edges: summed straight into arrays, the histograms are many columns) and the sums of the
    scalar columns ``sums`` (x sums). ``keys``: the frame's ``_scope_keys``, if known."""
    if frame.empty:
        return (
            [], np.zeros((len(index), 0)), np.zeros((len(index), 0, len(_EDGES)), dtype=np.float32),
            np.zeros((len(index), 0, len(sums))),
        )  # fmt: skip
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=1)
    offsets = (pd.DatetimeIndex(frame[time]) - index[0]) // step
    inside = np.asarray((offsets >= 0) & (offsets < len(index)))
    codes, scopes = keys or _scope_keys(frame, dims)
    calls = np.zeros((len(index), len(scopes)))
    past = np.zeros((len(index), len(scopes), len(_EDGES)), dtype=np.float32)
    totals = np.zeros((len(index), len(scopes), len(sums)))
    cells = (np.asarray(offsets)[inside], codes[inside])
    _add_at(calls, cells, frame[count].to_numpy(dtype=float)[inside])
    _add_at(totals, cells, frame[list(sums)].to_numpy(dtype=float)[inside])
    if inside.any():
        _add_at(past, cells, _edge_counts(frame, column, inside))
    return scopes, calls, past, totals


def _add_at(out: np.ndarray, cells: tuple[np.ndarray, ...], values: np.ndarray) -> None:
    """``np.add.at(out, cells, values)`` into a zeroed ``out`` (``cells`` index its leading axes; repeated
    cells sum in the order given, as ``np.add.at`` sums them), without its per-element cost: one
    ``bincount`` per trailing column."""
    if not len(values) or not out.size:
        return
    leading = out.shape[: len(cells)]
    flat = np.ravel_multi_index(cells, leading)
    size = int(np.prod(leading))
    columns = out.reshape(size, -1)
    assert np.shares_memory(columns, out), "out must be contiguous: its cells are added into in place"
    ordered = np.sort(flat)
    if not (ordered[1:] == ordered[:-1]).any():
        # Each cell once (a tails frame at its own scope: a row per minute and scope): its values added
        # where they go, in float64 as ``bincount`` sums them (0 + v is v) and stored in ``out``'s type,
        # the same values, without a pass over the whole grid per trailing column (a scan's histograms:
        # 41 passes over minutes x scopes for a few rows per cell).
        columns[flat] = columns[flat] + values.reshape(len(values), -1).astype(np.float64)
        return
    for j, column in enumerate(values.reshape(len(values), -1).T):
        columns[:, j] += np.bincount(flat, weights=column, minlength=size)


def _scope_sums(
    frame: pd.DataFrame,
    dims: Sequence[str],
    scopes: list[Scope],
    columns: Sequence[str],
    rows: np.ndarray | None = None,
    keys: tuple[np.ndarray, list[Scope]] | None = None,
) -> np.ndarray:
    """The sums of scalar ``columns`` of a tails frame over all its rows (or those of the mask ``rows``,
    in the frame's order: the sums of ``frame[rows]``), per scope of ``scopes`` (x columns); scopes the
    frame lacks sum to 0. ``keys``: the frame's ``_scope_keys``, if known."""
    out = np.zeros((len(scopes), len(columns)))
    if frame.empty:
        return out
    column = _scope_columns(frame, dims, scopes, keys)
    counted = column >= 0 if rows is None else (column >= 0) & rows
    _add_at(out, (column[counted],), frame[list(columns)].to_numpy(dtype=float)[counted])
    return out


def _scope_columns(
    frame: pd.DataFrame,
    dims: Sequence[str],
    scopes: list[Scope],
    keys: tuple[np.ndarray, list[Scope]] | None = None,
) -> np.ndarray:
    """Per row of a tails frame, the position of its scope in ``scopes`` (-1 where absent). ``keys``: the
    frame's ``_scope_keys``, if known."""
    codes, found = keys or _scope_keys(frame, dims)
    at = {scope: i for i, scope in enumerate(scopes)}
    return np.array([at.get(scope, -1) for scope in found], dtype=np.int64)[codes]


def _tail_keys(history: History, frame: pd.DataFrame, dims: Sequence[str]) -> tuple[np.ndarray, list[Scope]]:
    """``_scope_keys(frame, dims)`` once per evaluation (held with the frame, so its id stays its own): the
    hourly tails are keyed once for the size lines of every hour a scan uses, not once per hour."""
    held = history.derived.setdefault("tail_keys", {})
    assert isinstance(held, dict)
    key = (id(frame), tuple(dims))
    if key not in held:
        held[key] = (frame, _scope_keys(frame, dims))
    return held[key][1]


# Where the calls under the first edge (100 ms) go when they slow down is unknown: the histogram stops
# there. Moved whole a shift's bins up, a call still under 100 ms during a slowdown weighed ln(1/100)
# against it, as much as a call of the usual body, and a few of them mid-incident resolved it (ttft_slo,
# randomized seed 12 i102: a flap). Under a slowdown of a factor s, 1/s of them stay under 100 ms, as
# calls spread evenly over 0-100 ms would (a log-normal's thinning lower tail keeps fewer): a call under
# 100 ms weighs ln s against the slowdown, and as much for a recovery against half of it, not ln 100.
# The rest is placed where each test errs safe. A recovery spreads it evenly over the bins up to the
# shift's (a call a slowdown moved into 100-125 ms weighed ln 100 for the recovery against a 1.56x one:
# 6 of 10 draws of a fast route slowed 2x reached clear). The changed shapes a page is weighed for keep
# it in the shift's bin, as a log-normal's thin lower tail nearly does: spread evenly under "every call
# 44x slower", a route of 100 ms slowed 3x, under the 1 s floor, looked like it and paged.
_STILL_FAST = float(_EDGES[0] / _EDGES[1])


def _slower(shares: np.ndarray, fraction: float, bins: int, spread: bool = False) -> np.ndarray:
    """The bin shares when ``fraction`` of the calls take ``bins`` bins longer (the slowest bin keeps
    what passes it; the open-below first bin keeps ``_STILL_FAST ** bins`` of its share, the rest goes
    to the bin ``bins``, or with ``spread`` over the bins up to it, evenly over the durations they
    hold)."""
    moved = np.zeros_like(shares)
    if bins:
        moved[..., bins:] = shares[..., : shares.shape[-1] - bins]
        moved[..., -1] += shares[..., shares.shape[-1] - bins :].sum(axis=-1)
        if spread:
            moved[..., bins] -= shares[..., 0]
            # Bin j <= bins holds 0-100 ms x 1.25^j of the slowed 0-100 ms x 1.25^bins, less those below.
            upper = _STILL_FAST ** -np.arange(bins + 1)
            moved[..., : bins + 1] += shares[..., :1] * np.diff(upper, prepend=0.0) * _STILL_FAST**bins
        else:
            kept = shares[..., 0] * _STILL_FAST**bins
            moved[..., 0] += kept
            moved[..., bins] -= kept
    else:
        moved = shares
    return (1 - fraction) * shares + fraction * moved


def _halfway_shift(fraction: float, bins: int) -> tuple[float, int]:
    """The change a recovery from ``(fraction, bins)`` is weighed against: half the bins of every call
    slower, rounded up (half of 3 bins rounded down, 1.25x, gets a quarter of the evidence 1.56x gets
    from a usual call: a route back to usual proved it over hundreds of calls, hours on a thin route,
    once a call under 100 ms no longer weighed ln 100 for it), or half the calls."""
    return (fraction, (bins + 1) // 2) if fraction == 1 else (fraction / 2, bins)


def _shift_evidence(
    bins: np.ndarray,
    usual_bins: np.ndarray,
    usual_of: np.ndarray,
    scope_of: np.ndarray,
    ruled_calls: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of histogram ``bins`` (rows x bins), the evidence for each of ``_SHIFTS`` (multinomial,
    against the usual distribution ``usual_bins[usual_of, scope_of]``), the recovery evidence against
    the change halfway to it, and what a changed row of as many calls gives (rows x shifts each).
    ``ruled_calls`` (distinct ones x scopes): the calls of the day that rule out calls of the changed
    shape (``_RULED_OUT``), where more than the usual distribution's own.

    ``usual_bins`` holds each distinct usual distribution once (distinct ones x scopes x bins: they
    change when an hour rolls): the log-ratios of the shifted distributions are computed once per
    distinct one, not per row, and read only at the bins a row has calls in (a row holds a few calls:
    most of its bins are empty)."""
    known = usual_bins.sum(axis=-1, keepdims=True)
    usual = (usual_bins + 0.05) / (known + 0.05 * usual_bins.shape[-1])
    ruled = known if ruled_calls is None else np.maximum(ruled_calls[..., None], known)
    unknown = np.minimum(_CONTAMINATION, _RULED_OUT / np.maximum(ruled, 1))

    def log_ratio(fraction: float, size: int, spread: bool = False) -> tuple[np.ndarray, np.ndarray]:
        moved = _slower(usual, fraction, size, spread)
        changed = (1 - _CONTAMINATION) * moved + _CONTAMINATION * usual
        base = (1 - unknown) * usual + unknown * moved
        return np.log(changed / base), changed

    ratios, halfways, per_call = [], [], []
    for fraction, size in _SHIFTS:
        ratio, changed = log_ratio(fraction, size)
        ratios.append(ratio)
        halfways.append(-log_ratio(*_halfway_shift(fraction, size), spread=True)[0])
        per_call.append((changed * ratio).sum(axis=-1))
    row, column = np.nonzero(bins)
    calls_in = bins[row, column].astype(np.float64)[:, None]
    cells = (usual_of[row], scope_of[row], column)
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) if len(row) else np.zeros(0, dtype=np.int64)

    def per_row(table: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(bins), len(table)))
        if len(row):
            out[row[starts]] = np.add.reduceat(calls_in * np.stack(table, axis=-1)[cells], starts, axis=0)
        return out

    expected = bins.sum(axis=-1, dtype=np.float64)[:, None] * np.stack(per_call, axis=-1)[usual_of, scope_of]
    return per_row(ratios), per_row(halfways), expected


def _midpoint(usual: np.ndarray, changed: np.ndarray) -> np.ndarray:
    return (usual + changed) / 2


def calls_past(counts: np.ndarray, level_ms: np.ndarray) -> np.ndarray:
    """Calls slower than each cell's level (minutes x scopes), from the histogram (minutes x scopes x
    edges): between two edges, interpolated on the log of the duration, so the level is the level and
    not the next edge up (up to 25% higher: a p99 that doubled would never pass "twice the usual")."""
    level = np.nan_to_num(level_ms, nan=np.inf)
    index = np.searchsorted(_EDGES, level, side="left")
    beyond = index >= len(_EDGES)
    upper = np.minimum(index, len(_EDGES) - 1)
    lower = np.maximum(upper - 1, 0)
    past_upper = np.take_along_axis(counts, upper[..., None], axis=-1)[..., 0]
    past_lower = np.take_along_axis(counts, lower[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        along = np.log(level / _EDGES[lower]) / np.log(_EDGES[upper] / _EDGES[lower])
    along = np.where(upper > lower, np.clip(np.nan_to_num(along, nan=1.0), 0.0, 1.0), 1.0)
    picked = past_lower + (past_upper - past_lower) * along
    return np.where(beyond, 0.0, picked)
