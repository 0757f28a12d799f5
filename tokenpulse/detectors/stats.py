"""The statistics kernel under the detectors: how much evidence a scope's recent minutes give that it
moved away from its own baseline. Pure numpy, no I/O, vectorized over (minutes x scopes).

The model, in the words an on-call engineer checks against a chart:

- Every minute of a scope adds *evidence*: the log-likelihood ratio of "the scope changed by a
  meaningful amount" against "the scope is as usual", given the calls the minute holds. A minute with
  many calls weighs a lot; a minute with two calls weighs little; a minute without calls adds nothing
  (no traffic is no evidence, either way).
- Evidence accumulates minute by minute (a CUSUM: it sums, and restarts from zero whenever the scope
  looks usual again). An alert fires when it reaches the *evidence threshold*; so a strong signal on a
  thin scope pages within minutes, a weak one on a busy scope pages when it is real, noise does not.
- The threshold comes from a false-alarm budget that counts the tests: with S scopes each tested every
  minute, ``h = ln(S x minutes in the budget)`` makes a false page rarer than one per budget, whatever
  S (the CUSUM's average run to a false alarm is at least e^h minutes: Wald's bound).
- A firing alert resolves on evidence the other way: the scope must look usual rather than changed
  (by the change going on: the one that fired it, or a weaker one its minutes show) for as much
  evidence as ``clear_evidence`` (ln 1,000 by default), and on a minute that looks usual — a partial
  recovery does not resolve it, a lull whose next minute speaks for a change again does not, and empty
  minutes never do.

Shares (timeouts, uncached calls, escalations) are binomial counts; overdispersion (a hiccup upstream
failing many calls of the same minute, users retrying in a row) is measured on the scope's own history
as an intra-minute correlation and divides each minute's evidence by 1 + (n - 1) rho: a busy minute
counts for less than its calls alone would say. Ratios of sums (a
hit ratio) are counted the same way, a minute of n calls at ratio r as r x n hits in n draws.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MINUTES_PER_DAY = 1440

# A minute "still speaks for the change" when it gives at least this much evidence (nats) for it, or
# half what a changed minute is expected to give if that is less (a thin scope's minutes): one incident
# minute of a thin scope does (a timeout in 2 calls where 1% is usual: 3 nats), a minute after a blip
# with one stray timeout in 15 calls does not (0.02), nor one in 5 calls where 2% is usual (1.3 nats for
# 25x the odds: a stray after a tool's blip confirmed the blip's alarm at 1 nat).
_STILL_CHANGED = 2.0

# A paging alarm's recovery's minutes together favour the usual over each weaker change by this much (a
# likelihood ratio of e^2): not merely as likely, which a few lucky minutes of a scope that sits at the
# weaker change are (24 calls at 59% hits where 50% went on, halfway to a 30% drop 55%).
_RECOVERED = 2.0

# The share alarms' ``blip_margin`` (``sequential_alarm``): a blip explains a run unless the change
# explains it better by this much. The blip is fitted after the fact (where its minutes fall, how many up
# to the floor, and its size), the change is one of those tested, so the blip's best fit flatters it, as
# a model with more parameters fits better by chance (about a nat each). Measured on the randomized
# benchmark's tuning seeds (451-462, all shares and hit ratios): 2 and 3 nats alike for recall, 3 with
# fewer false pages (19 against 23 in 14,400 scope-days). The tails' alarms take it too: their evidence is
# a share's (calls past the level, fractions of calls slower).
SHARE_BLIP_MARGIN = 3.0

# A share is never taken as exactly 0 or 1 (the log-likelihood ratio would be infinite).
_SHARE_FLOOR = 1e-4


def merge_overlapping(ranges: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """[start, end) ranges sorted, empty ones dropped, overlapping or touching ones merged."""
    merged: list[tuple[Any, Any]] = []
    for start, end in sorted(ranges):
        if not start < end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def evidence_threshold(scopes: int, budget_days: float) -> float:
    """The evidence (in nats) a scope needs to page, for at most one false page per ``budget_days``
    across ``scopes`` scopes each tested every minute (against a mixture of effect sizes: see
    ``sequential_alarm``)."""
    tests = max(scopes, 1) * budget_days * MINUTES_PER_DAY
    return math.log(max(tests, math.e))


def odds_shift(share: np.ndarray, odds_ratio: float) -> np.ndarray:
    """The share whose odds are ``odds_ratio`` times those of ``share`` (1% x4 -> 3.9%, 50% x4 -> 80%)."""
    share = np.clip(share, _SHARE_FLOOR, 1 - _SHARE_FLOOR)
    odds = share / (1 - share) * odds_ratio
    return odds / (1 + odds)


def halfway(share: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """The share halfway between ``share`` and ``changed`` on the log-odds scale."""
    p0 = np.clip(share, _SHARE_FLOOR, 1 - _SHARE_FLOOR)
    p1 = np.clip(changed, _SHARE_FLOOR, 1 - _SHARE_FLOOR)
    odds = np.sqrt(p0 / (1 - p0) * p1 / (1 - p1))
    return odds / (1 + odds)


def binomial_evidence(
    successes: np.ndarray, trials: np.ndarray, usual: np.ndarray, changed: np.ndarray, dispersion: np.ndarray
) -> np.ndarray:
    """Log-likelihood ratio of share ``changed`` against ``usual`` for ``successes`` in ``trials``, per
    cell, divided by the scope's ``dispersion`` (a quasi-likelihood: 1 for a binomial scope, more where
    its history varies more than a binomial would). Empty cells give 0."""
    p0 = np.clip(usual, _SHARE_FLOOR, 1 - _SHARE_FLOOR)
    p1 = np.clip(changed, _SHARE_FLOOR, 1 - _SHARE_FLOOR)
    failures = trials - successes
    llr = successes * np.log(p1 / p0) + failures * np.log((1 - p1) / (1 - p0))
    return np.where(trials > 0, llr / dispersion, 0.0)


def poisson_evidence(
    counts: np.ndarray, usual: np.ndarray, changed: np.ndarray, dispersion: np.ndarray
) -> np.ndarray:
    """Log-likelihood ratio of rate ``changed`` against ``usual`` (per minute) for ``counts`` in a minute,
    divided by the scope's ``dispersion``. A minute without calls is evidence here: it is the count."""
    rate0 = np.maximum(usual, 1e-6)
    rate1 = np.maximum(changed, 1e-6)
    return (counts * np.log(rate1 / rate0) - (rate1 - rate0)) / dispersion


def session_evidence(
    counts: np.ndarray, usual: np.ndarray, changed: np.ndarray, sessions: np.ndarray, wander: np.ndarray
) -> np.ndarray:
    """Log-likelihood ratio of rate ``changed`` against ``usual`` (calls a minute) for ``counts`` in a
    minute whose calls come in sessions of ``sessions`` calls at a rate that wanders by ``wander``
    (``count_dispersion``): the sessions are negative binomial, mean rate / sessions and shape
    1 / wander, kept by a drop (spans lost at random keep a wandering rate's shape). Its variance is the
    dispersion's, as ``poisson_evidence``'s is, which it is without wander; with wander, the tail is the
    negative binomial's: a quarter hour without calls is less likely under the usual than a variance
    alone says (the sessions' rate would have had to fall to nothing). Empty minutes are evidence."""
    rate0 = np.maximum(usual, 1e-6) / sessions
    rate1 = np.maximum(changed, 1e-6) / sessions
    drawn = counts / sessions
    # (y + 1/b) ln((1 + b m0) / (1 + b m1)), which is m0 - m1 as b goes to 0 (Poisson sessions).
    step = wander * (rate0 - rate1) / (1 + wander * rate1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_wander = np.where(np.abs(step) > 1e-12, np.log1p(step) / step, 1.0 - step / 2)
    scale = (rate0 - rate1) / (1 + wander * rate1) * per_wander
    return drawn * np.log(rate1 / rate0) + (drawn * wander + 1) * scale


def gamma_evidence(
    total: np.ndarray, calls: np.ndarray, usual: np.ndarray, changed: np.ndarray, dispersion: np.ndarray
) -> np.ndarray:
    """Log-likelihood ratio of a per-call mean ``changed`` against ``usual`` for a minute whose ``calls``
    sum to ``total``, per cell: a Gamma quasi-likelihood whose squared coefficient of variation per call
    is the scope's ``dispersion`` (measured on its history: ``mean_excess``). Empty cells give 0.

    A minute's mean is taken at most ``_MOST_MEAN_RATIO`` times the usual: one enormous call (a
    heavy-tailed prompt, a long answer) is evidence, but not unbounded evidence."""
    mean0 = np.maximum(usual, 1e-12)
    mean1 = np.maximum(changed, 1e-12)
    observed = np.minimum(
        np.where(calls > 0, total / np.maximum(calls, 1e-12), 0.0), _MOST_MEAN_RATIO * mean1
    )
    llr = calls * (np.log(mean0 / mean1) + observed * (1 / mean0 - 1 / mean1))
    return np.where(calls > 0, llr / dispersion, 0.0)


# A minute's mean counts as at most this many times the changed level tested (see gamma_evidence).
_MOST_MEAN_RATIO = 4.0


def mean_excess(total: np.ndarray, calls: np.ndarray, half_window: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """What each minute says of how much a per-call quantity varies: calls x (minute mean / local mean
    - 1)^2, an estimate of the squared coefficient of variation per call (the local mean is over the
    minutes within ``half_window``, so a slow drift over the day adds nothing), and a 1 per minute with
    calls. Summed over a history, their ratio is the scope's dispersion (``mean_dispersion``)."""
    local_total, local_calls = _local(total, half_window), _local(calls, half_window)
    with np.errstate(divide="ignore", invalid="ignore"):
        local = local_total / local_calls
        terms = calls * (total / calls / local - 1) ** 2
    counted = (calls > 0) & (local > 0)
    return np.where(counted, np.nan_to_num(terms), 0.0), counted.astype(float)


# Pseudo-minutes of an exponential per-call spread (squared coefficient of variation 1) a measured
# dispersion is shrunk with; and its bounds (0.1: a quantity that barely varies still varies by 30%).
_SPREAD_PRIOR_MINUTES, _LEAST_SPREAD, _MOST_SPREAD = 30.0, 0.1, 25.0


def mean_dispersion(excess: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """A per-call quantity's squared coefficient of variation from summed ``mean_excess`` over a history,
    shrunk towards 1 (exponential) while the history is thin."""
    spread = (excess + _SPREAD_PRIOR_MINUTES) / (minutes + _SPREAD_PRIOR_MINUTES)
    return np.clip(np.nan_to_num(spread, nan=1.0), _LEAST_SPREAD, _MOST_SPREAD)


def _local(values: np.ndarray, half_window: int) -> np.ndarray:
    """Sums of ``values`` over the minutes within ``half_window`` of each minute."""
    rows = values.shape[0]
    index = np.arange(rows)
    high, low = np.clip(index + half_window + 1, 0, rows), np.clip(index - half_window, 0, rows)
    totals = cumulative(values)
    return totals[high] - totals[low]


def share_excess(
    successes: np.ndarray, trials: np.ndarray, half_window: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """What each minute says of how much its calls move together: its Pearson term around the scope's
    *local* share (over the minutes within ``half_window``) minus 1, and its pairs of calls (n - 1).

    A beta-binomial minute of n calls with intra-minute correlation rho has an expected Pearson term of
    1 + (n - 1) rho, so summed excess over summed pairs estimates rho: how much more than binomial a
    minute varies, growing with its calls (a hiccup upstream times out many calls of the same minute).
    A share that drifts slowly over the day (the baseline's business) adds nothing. Minutes with fewer
    than two calls say nothing."""
    terms = _pearson_terms(successes, trials, half_window)
    counted = trials >= 2
    return np.where(counted, terms - 1, 0.0), np.where(counted, trials - 1, 0.0)


def _pearson_terms(successes: np.ndarray, trials: np.ndarray, half_window: int) -> np.ndarray:
    """Each minute's Pearson term around the scope's local share (over the minutes within
    ``half_window``); 0 without calls."""
    local_successes, local_trials = _local(successes, half_window), _local(trials, half_window)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(local_successes / local_trials, _SHARE_FLOOR, 1 - _SHARE_FLOOR)
        return np.nan_to_num((successes - trials * share) ** 2 / (trials * share * (1 - share)))


def call_spread_terms(
    successes: np.ndarray, trials: np.ndarray, half_window: int = 15
) -> tuple[np.ndarray, ...]:
    """What each minute says of how much a single call's part varies, for a part that is a fraction of
    each call (a hit ratio: the share of its prompt a call read from cache), and of how much its calls
    move together beyond that: its Pearson term around the scope's local share (as ``share_excess``), its
    square and a 1, where it has calls; its Pearson term, its pairs of calls (n - 1) and a 1, where it
    has pairs. Summed over a history: ``call_spread``, then ``burstiness`` of the paired terms less the
    spread (``ratio_dispersions``)."""
    terms = _pearson_terms(successes, trials, half_window)
    called, paired = trials >= 1, trials >= 2
    called_terms, paired_terms = np.where(called, terms, 0.0), np.where(paired, terms, 0.0)
    return (
        called_terms, called_terms**2, called.astype(float),
        paired_terms, np.where(paired, trials - 1, 0.0), paired.astype(float),
    )  # fmt: skip


# Pseudo-minutes of Bernoulli calls a measured call spread is shrunk with, and the least it is taken to be.
_CALL_SPREAD_PRIOR_MINUTES, _LEAST_CALL_SPREAD = 120.0, 0.02


def call_spread(terms: np.ndarray, squares: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """A call's variance relative to a yes/no draw at its share (the quasi-binomial's dispersion of one
    call, at most 1), from the sums of ``call_spread_terms`` over a history: the mean Pearson term of its
    minutes, shrunk towards 1 while the history is short, two standard errors up (a spread read off a
    few rare misses is not trusted to be small).

    A call that reads 88% of its prompt from cache or nothing varies far less than a coin at 88%: a
    reads-only provider counts the uncached suffix of every call in its input, so a warm route's calls
    all sit near the same ratio. Counting them as coins would ask for dozens of times the calls to see
    its cache collapse."""
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.sqrt(np.maximum(squares / minutes - (terms / minutes) ** 2, 0.0) / minutes)
        mean = (terms + _CALL_SPREAD_PRIOR_MINUTES) / (minutes + _CALL_SPREAD_PRIOR_MINUTES)
    return np.clip(np.nan_to_num(mean + 2 * error, nan=1.0), _LEAST_CALL_SPREAD, 1.0)


def ratio_dispersions(
    sums: Sequence[np.ndarray], usual: np.ndarray, size: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two readings of the spread of a minute of ``size`` + 1 calls whose part is a fraction of each call,
    from the summed ``call_spread_terms`` over a history (a call's own spread, and the pairs' correlation
    rho measured beyond it):

    - its dispersion at the ``usual`` level: spread + (n - 1) rho (a minute's Pearson term there);
    - the ceiling v its calls reach when they hit, taken as draws of all or nothing (a call at most v and
      r on average varies r (v - r), a coin at r r (1 - r) times the spread: v = r + spread (1 - r)),
      and the dispersion of its calls counted as hits of v: 1 + (n - 1) rho / spread.

    A reads-only provider counts a warm call's uncached suffix in its input: the call reads its prefix
    or nothing, say 81% of its input, and its spread is small where it usually hits (0.3 of a coin's at
    88%) and larger where it misses more (0.7 at 41%). The first reading holds at the usual level only;
    counted as hits of v, the calls weigh what they hold at every level. A scope whose calls each hit
    their whole input has a ceiling of 1. NaN ``usual`` (no baseline): a ceiling of 1."""
    terms, squares, minutes, paired_terms, pairs, paired = sums
    spread = call_spread(terms, squares, minutes)
    correlation = burstiness(paired_terms - spread * paired, pairs)
    ceiling = np.clip(np.nan_to_num(usual + spread * (1 - usual), nan=1.0), _LEAST_CALL_SPREAD, 1.0)
    return dispersion(size, correlation, spread), ceiling, dispersion(size, correlation / spread)


def block_excess(counts: np.ndarray, block: int = 15, half_window: int = 4) -> tuple[np.ndarray, ...]:
    """``block_terms`` placed on the grid, each block's on its last minute (the other minutes 0): the
    sums ``count_dispersion`` fits on, per minute."""
    out = [np.zeros(counts.shape) for _ in range(5)]
    rows = counts.shape[0] - counts.shape[0] % block
    for grid, values in zip(out, block_terms(counts, block, half_window), strict=True):
        grid[block - 1 : rows : block] = values
    return tuple(out)


def block_terms(counts: np.ndarray, block: int = 15, half_window: int = 4) -> tuple[np.ndarray, ...]:
    """What a scope's history says of how much more its calls vary than Poisson *over the span evidence
    accumulates on*: for each block of ``block`` minutes (placed on its last minute), the Pearson term of
    the block's calls around the mean of the ``half_window`` blocks either side, minus 1 (``excess``),
    with the local rate m (calls a minute) it was measured at. Calls come in sessions, so minutes are
    not independent: the variance of a quarter hour, not of a minute, is what a CUSUM summing minutes
    meets. Returned as the sums ``count_dispersion`` fits on, per block (blocks x scopes, the grid's
    whole blocks): 1 for every block with calls around, m, m^2, excess and excess x m."""
    rows = counts.shape[0] - counts.shape[0] % block
    sums = counts[:rows].reshape(-1, block, counts.shape[1]).sum(axis=1)
    # The mean of the blocks around that the grid holds (fewer at its edges, which a fixed divisor would
    # read as a collapse of the rate, and a burst).
    around = _local(np.ones((sums.shape[0], 1)), half_window)
    local = _local(sums, half_window) / around
    with np.errstate(divide="ignore", invalid="ignore"):
        # A block is part of its own local mean, which takes 1 / around of its variance away.
        pearson = np.nan_to_num((sums - local) ** 2 / local) / (1 - 1 / np.maximum(around, 2))
    counted = local > 0
    # A surge (a marketing email, a load test) is a few blocks far out of their neighbours' line, not the
    # scope's variance: each block's term is capped at the 99th percentile of what the scope's typical
    # block says (a Pearson term is about dispersion x chi-square(1), median 0.455, 99th 6.63).
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a scope without a counted block: no cap
        typical = np.nanmedian(np.where(counted, pearson, np.nan), axis=0) / 0.455
    pearson = np.minimum(pearson, 6.63 * np.maximum(np.nan_to_num(typical, nan=np.inf), 1.0))
    rate = np.where(counted, local / block, 0.0)
    excess = np.where(counted, pearson - 1, 0.0)
    return counted.astype(float), rate, rate**2, excess, excess * rate


def silence_terms(counts: np.ndarray, rate: np.ndarray, block: int = 15) -> tuple[np.ndarray, ...]:
    """What a scope's history says of how often its minutes are empty: per block of ``block`` minutes
    (blocks x scopes, as ``block_terms``, whose local ``rate`` of calls a minute it takes), the minutes
    that follow an empty minute, those of them empty too, and the local rate summed over the first; then
    the same of all minutes. Calls in sessions that span minutes leave a minute empty less often than a
    quarter hour's variance says a negative binomial minute would be (``silence_clusters``, on either
    three)."""
    rows = counts.shape[0] - counts.shape[0] % block
    empty = counts[:rows] == 0
    after = np.zeros(empty.shape, dtype=bool)
    after[1:] = empty[:-1]

    def per_block(minutes: np.ndarray) -> np.ndarray:
        return minutes.reshape(-1, block, counts.shape[1]).sum(axis=1).astype(float)

    followers = per_block(after)
    minutes = np.full(rate.shape, float(block))
    return followers, per_block(after & empty), followers * rate, minutes, per_block(empty), minutes * rate


# Pseudo-minutes, all of them silent, a scope's silent runs are shrunk with: a history with few empty
# minutes is not trusted to show how rarely they run on.
_SILENT_PRIOR_MINUTES = 2.0


def silence_clusters(followers: np.ndarray, silent: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """From three of ``silence_terms`` summed over a history: clusters of calls a minute arrive at theta x
    the rate, so a minute (after an empty one, or any) is empty with probability exp(-theta x rate). theta is
    -ln(silent share) / mean rate, at most 1 (Poisson calls). Measured at the mean rate, it is the lower
    (exp is convex): the evidence of silence it gives is never more than the history shows."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (silent + _SILENT_PRIOR_MINUTES) / (followers + _SILENT_PRIOR_MINUTES)
        theta = np.nan_to_num(-np.log(share) / (exposure / followers), nan=0.0, posinf=0.0)
    return np.clip(theta, 0.0, 1.0)


# Pseudo-pairs of calls (or calls) of perfect calm an estimate of burstiness is shrunk with: a thin
# history is not trusted to be calm, nor to be bursty. And the most burstiness ever taken.
_CALM, _MOST_CORRELATION = 200.0, 0.5


def burstiness(excess: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """rho from summed ``share_excess`` over a history."""
    return np.clip(np.nan_to_num(excess / (weight + _CALM)), 0.0, _MOST_CORRELATION)


# Pseudo-blocks of Poisson calm a count's dispersion is shrunk with, and the most it is ever taken to be.
_CALM_BLOCKS, _MOST_DISPERSION = 8.0, 50.0


def count_dispersion(
    blocks: np.ndarray,
    rates: np.ndarray,
    squares: np.ndarray,
    excess: np.ndarray,
    excess_rates: np.ndarray,
    rate: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A count's variance relative to Poisson at ``rate`` calls a minute, from the sums of
    ``block_excess`` over a history, and its two parts: the session size 1 + a (calls that come in
    sessions, a constant factor whatever the rate) and the wander b (a rate that itself wanders, the
    negative binomial's: the variance a minute's rate adds, per call a minute), such that the dispersion
    is 1 + a + b x rate, fitted by least squares on the blocks, both at least 0, shrunk towards calm
    while the history holds few blocks. A dispersion past ``_MOST_DISPERSION`` is taken at that, all of
    it as sessions: a history that wild is not trusted to show the negative binomial's shape, and
    sessions alone (the quasi-Poisson) give the least evidence in the tail (``session_evidence``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = blocks / (blocks + _CALM_BLOCKS)
        mean_rate = rates / blocks
        spread = squares - rates * mean_rate
        slope = np.nan_to_num((excess_rates - excess * mean_rate) / spread)
        slope = np.maximum(slope, 0.0)
        base = np.nan_to_num((excess - slope * rates) / blocks)
        # A negative constant is no session clustering: the slope alone, through the origin.
        alone = np.nan_to_num(np.maximum(excess_rates, 0.0) / squares)
        slope = np.where(base < 0, alone, slope)
        base = np.maximum(base, 0.0)
    total = 1.0 + shrink * (base + slope * rate)
    capped = total > _MOST_DISPERSION
    sessions = np.where(capped, _MOST_DISPERSION, 1.0 + shrink * base)
    wander = np.where(capped, 0.0, shrink * slope)
    return np.minimum(total, _MOST_DISPERSION), sessions, wander


def dispersion(size: np.ndarray, burst: np.ndarray, spread: np.ndarray | float = 1.0) -> np.ndarray:
    """The variance of a minute's share relative to binomial: spread + (n - 1) rho (pass ``size`` = n -
    1; ``spread``: a call's own, 1 for a yes/no draw, ``call_spread`` for a fraction of each call)."""
    return spread + np.maximum(size, 0.0) * burst


def pooled_hours(
    hour_part: np.ndarray, hour_total: np.ndarray, day_part: np.ndarray, day_total: np.ndarray, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """A share's counts at the same hours of previous days, pooled with its trailing day's: the day's share
    as a prior of the hours' (pseudo-calls added to both counts), so that a thin scope's few hundred
    calls at those hours, whose timeouts put its usual anywhere within a factor of two, lean on the day's
    ten times as many.

    The hours' share is taken to vary around the day's by ``spread`` times the day's share (a standard
    deviation: the time of day moves a share by about that much), or by as much more as the hours' own
    share strays from the day's beyond their sampling error (a route that times out three times as often
    at its peak keeps its peak's level), plus the day's own sampling error; the prior is worth as many
    calls as have that variance (a Beta prior, by its moments). A day without calls adds nothing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        day = (day_part + 0.5) / (day_total + 1)  # Jeffreys: a day without a timeout is not a share of 0
        binomial = day * (1 - day)
        day_error = binomial / (day_total + 1)
        strays = (np.nan_to_num(hour_part / hour_total, nan=0.0) - day) ** 2 - binomial / hour_total
        variance = np.maximum((spread * day) ** 2, np.nan_to_num(strays - day_error)) + day_error
        calls = np.maximum(binomial / variance - 1, 0.0)
    calls = np.where(day_total > 0, np.nan_to_num(calls), 0.0)
    return hour_part + calls * day, hour_total + calls


def informative_alternatives(
    usual: np.ndarray, changed: np.ndarray, calls: np.ndarray, threshold: float, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which of a share's alternatives (``changed``: ... x alternatives, weakest first, against ``usual``)
    a mixture should weigh, given the most calls a minute the scope may have (``calls``): the
    mixture's weights (1 / kept on the kept ones) and, for each alternative, the one that stands in for
    it (its index: itself where kept, else the nearest kept one, the weaker on a tie).

    A mixture pays ln(1 / weight) for the alternative that explains the minutes, so an alternative that
    cannot page is paid for by the others: one whose evidence, were it true, would not reach
    ``threshold`` within ``horizon`` minutes (a change of 1.5x the odds of a 2% share takes 14 hours at
    5 calls a minute, 3x two and a half: a quiet route's mixture is of 8x and 25x, ln 2 where it was
    ln 4). The evidence a call is expected to give for its own alternative is their Kullback-Leibler
    divergence, taken without a dispersion (an upper bound: no alternative that might page is left
    out). The weights depend only on the baseline and the traffic before a run, so the mixture remains
    a likelihood ratio under the usual. The strongest alternative is kept wherever none can page."""
    count = changed.shape[-1]
    one = np.ones_like(usual)
    per_call = [binomial_evidence(changed[..., k], one, usual, changed[..., k], one) for k in range(count)]
    kept = np.stack([gain * calls * horizon >= threshold for gain in per_call], axis=-1)
    kept[..., -1] |= ~kept.any(axis=-1)
    index = np.arange(count)
    # Each alternative's stand-in: the nearest kept one (the weaker on a tie: a hair added per index).
    stand_in = np.zeros(changed.shape, dtype=np.int64)
    nearest = np.full(changed.shape, np.inf)
    for k in range(count):
        distance = np.where(kept[..., k : k + 1], np.abs(index - k) + k * 1e-3, np.inf)
        closer = distance < nearest
        stand_in = np.where(closer, k, stand_in)
        nearest = np.where(closer, distance, nearest)
    return stand_in, kept / kept.sum(axis=-1, keepdims=True)


def wilson_bounds(successes: np.ndarray, trials: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of successes / trials at ``z`` standard deviations (NaN without trials)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = successes / trials
        centre = share + z * z / (2 * trials)
        spread = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
        scale = 1 + z * z / trials
        return (centre - spread) / scale, (centre + spread) / scale


# A level an alarm must reach before it pages: numerator, denominator and level per (minute, scope) -
# the ratio of the sums since the alarm's run began is at least the level - and, optionally, the
# numerator's variance per (minute, scope): then the numerator must pass the level by one standard
# deviation of its sum (a level read off a few noisy minutes is not reached).
Level = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class AnyLevel:
    """Levels of which any one reached is enough: one documented level read two ways (a user's spend
    since the change began against what as many of their active minutes usually cost, or against what
    as many of their calls usually cost)."""

    levels: tuple[Level, ...]


def sequential_alarm(
    evidence: np.ndarray,
    recovery: np.ndarray,
    threshold: float,
    clear: float,
    min_minutes: int = 1,
    expected: np.ndarray | None = None,
    levels: Sequence[Level | AnyLevel] = (),
    weights: np.ndarray | None = None,
    lasting_on_a_minute: bool = False,
    weaker_by_clear: bool = False,
    lasting_unless_denied: bool = False,
    blip_margin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the alarm of every scope over the minutes, with hysteresis.

    ``evidence`` (minutes x scopes x alternatives, alternatives from the weakest change to the
    strongest) is each minute's log-likelihood ratio of each alternative against the usual. Outside an
    alarm, a CUSUM per alternative accumulates it; the alarm starts when, over the run of one of them,
    the *mixture* of the alternatives (the log of their mean likelihood ratio, ``mixture_evidence``)
    reaches ``threshold``. The mixture is a likelihood ratio itself, so the threshold's bound holds for
    it as for one alternative: testing k alternatives costs at most ln(k) nats, and less where several
    explain the minutes (an effect between two of them counts the evidence of both). ``weights`` (same
    shape, summing to 1 over the alternatives): the mixture's weights, where not equal
    (``informative_alternatives``).
    ``recovery`` (same shape) is each minute's log-likelihood ratio of the usual against a level
    between the usual and each alternative (halfway, on the log-odds scale).
    It *pages* once it has been on for ``min_minutes`` and its last informative minute still speaks for the
    change its run makes likeliest (not necessarily the one that fired it) — gives at least half the evidence
    a changed minute is ``expected`` to give (same shape as ``evidence``; default: the evidence itself), or
    ``_STILL_CHANGED`` nats: a blip that is over sooner, however intense, never pages, and an alarm not
    confirmed within twice ``min_minutes`` is dropped as a blip (its evidence starts again from zero). It also
    waits until the ratio of sums since the change began (where the run of the change its minutes make
    likeliest began, not the run that fired) reaches each of ``levels`` (a documented level, a business floor:
    see ``Level``; an ``AnyLevel``, one of its levels); and until a blip shorter than the floor does not
    explain its run as well as a change that goes on (``_blip_explains``): a stray bursty minute after a blip
    does not outweigh the usual minutes around it; and then its "last informative minute" is its latest
    minutes that together are (``_pooled``), and it is dropped as a blip only once its minutes since it fired
    were expected to show a change that goes on (a thin scope's four minutes of a call or two do not tell one
    from a blip); its latest minutes past those a blip explains may also confirm it by speaking for a weaker
    change than the likeliest (``_weaker_goes_on``): a change between two of those tested goes on; with
    ``lasting_on_a_minute`` too, an alarm whose run no blip explains (a change that lasted) is confirmed by
    its latest minute alone: the pooled minutes of a thin change that goes on may deny it by chance; with
    ``lasting_unless_denied`` instead, an alarm whose run no blip explains pages once it has been on for
    ``min_minutes`` unless its minutes since it fired speak against the change and every weaker one: a change
    that lasted need not wait for a minute that shows it again (a thin share's minutes seldom give half a
    change's expected evidence: randomized timeout_surge seed 454 i183, 16% of ~10 calls a minute timing out
    where 3% is usual, fired 8x the odds, and its next minutes gave -0.2 to 0.6 nats for it, so it paged two
    minutes after the oracle's 14), and a blip is never taken for one. A blip explains a run unless the change
    explains it better by ``blip_margin`` nats (``SHARE_BLIP_MARGIN``: the blip's fit flatters it). Once
    paging, it pages until the alarm ends, so a spend that hovers at a floor does not page, resolve and page
    again. Inside the alarm, the recovery evidence against the halfway level of each alternative accumulates
    (a CUSUM each) and the alarm ends when the one of the change going on reaches ``clear`` over at least
    ``min_minutes`` minutes with calls, on a minute that looks usual rather than halfway to it or to any
    weaker alternative (as a page waits for a minute that still speaks for the change), and with its
    recovery's minutes together likelier under the usual than under any of those changes by ``_RECOVERED``
    (but for a weaker change the minutes between the page and the recovery showed unlikelier than the one
    going on by ``clear``): the scope is back to usual, not merely a little better, nor for a moment, and a
    lull does not end the alarm on a minute that speaks for a change again. The change going on is the
    alternative that fired (or the one the run makes likeliest when it pages, if weaker); once paging, a
    weaker one if the minutes between the page and its recovery's run showed the page's to be larger than the
    one going on (a weaker alternative likelier by ``clear``, the page's not likelier than the usual by as
    much: the scope was short of halfway to it). With ``weaker_by_clear``, the recovery's minutes must favour
    the usual by ``clear``, not ``_RECOVERED``, over each weaker change that the minutes between the page and
    the recovery showed likelier than the usual by ``clear`` without showing it unlikelier than the one going
    on by as much: a change the minutes cannot tell from the one going on, short of halfway to it. Then every
    CUSUM starts again from zero. Minutes without calls add nothing, so they neither start nor end an alarm.

    Returns, per minute and scope: whether the alarm pages after the minute, the minute the change
    began while it is on (the onset, as an index; else the first minute of the strongest CUSUM's run),
    and whether its last ``min_minutes`` minutes give evidence for the change that fired it (a change
    that is current, not evidence that has yet to be outweighed).
    """
    # Most scopes never reach the threshold: their CUSUMs alone give what they return. The alarm's full
    # run (every scope on its own, the same operations) is taken only for the others.
    paging, onset, current, reaches = _never_fired(evidence, threshold, min_minutes)
    live = np.flatnonzero(reaches)
    if live.size:
        scopes = evidence.shape[1]
        paging[:, live], onset[:, live], current[:, live] = _alarm_run(
            evidence[:, live],
            recovery[:, live],
            threshold,
            clear,
            min_minutes,
            None if expected is None else expected[:, live],
            [_level_columns(level, live, scopes) for level in levels],
            None if weights is None else weights[:, live],
            lasting_on_a_minute,
            weaker_by_clear,
            lasting_unless_denied,
            blip_margin,
        )
    return paging, onset, current


def _never_fired(
    evidence: np.ndarray, threshold: float, min_minutes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What ``sequential_alarm`` returns for each scope whose CUSUMs never reach ``threshold`` (it never
    fires: it never pages, its onset is its strongest CUSUM's start, and the change it watches is the
    weakest), and which scopes reach it (their returns here are not theirs)."""
    minutes, scopes, _ = evidence.shape
    every = np.arange(scopes)
    paging = np.zeros((minutes, scopes), dtype=bool)
    onset = np.zeros((minutes, scopes), dtype=np.int64)
    cusum = np.zeros(evidence.shape[1:])
    started = np.zeros(evidence.shape[1:], dtype=np.int64)
    reaches = np.zeros(scopes, dtype=bool)
    for t in range(minutes):
        summed = cusum + evidence[t]
        cusum = np.maximum(summed, 0.0)
        started = np.where(summed <= 0, t + 1, started)
        strongest = cusum.argmax(axis=1)
        reaches |= cusum[every, strongest] >= threshold
        onset[t] = started[every, strongest]
    weakest = np.concatenate([np.zeros((1, scopes)), np.cumsum(evidence[..., 0], axis=0)])
    current = weakest[1:] - weakest[np.maximum(np.arange(1, minutes + 1) - min_minutes, 0)] > 0
    return paging, onset, current, reaches


def _level_columns(level: Level | AnyLevel, columns: np.ndarray, scopes: int) -> Level | AnyLevel:
    """``level`` on ``columns`` of its scopes only (a level's value per minute alone, the same for
    every scope, is kept whole)."""

    def of_columns(one: Level) -> Level:
        return tuple(part[:, columns] if part.ndim > 1 and part.shape[1] == scopes else part for part in one)

    return (
        AnyLevel(tuple(map(of_columns, level.levels))) if isinstance(level, AnyLevel) else of_columns(level)
    )


def _alarm_run(
    evidence: np.ndarray,
    recovery: np.ndarray,
    threshold: float,
    clear: float,
    min_minutes: int,
    expected: np.ndarray | None,
    levels: Sequence[Level | AnyLevel],
    weights: np.ndarray | None,
    lasting_on_a_minute: bool,
    weaker_by_clear: bool,
    lasting_unless_denied: bool,
    blip_margin: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sequential_alarm``'s run, minute by minute, of every scope given."""
    minutes, scopes, _ = evidence.shape
    alternatives = np.arange(evidence.shape[2])
    reached = _reached(levels, scopes)
    every = np.arange(scopes)
    paging = np.zeros((minutes, scopes), dtype=bool)
    onset = np.zeros((minutes, scopes), dtype=np.int64)
    current = np.zeros((minutes, scopes), dtype=bool)
    cusum = np.zeros(evidence.shape[1:])
    started = np.zeros(evidence.shape[1:], dtype=np.int64)
    back = np.zeros(evidence.shape[1:])
    since = np.zeros(evidence.shape[1:])  # each change's evidence since the page
    before_back = np.zeros((*evidence.shape[1:], evidence.shape[2]))  # that, up to each recovery's run
    usual_for = np.zeros(evidence.shape[1:], dtype=np.int64)
    on = np.zeros(scopes, dtype=bool)
    paged = np.zeros(scopes, dtype=bool)
    fired = np.zeros(scopes, dtype=np.int64)  # the alternative that started the alarm
    resolves_from = np.zeros(scopes, dtype=np.int64)  # the alternative the recovery is weighed against
    run_start = np.zeros(scopes, dtype=np.int64)
    fired_at = np.zeros(scopes, dtype=np.int64)
    still = np.zeros(scopes, dtype=bool)  # the last minute with calls spoke for the change (``speaks``)
    totals = np.concatenate([np.zeros((1, *evidence.shape[1:])), np.cumsum(evidence, axis=0)])
    # What a change would be expected to give, cumulated (see the drop of a blip below).
    informed = cumulative(expected) if expected is not None else None
    for t in range(minutes):
        off = ~on[:, None]
        summed = cusum + evidence[t]
        cusum = np.where(off, np.maximum(summed, 0.0), cusum)
        started = np.where(off & (summed <= 0), t + 1, started)
        strongest = cusum.argmax(axis=1)
        # The mixture never exceeds the strongest CUSUM: only scopes whose CUSUM reached the threshold
        # need it.
        near = np.flatnonzero(~on & (cusum[every, strongest] >= threshold))
        fire = np.zeros(scopes, dtype=bool)
        if near.size:
            mixture, likeliest = mixture_evidence(totals, t, started[near], near, weights)
            run = mixture.argmax(axis=1)
            fire[near] = mixture[np.arange(near.size), run] >= threshold
            strongest[near] = run
            fired[near] = np.where(fire[near], likeliest[np.arange(near.size), run], fired[near])
        run_start = np.where(fire, started[every, strongest], run_start)
        fired_at = np.where(fire, t, fired_at)
        resolves_from = np.where(fire, fired, resolves_from)
        # A recovery CUSUM per alternative (the one weighed may change while the alarm pages), with the
        # minutes with calls in a row it has lasted: a recovery must hold as long as a change had to before
        # it paged (two quiet minutes of a bursty scope are not a recovery).
        steps = recovery[t]
        back = np.where(on[:, None], np.maximum(back + steps, 0.0), 0.0)
        usual_for = np.where(back > 0, usual_for + (steps != 0), 0)
        # A paging alarm's recovery is weighed against halfway to the change its page chose, or, if the
        # minutes between the page and that recovery showed a weaker change to be the one going on, to the
        # largest change they did not: a weaker change likelier than it by as much as a resolution needs
        # (``clear``), while it was not likelier than the usual by as much (the scope was then past
        # halfway to it, the level its recovery is weighed against: on a quadratic log-likelihood, the
        # change is likelier than the usual exactly where the scope is past halfway). A first few bursty
        # minutes may make a larger change likeliest at the page than the one that goes on, and halfway
        # to the larger one is where the scope is while still changed (a 25% drop is halfway to a 50%
        # one): its recovery would resolve the alert, and the change go on paging. Before the page:
        # against the change that fired.
        weighed = resolves_from.copy()
        paging_now = np.flatnonzero(paged)
        if paging_now.size:
            # Each change's evidence since the page, and that up to the minute each recovery's run began
            # (the minutes a recovery is made of do not say what it recovers from): alternatives x
            # alternatives.
            since[paging_now] += evidence[t, paging_now]
            before_back[paging_now] = np.where(
                back[paging_now, :, None] > 0, before_back[paging_now], since[paging_now, None, :]
            )
            weighed[paging_now] = _going_on(before_back[paging_now], resolves_from[paging_now], clear)
        # A recovery resolves on a minute that looks usual rather than halfway to the change going on, nor
        # halfway to any weaker change tested (as a page waits for a minute that still speaks for the
        # change). A page may choose a larger change than the one going on (its run's bursty minutes tie
        # a 70% drop with a 90% one where 50% goes on, and a scope halfway to 90% is where a 50% drop
        # is): a lull then carries the recovery past ``clear`` in the minutes after the page, and a
        # minute back at the change, or one that still speaks for a weaker change, must not end it.
        # Alternatives not watched give no recovery (0) and do not hold it.
        under = np.arange(steps.shape[1]) <= weighed[:, None]
        looks_usual = (steps[every, weighed] > 0) & np.all((steps >= 0) | ~under, axis=1)
        # And the recovery's minutes together are likelier under the usual than under any of those changes
        # by ``_RECOVERED`` (their evidence since the recovery's run began is at most -``_RECOVERED``: not
        # merely as likely, which 24 lucky calls of a scope at the weaker change are), unless the minutes
        # between the page and that run showed the change going on likelier than it by ``clear`` (it is
        # not what goes on). A recovery that starts right after the page leaves no minutes to show the
        # page's change larger than the one going on (an 85% drop of traffic paged as 99.5% by 14 silent
        # minutes): halfway to the larger change, the one going on drifts the recovery up, and a few
        # busier minutes pass ``clear`` while together they still speak for a weaker change. The run
        # that fired is not asked: it was picked for its strength.
        shown = before_back[every, weighed]
        ruled_out = shown[every, weighed][:, None] - shown >= clear
        recovered = since - shown
        # Where a change shows in rare calls (one call in fifty far slower), each minute without one is a
        # fixed step of recovery evidence, and a change short of halfway to the one going on (2% of the
        # calls where the page's bursty first minutes chose 5%, halfway 2.5%) resolves in a lull (23
        # minutes at 12.6 calls a minute, one start in 300, and such a run has dozens) and pages again.
        # A weaker change its minutes showed and cannot tell from the one going on must itself be
        # outweighed by ``clear``, as the change going on's halfway level is: its lull is then as
        # unlikely as a false recovery from the change going on.
        bar = np.where(shown >= clear, -clear, -_RECOVERED) if weaker_by_clear else -_RECOVERED
        looks_usual &= np.all((recovered <= bar) | ~under | ruled_out, axis=1)
        # Before the page, nothing was announced: an alarm a blip fired ends as its recovery reaches
        # ``clear`` (kept on, a stray minute after the blip would confirm it).
        looks_usual |= ~paged
        held_back = (back[every, weighed] >= clear) & (usual_for[every, weighed] >= min_minutes)
        clears = on & held_back & looks_usual
        on = (on | fire) & ~clears
        # The change a minute must still speak for: the one the run makes likeliest so far, not the one
        # that fired (a first bursty minute may fire a larger change than the one going on, whose minutes
        # then speak against the larger one).
        speaks = (totals[t + 1] - totals[run_start, every]).argmax(axis=1)
        now = evidence[t][every, speaks]
        bar = np.abs(now) if expected is None else expected[t][every, speaks]
        weaker = np.zeros(scopes, dtype=bool)
        if informed is not None:
            # An alarm waiting to page: its latest minutes that together are informative (``_pooled``).
            which = np.flatnonzero(on & ~paged & ~fire & (bar > 0))
            if which.size:
                pooled = _pooled(totals, informed, t, speaks, fired_at, which, 2 * min_minutes)
                now[which], bar[which] = pooled
                # Minutes a blip shorter than the floor explains do not tell a change that goes on.
                blip_end = _strongest_window(totals, t, run_start, speaks, which, min_minutes - 1)[2]
                after = np.maximum(fired_at[which], blip_end - 1)
                weaker[which] = _weaker_goes_on(totals, informed, t, speaks, after, which, 2 * min_minutes)
        still = np.where(fire, True, np.where(bar > 0, now >= np.minimum(_STILL_CHANGED, bar / 2), still))
        held = t + 1 - fired_at
        # A run no blip explains is a change that lasted, confirmed before it could be dropped as a blip:
        # with ``lasting_on_a_minute`` by its latest minute alone (its pooled minutes can deny a thin
        # drop that goes on: randomized traffic_drop seed 281 i22, 2.2 calls a minute where 4.5 are
        # usual, fired 33 minutes in, paged on one such minute alone, never on its pooled minutes); with
        # ``lasting_unless_denied`` unless its minutes since it fired speak against the change and every
        # weaker one.
        lasting = np.flatnonzero(on & ~paged & ~fire & ~still & (held >= min_minutes))
        if lasting.size and (lasting_on_a_minute or lasting_unless_denied):
            goes_on = np.zeros(lasting.size, dtype=bool)
            changes = speaks[lasting]
            if lasting_on_a_minute and expected is not None:
                bar_now = expected[t, lasting, changes]
                latest = evidence[t, lasting, changes]
                goes_on |= (bar_now > 0) & (latest >= np.minimum(_STILL_CHANGED, bar_now / 2))
            if lasting_unless_denied:
                since_fired = totals[t + 1, lasting] - totals[fired_at[lasting] + 1, lasting]
                goes_on |= np.any((since_fired > 0) & (alternatives <= changes[:, None]), axis=1)
            candidates = np.zeros(scopes, dtype=bool)
            candidates[lasting[goes_on]] = True
            still |= candidates & ~_blip_explains(
                totals, t, run_start, speaks, candidates, min_minutes - 1, blip_margin
            )
        # A weaker change going on confirms the alarm; it does not keep an unconfirmed one from being
        # dropped as a blip (its evidence then starts again, and may fire the change that goes on).
        # The documented levels are checked on the calls since the change began: where the run of the
        # change its minutes make likeliest began (each change's CUSUM start; the likeliest change point
        # among them), not the run that fired. A weak change's CUSUM can climb for hours on a scope whose
        # trailing day reads its calls slightly off; a sudden change fires on top of it, and measured over
        # those hours of usual calls its level waits (randomized latency_p99_drift seed 2604 i60: every
        # call 7.5x slower, fired at +1 on a run begun 11 hours before, paged at +77 where the oracle
        # needs 12).
        likeliest_run = (totals[t + 1] - totals[started, every[:, None], alternatives]).argmax(axis=1)
        began = np.maximum(run_start, started[every, likeliest_run])
        confirmed = (still | weaker) & (held >= min_minutes) & reached(t, began)
        # Only alarms this minute would page: a paging one stays paged.
        due = confirmed & on & ~paged
        confirmed &= ~_blip_explains(totals, t, run_start, speaks, due, min_minutes - 1, blip_margin)
        # Once it pages, the change the run makes likeliest is the one a recovery must outweigh: a first
        # bursty minute may have fired a larger change, whose halfway level the scope can cross while it
        # is still changed (and then fire again).
        pages = np.flatnonzero(on & ~paged & confirmed)
        if pages.size:
            run = totals[t + 1, pages] - totals[run_start[pages], pages]
            resolves_from[pages] = np.minimum(fired[pages], run.argmax(axis=1))
            since[pages], before_back[pages] = 0.0, 0.0
        paged = on & (paged | confirmed)
        # An alarm that has not been confirmed within twice the floor was a blip: it is dropped, and a
        # later change has to build its evidence again (and hold the floor again) to page.
        blip = on & ~paged & ~still & (held >= 2 * min_minutes)
        if informed is not None:
            # Not before its minutes since the firing were expected to show a change that goes on: a thin
            # scope's four minutes of a call or two do not tell a blip from a change.
            shown = informed[t + 1, every, speaks] - informed[fired_at + 1, every, speaks]
            blip &= shown >= 2 * _STILL_CHANGED
        on &= ~blip
        clears |= blip
        cusum = np.where(clears[:, None], 0.0, cusum)
        started = np.where(clears[:, None], t + 1, started)
        paging[t] = paged
        onset[t] = np.where(on, began, started[every, strongest])
        recent = totals[t + 1, every, fired] - totals[max(t + 1 - min_minutes, 0), every, fired]
        current[t] = recent > 0
    return paging, onset, current


def _going_on(before_back: np.ndarray, chosen: np.ndarray, clear: float) -> np.ndarray:
    """The change going on, per paging alarm: the largest alternative at or under ``chosen`` (its page's
    choice) whose minutes between the page and its recovery's run (``before_back``: alarms x the
    recovery's alternative x each alternative's evidence) did not show a weaker one likelier by ``clear``
    unless they showed it likelier than the usual by as much; the weakest always."""
    alternatives = np.arange(before_back.shape[1])
    own = before_back[:, alternatives, alternatives]
    weaker = np.where(alternatives[:, None] > alternatives[None, :], before_back, -np.inf).max(axis=2)
    shown = (own >= clear) | (own >= weaker - clear) | (alternatives == 0)
    return np.where(shown & (alternatives <= chosen[:, None]), alternatives, 0).max(axis=1)


def _pooled(
    totals: np.ndarray,
    informed: np.ndarray,
    t: int,
    alternative: np.ndarray,
    fired_at: np.ndarray,
    which: np.ndarray,
    most: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The evidence for ``alternative`` over the latest minutes of each scope of ``which`` that together
    are informative, and what a change would be expected to give over them: minute t and the minutes
    before it while those after them are expected to give less than twice ``_STILL_CHANGED``, none of
    them the alarm's firing minute or before, at most ``most``. A busy scope's latest minute alone; a
    thin scope's few latest minutes together (a minute of a call or two: a timeout share of 20% leaves
    most of them without a timeout, which says little). ``totals``, ``informed``: the evidence and the
    expected evidence, cumulated (a leading zero row)."""
    rows = np.arange(t, max(t + 1 - most, 0) - 1, -1)[:, None]  # minute t first
    columns, alternatives = which[None, :], alternative[which][None, :]
    evidence = totals[rows + 1, columns, alternatives] - totals[rows, columns, alternatives]
    expected = informed[rows + 1, columns, alternatives] - informed[rows, columns, alternatives]
    later = informed[t + 1, which, alternative[which]] - informed[rows + 1, columns, alternatives]
    inside = (rows == t) | ((later < 2 * _STILL_CHANGED) & (rows > fired_at[which]))
    return (evidence * inside).sum(axis=0), (expected * inside).sum(axis=0)


def _strongest_window(
    totals: np.ndarray, t: int, starts: np.ndarray, likeliest: np.ndarray, which: np.ndarray, longest: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of each scope's run [start, t] of ``which``, for its ``likeliest`` alternative: the cumulative
    evidence at the run's minute boundaries (rows from the earliest start x scopes), the evidence of its
    strongest ``longest`` minutes or fewer in a row (-inf: none) and that window's end (exclusive; the
    start where there is none)."""
    first = int(starts[which].min())
    columns = np.arange(which.size)
    begins = starts[which] - first
    sums = totals[first : t + 2, which][:, columns, likeliest[which]]  # rows x scopes
    rows = np.arange(sums.shape[0])[:, None]
    strongest, end = np.full(which.size, -np.inf), begins.copy()
    for k in range(1, min(longest, sums.shape[0] - 1) + 1):
        # The windows [s, s + k) inside the run.
        windows = np.where(rows[:-k] >= begins, sums[k:] - sums[:-k], -np.inf)
        best = windows.argmax(axis=0)
        better = windows[best, columns] > strongest
        strongest = np.where(better, windows[best, columns], strongest)
        end = np.where(better, best + k, end)
    return sums, strongest, end + first


def _weaker_goes_on(
    totals: np.ndarray,
    informed: np.ndarray,
    t: int,
    likeliest: np.ndarray,
    after: np.ndarray,
    which: np.ndarray,
    most: int,
) -> np.ndarray:
    """Whether the latest informative minutes (as ``_pooled`` takes them, each alternative's own, none at
    ``after`` or before: one minute per scope of ``which``) of each scope of ``which`` give
    ``_STILL_CHANGED`` nats for a change weaker than its ``likeliest``, over two minutes with calls or
    more. A change between two of those tested (odds x2.1 on a busy route, where a bursty minute made x3
    likeliest) gives minutes that seldom show x3 the half of its expected evidence the page asks for, but
    speak for x1.5 together: it goes on. A blip that is over speaks for none of them: the minutes a blip
    explains are before ``after``, and a lone bursty minute after it (4 timeouts in 118 calls where 0.4%
    is usual) is what the blip rule judges against the likeliest change. The bar is the floor itself, not
    half a weaker change's expected evidence: that is a fraction of a nat on a thin scope, which one
    stray timeout gives."""
    speaks = np.zeros(which.size, dtype=bool)
    rows = np.arange(t, max(t + 1 - most, 0) - 1, -1)[:, None]  # minute t first
    for weaker in range(int(likeliest[which].max(initial=0))):
        stronger = likeliest[which] > weaker
        below = which[stronger]
        if not below.size:
            continue
        columns = below[None, :]
        evidence = totals[rows + 1, columns, weaker] - totals[rows, columns, weaker]
        expected = informed[rows + 1, columns, weaker] - informed[rows, columns, weaker]
        later = informed[t + 1, below, weaker] - informed[rows + 1, columns, weaker]
        inside = (rows > after[stronger]) & ((rows == t) | (later < 2 * _STILL_CHANGED))
        minutes = (inside & (expected > 0)).sum(axis=0)
        speaks[stronger] |= (minutes >= 2) & ((evidence * inside).sum(axis=0) >= _STILL_CHANGED)
    return speaks


def _blip_explains(
    totals: np.ndarray,
    t: int,
    starts: np.ndarray,
    likeliest: np.ndarray,
    scopes: np.ndarray,
    longest: int,
    margin: float = 0.0,
) -> np.ndarray:
    """Whether a blip explains each scope's run [start, t] as well as the change its run makes likeliest
    (``likeliest``: its index per scope) does: a blip (a change of any size that is over) of
    ``longest`` minutes or fewer in a row, at the size that fits them best, gives at least the evidence
    the change gives over the whole run, less ``margin``. So the run's minutes outside the blip speak
    against the change, or too little for it to outweigh how much better the blip's own size fits the
    blip: a 2-minute outage of a bursty route, then three minutes that give 2 nats for a 40% drop by
    chance, is an outage (99% fewer calls) that is over, not a 40% drop whose first minutes were deeper
    (randomized traffic_drop seed 293 c66, paged on a clean route). ``totals``: cumulative evidence (a
    leading zero row). Only for ``scopes`` (a mask); False elsewhere."""
    explains = np.zeros(scopes.shape, dtype=bool)
    which = np.flatnonzero(scopes)
    if not which.size or longest < 1:
        return explains
    changes = likeliest[which]
    run = totals[t + 1, which, changes] - totals[starts[which], which, changes]
    blip = np.zeros(which.size)
    for size in range(totals.shape[2]):
        fits = _strongest_window(totals, t, starts, np.full(likeliest.shape, size), which, longest)[1]
        blip = np.maximum(blip, fits)
    explains[which] = run < blip + margin
    return explains


def mixture_evidence(
    totals: np.ndarray, t: int, starts: np.ndarray, scopes: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The log of the alternatives' mean likelihood ratio over minutes [start, t] (scopes x runs, one run
    per alternative's CUSUM start), and the likeliest alternative over each run.

    ``totals`` are cumulative evidence (a leading zero row; minutes x scopes x alternatives). Under the
    usual, the mean of likelihood ratios is a likelihood ratio with expectation 1, so the CUSUM bound
    holds for it at ``threshold`` with no penalty for testing several alternatives; it is at least the
    strongest alternative's evidence less ln(alternatives). ``weights`` (minutes x scopes x alternatives,
    summing to 1): a weighted mean instead, each run weighed as at its first minute (weights known
    before the run keep it a likelihood ratio); an alternative of weight w costs at most ln(1 / w).
    """
    run = totals[t + 1, scopes][:, None, :] - totals[starts, scopes[:, None]]  # scopes x runs x alts
    top = run.max(axis=-1)
    if weights is None:
        mixture = top + np.log(np.exp(run - top[..., None]).mean(axis=-1))
        return mixture, run.argmax(axis=-1)
    weight = weights[np.minimum(starts, weights.shape[0] - 1), scopes[:, None]]  # scopes x runs x alts
    mixture = top + np.log((weight * np.exp(run - top[..., None])).sum(axis=-1))
    return mixture, np.where(weight > 0, run, -np.inf).argmax(axis=-1)


def _reached(levels: Sequence[Level | AnyLevel], scopes: int) -> Callable[[int, np.ndarray], np.ndarray]:
    """Whether, after minute t, the ratio of sums since each scope's run began is at least the level,
    for each of ``levels`` (for an ``AnyLevel``, for one of its levels): the documented levels (and
    business floors) a page waits for."""
    columns = np.arange(scopes)
    groups = [
        [
            (cumulative(top), cumulative(bottom), at_least, *(cumulative(v) for v in variance))
            for top, bottom, at_least, *variance in (level.levels if isinstance(level, AnyLevel) else [level])
        ]
        for level in levels
    ]

    def reached(t: int, start: np.ndarray) -> np.ndarray:
        every = np.ones(scopes, dtype=bool)
        for group in groups:
            anyone = np.zeros(scopes, dtype=bool)
            for tops, bottoms, at_least, *variances in group:
                top = tops[t + 1] - tops[start, columns]
                bottom = bottoms[t + 1] - bottoms[start, columns]
                margin = sum((np.sqrt(v[t + 1] - v[start, columns]) for v in variances), np.zeros(scopes))
                anyone |= (bottom > 0) & (top - at_least[t] * bottom >= margin)
            every &= anyone
        return every

    return reached


def window_sums(cumulative: np.ndarray, ends: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums over [starts, ends) of the rows whose cumulative sums (with a leading zero row) are given;
    ``starts``/``ends`` are row indices per cell (minutes x scopes), clipped to the grid."""
    rows = cumulative.shape[0] - 1
    ends = np.clip(ends, 0, rows)
    starts = np.clip(starts, 0, rows)
    columns = np.arange(cumulative.shape[1])[None, :]
    return cumulative[ends, columns] - cumulative[np.minimum(starts, ends), columns]


def cumulative(grid: np.ndarray) -> np.ndarray:
    """Cumulative sums along the minutes with a leading zero row (for ``window_sums``)."""
    if grid.dtype != np.float64:  # summed in its own type first (integers, booleans), then as floats
        return np.vstack([np.zeros((1, grid.shape[1])), np.cumsum(grid, axis=0)])
    # Summed into the result itself: no second week-long array to build and copy (the same sums).
    out = np.empty((grid.shape[0] + 1, *grid.shape[1:]))
    out[0] = 0.0
    cumsum_rows(grid, out[1:])
    return out


# Cells a row from which cumulative sums along the minutes are taken a row at a time (``cumsum_rows``):
# about where a row's call (under a microsecond) costs less than ``cumsum``'s strided walk of its columns.
ROW_WISE_FROM = 200


def cumsum_rows(grid: np.ndarray, out: np.ndarray) -> None:
    """``np.cumsum(grid, axis=0, out=out)``. A float grid of ``ROW_WISE_FROM`` cells a row or more is
    summed a row at a time (each row added to the sum of the rows before it): ``cumsum`` along the
    minutes walks each scope's column down the rows, a stride of a whole row per addition, and took 2-4x
    as long on a day of 600 scopes. The same additions in the same order (the first row copied, as
    ``cumsum`` starts from it): the same sums, bit for bit."""
    rows = grid.shape[0]
    if grid.dtype != np.float64 or rows < 2 or grid[0].size < ROW_WISE_FROM:
        np.cumsum(grid, axis=0, out=out)
        return
    out[0] = grid[0]
    add = np.add
    for k in range(1, rows):
        add(out[k - 1], grid[k], out=out[k])


# The same time of day on previous days: this many minutes either side.
SAME_HOURS = 60
