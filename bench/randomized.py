"""Randomized detection benchmark: incidents in scopes drawn across the range real teams have.

    python bench/randomized.py [--seeds 101 102] [--scopes 300] [--kinds timeout_surge ...] [--flat-sizes]

Per seed and detector, two days of per-minute traffic for ``--scopes`` incident scopes and as many clean
scopes are generated in memory, in the shape the detector's query returns, and run through the real
engine (``Engine.evaluate``: detector, alert state machine, inhibition) at 1-minute steps over day 2.

Traffic of a scope: calls a minute log-uniform in 0.3-500 with a diurnal swing of 1-10x (Poisson,
Gamma-mixed for burstiness); its usual level drawn across real ranges (timeout share 0-5%, uncached
share 0-70%, escalation 10-50%, hit ratio 0.2-0.98; reads-and-writes and reads-only cache shapes, warm
Anthropic minutes without writes) and moving ±20% over the day; per-minute overdispersion. Incidents
start on day 2 and last 30-120 minutes, with effects from barely visible to obvious (odds of a share x1.5
to x50; a hit ratio falling by 20-95%). Clean scopes carry the confounders: traffic surges of 3-5x, blips
of 1-3 minutes at full intensity, night troughs, brand-new scopes with a few hours of history.

Per-call means (prompt_growth, reasoning_blowup, tool_hidden_cost, cost_spike's users): each minute's
total is Gamma around calls x the usual mean (spread per call 0.2-4, a per-minute jitter of up to 30%);
incidents multiply the mean from the detector's documented level (2x, 5x, 10x, 3x) to ten times past it;
a user's surge is an 8-minute heavy session. Durations (latency_p99_drift, ttft_slo) are drawn call by
call into the detector's histogram bins: each call has a size (output tokens for latency, prompt tokens
for TTFT; log-normal, spread 0.3-1) and takes a per-scope base plus a per-token time x its size (the
size's part 20-90% of a median call's), times log-normal noise (spread 0.2-0.8); the usual p99 is 1-30 s
(TTFT 0.5-10 s); every scope, clean or not, has lone calls slow for reasons of their own (one in 5,000
to one in 500 calls, 5-50x slower: a retried request, a stalled connection). The frames carry the size
sums the tails queries return (``history.TAIL_SIZES``), which the detectors' size factor fits its line
on; ``--flat-sizes`` leaves them out (every call of one token), as a comparison. An incident moves the
p99 2-8x, by slowing every call or a 2-10% fraction of them; clean scopes may get longer answers
(prompts) for an hour: sizes 2-4x, durations on the line, not an incident ("longer answers" in the false
pages by confounder).

The oracle knows each scope's true usual level (its diurnal course included), the true changed level and
the true intra-minute correlation, and runs the optimal sequential test (a CUSUM of the exact
log-likelihood ratio, as a quasi-likelihood with the true dispersion; for means the Gamma sums, for
durations each call's bin against the bin probabilities of a call of its size, usual and changed, both
holding the scope's lone slow calls at their true rate: a test that paged on one of them would not keep
the budget) at the detector's own evidence threshold, with the detector's floor before paging (4
minutes; 10 for cost_spike). Its time to detect is the statistical limit the table compares with. Where
the detector pages on a documented level (a per-call mean past 2x, 5x, 10x or 3x its usual; more than 1%
of calls past twice the usual p99), the oracle checks the same level on the calls since its own evidence
run began before it pages: an incident whose p99 moved 2.02x has changed, but its calls seldom show it
past 2x. So does the business floor: a user's spend since the run began must reach cost_spike's $3/h
(``user_min_usd_per_hour``), as the detector's must.

Reported per detector: detection within 15 minutes by volume band x effect band; time to detect minus
the oracle's (median, p90); recall among incidents the oracle detects within 15 minutes; false pages
per 100 scope-days of clean traffic; flaps (resolved, then firing again, within one incident); detected
incidents resolved within 30 minutes of their end; pages per incident alerted (``bench/pages.py``: new
incidents its scope's firings opened through the real incident engine, from onset to 30 minutes after
its end; the scope alone, since every generated scope names the same service and model).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pages import count_pages  # bench/pages.py: the script's directory is on sys.path

from tokenpulse.detectors import stats
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.catalog.cost_spike import Settings as CostSpikeSettings
from tokenpulse.detectors.engine import Engine
from tokenpulse.detectors.evidence import calls_past
from tokenpulse.detectors.history import SIZE_CLASS, SIZE_CLASSES, TAIL_EDGES_MS, History, size_classes
from tokenpulse.detectors.state import FIRING, RESOLVED

DAY = 1440
MINUTES = 2 * DAY + 30
START = datetime(2026, 11, 1, tzinfo=UTC)
DETECT_WITHIN = 15
RESOLVE_WITHIN = 30  # minutes after the incident's end
FLOOR = 4  # minutes a change must be seen before it pages (the detectors' ``min_duration``)
VOLUME_BANDS = ((0.3, 3.0, "0.3-3/min"), (3.0, 30.0, "3-30/min"), (30.0, 501.0, "30-500/min"))


@dataclass
class Truth:
    """What the generator knows about one scope."""

    name: str
    volume: float
    incident: bool
    onset: int = -1
    end: int = -1
    effect: float = 0.0
    usual: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per minute
    changed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    calls: np.ndarray = field(default_factory=lambda: np.zeros(0))
    part: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kind: str = ""
    kind_dims: tuple[str, ...] = ()  # the scope's dimensions (a user's surge is a session)
    rho: float = 0.0  # intra-minute correlation of the per-minute counts (beta-binomial); 1/shape for calls
    spread: float = 1.0  # mean kinds: squared coefficient of variation per call
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0))  # tail kinds: minutes x duration bins
    # Tail kinds: each minute's log-likelihood ratio of its durations (binned), changed against usual,
    # given each call's size; and the size sums the tails queries return (``history.TAIL_SIZES``).
    duration_llr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sizes: dict[str, np.ndarray] = field(default_factory=dict)
    # tail kinds: the (minute, size class) pairs with calls (minute x SIZE_CLASSES + class), their bins
    by_size: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=np.int64), np.zeros((0, 0)))


def _calls(rng: np.random.Generator, volume: float, start: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Calls per minute: a diurnal course of up to 10x around ``volume``, Gamma-mixed Poisson; with the
    expected rate of each minute and the Gamma shape (small: bursty)."""
    swing = np.exp(rng.uniform(0, np.log(10)))
    phase = rng.uniform(0, 2 * np.pi)
    minutes = np.arange(MINUTES)
    course = np.exp(np.log(swing) / 2 * np.sin(2 * np.pi * minutes / DAY + phase))
    expected = volume * course / np.mean(course)
    burst = float(rng.uniform(2, 50))  # Gamma shape: small = bursty
    calls = rng.poisson(rng.gamma(burst, expected / burst)).astype(float)
    calls[:start] = 0
    expected[:start] = 0
    return calls, expected, burst


def _drifting(rng: np.random.Generator, level: float) -> np.ndarray:
    """A usual level that moves +-20% over the day."""
    phase = rng.uniform(0, 2 * np.pi)
    return level * (1 + 0.2 * np.sin(2 * np.pi * np.arange(MINUTES) / DAY + phase))


def _odds(share: np.ndarray, ratio: float) -> np.ndarray:
    return np.asarray(stats.odds_shift(np.clip(share, 1e-6, 1 - 1e-6), ratio))


def _beta_binomial(rng: np.random.Generator, calls: np.ndarray, share: np.ndarray, rho: float) -> np.ndarray:
    """Per-minute counts with overdispersion ``rho`` (intra-minute correlation)."""
    if rho <= 0:
        return rng.binomial(calls.astype(np.int64), np.clip(share, 0, 1)).astype(float)
    a = np.clip(share, 1e-6, 1 - 1e-6) * (1 / rho - 1)
    b = (1 - np.clip(share, 1e-6, 1 - 1e-6)) * (1 / rho - 1)
    return rng.binomial(calls.astype(np.int64), rng.beta(a, b)).astype(float)


@dataclass(frozen=True)
class Kind:
    """How one detector's traffic is drawn."""

    detector: str
    usual: Callable[[np.random.Generator], float]
    effects: tuple[float, float]  # odds ratio range (log-uniform), or drop range for ratios
    columns: tuple[str, str]  # part, total
    dims: tuple[str, ...]
    query: str
    ratio: bool = False
    count: bool = False  # the signal is the calls themselves (traffic_drop)
    mean: bool = False  # a per-call mean rises (tokens per call, cost per tool call): effects are factors
    tail: bool = False  # durations (latency): effects are how far the p99 moves
    floor: int = FLOOR  # minutes a change must be seen before the detector pages it (the oracle too)
    # A business floor the detector pages past, whatever the evidence (the oracle too): dollars an hour
    # spent since the change began (cost_spike's ``user_min_usd_per_hour``).
    usd_per_hour: float = 0.0
    # Tails: the duration ("latency" or "ttft"), the range of the scopes' usual p99 (ms) and of the median
    # size of their calls (output tokens for latency, prompt tokens for TTFT: what drives it).
    column: str = "latency"
    p99_ms: tuple[float, float] = (1000.0, 30_000.0)
    size_median: tuple[float, float] = (50.0, 1500.0)


KINDS = {
    "timeout_surge": Kind("timeout_surge", lambda r: r.uniform(0.0, 0.05), (1.5, 50.0),
                          ("timeouts", "calls"), ("service", "route"), "rollup"),
    "timeout_surge/tool": Kind("timeout_surge", lambda r: r.uniform(0.0, 0.05), (1.5, 50.0),
                               ("timeouts", "calls"), ("service", "tool"), "tool_spans:service, tool"),
    "cache_not_applied": Kind("cache_not_applied", lambda r: r.uniform(0.0, 0.7), (1.5, 50.0),
                              ("uncached_calls", "calls"), ("service", "route", "model"), "rollup"),
    "routing_escalation": Kind("routing_escalation", lambda r: r.uniform(0.1, 0.5), (1.5, 50.0),
                               ("escalated_calls", "calls"), ("service", "router"), "rollup"),
    "cache_hit_collapse": Kind("cache_hit_collapse", lambda r: r.uniform(0.2, 0.98), (0.2, 0.95),
                               ("cache_read_tokens", "cacheable_tokens"), ("service", "route", "model"),
                               "rollup", ratio=True),
    "traffic_drop": Kind("traffic_drop", lambda r: 1.0, (0.5, 1.0), ("calls", "calls"), ("service", "route"),
                         "rollup", count=True),
    # Per-call means, from their documented levels (2x input tokens, 5x reasoning, 10x cost per tool call)
    # to far past them; usual levels log-uniform over what real routes show.
    "prompt_growth": Kind("prompt_growth",
                          lambda r: float(np.exp(r.uniform(np.log(1500), np.log(60_000)))), (2.0, 20.0),
                          ("input_tokens", "calls"), ("service", "route"), "rollup", mean=True),
    "reasoning_blowup": Kind("reasoning_blowup",
                             lambda r: float(np.exp(r.uniform(np.log(1000), np.log(20_000)))), (5.0, 40.0),
                             ("reasoning_tokens", "calls"), ("service", "route", "model"), "rollup",
                             mean=True),
    "tool_hidden_cost": Kind("tool_hidden_cost",
                             lambda r: float(np.exp(r.uniform(np.log(0.002), np.log(0.1)))),
                             (10.0, 100.0), ("cost_usd", "tool_calls"), ("service", "tool"),
                             "tool_costs:service, tool", mean=True),
    # A user's spend (cost_spike's user rule): $1-100/h usually, 3-30x during a runaway loop.
    "cost_spike/user": Kind("cost_spike", lambda r: float(np.exp(r.uniform(np.log(1), np.log(100)))) / 60,
                            (3.0, 30.0), ("cost_usd", "calls"), ("service", "user"), "calls:service, user",
                            mean=True, floor=10, usd_per_hour=CostSpikeSettings().user_min_usd_per_hour),
    # Durations: p99 1-30 s; the p99 moves 2-8x, by the whole distribution or by a slow fraction of calls.
    "latency_p99_drift": Kind("latency_p99_drift", lambda r: 1.0, (2.0, 8.0), ("latency_over", "calls"),
                              ("service", "route", "model"), "tails:service, route, model, router",
                              tail=True),
    # Time to first token: p99 0.5-10 s, prompts of 500-50k tokens; the same moves of the p99.
    "ttft_slo": Kind("ttft_slo", lambda r: 1.0, (2.0, 8.0), ("ttft_over", "ttft_calls"), ("service", "route"),
                     "tails:service, route, model, router", tail=True, column="ttft",
                     p99_ms=(500.0, 10_000.0), size_median=(500.0, 50_000.0)),
}  # fmt: skip
EDGES = np.asarray(TAIL_EDGES_MS)
# quality_drop: the failed share of a scope's evaluations (judged answers a minute: a sampled judge's
# few to a busy route's every answer), usually 2-40% failing; an incident multiplies a failure's odds.
KINDS["quality_drop"] = Kind("quality_drop", lambda r: r.uniform(0.02, 0.4), (1.5, 50.0),
                             ("failures", "judged"), ("service", "route", "evaluation"),
                             "evaluations:verdicts")  # fmt: skip


def draw(kind: Kind, rng: np.random.Generator, name: str, incident: bool) -> Truth:
    """One scope of ``kind``: its traffic, and an incident or the confounders of clean traffic."""
    volume = float(np.exp(rng.uniform(np.log(0.3), np.log(500))))
    new = not incident and rng.random() < 0.15
    calls, rate, burst = _calls(rng, volume, start=int(rng.uniform(DAY - 300, DAY + 600)) if new else 0)
    if kind.count:
        return _draw_count(rng, Truth(name, volume, incident, usual=rate, calls=calls, rho=1 / burst), new)
    if kind.mean:
        return _draw_mean(kind, rng, Truth(name, volume, incident, calls=calls, kind_dims=kind.dims), new)
    if kind.tail:
        return _draw_tail(kind, rng, Truth(name, volume, incident, calls=calls), new)
    usual = np.clip(_drifting(rng, kind.usual(rng)), 0.0, 0.995)
    changed = usual.copy()
    truth = Truth(name, volume, incident, usual=usual, calls=calls)
    if incident:
        truth.onset = int(rng.uniform(DAY + 60, 2 * DAY - 150))
        truth.end = truth.onset + int(rng.uniform(30, 120))
        low, high = kind.effects
        if kind.ratio:
            truth.effect = float(rng.uniform(low, high))
            changed = usual * (1 - truth.effect)
        else:
            truth.effect = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            changed = _odds(usual, truth.effect)
        truth.changed = changed
    else:
        confounder = rng.choice(["surge", "blip", "none"])
        at = int(rng.uniform(DAY + 30, 2 * DAY - 60))
        if confounder == "surge":
            calls[at : at + 30] = rng.poisson(calls[at : at + 30] * rng.uniform(3, 5))
        elif confounder == "blip":
            length = int(rng.integers(1, 4))
            changed = usual.copy()
            changed[at : at + length] = usual[at] * 0.05 if kind.ratio else 0.9
        truth.changed = changed
        truth.kind = str(confounder) + (" new" if new else "")
    level = usual.copy()
    if incident:
        level[truth.onset : truth.end] = changed[truth.onset : truth.end]
    elif truth.kind.startswith("blip"):
        level = changed
    # Per-minute counts (timeouts, ...; for ratios, the calls that hit their cached prefix).
    truth.rho = float(rng.uniform(0, 0.02))
    truth.part = _beta_binomial(rng, calls, level, truth.rho)
    return truth


def _draw_count(rng: np.random.Generator, truth: Truth, new: bool) -> Truth:
    """traffic_drop's scope: its calls fall by ``effect`` (spans lost) during an incident; clean ones
    have surges, blips of 1-3 minutes without any call, and new scopes."""
    truth.changed = truth.usual.copy()
    if truth.incident:
        truth.onset = int(rng.uniform(DAY + 60, 2 * DAY - 150))
        truth.end = truth.onset + int(rng.uniform(30, 120))
        truth.effect = float(rng.uniform(*KINDS["traffic_drop"].effects))
        span = slice(truth.onset, truth.end)
        truth.changed[span] *= 1 - truth.effect
        truth.calls[span] = rng.binomial(truth.calls[span].astype(np.int64), 1 - truth.effect)
    else:
        confounder = str(rng.choice(["surge", "blip", "none"]))
        at = int(rng.uniform(DAY + 30, 2 * DAY - 60))
        if confounder == "surge":
            truth.calls[at : at + 30] = rng.poisson(truth.calls[at : at + 30] * rng.uniform(3, 5))
        elif confounder == "blip":
            truth.calls[at : at + int(rng.integers(1, 4))] = 0
        truth.kind = confounder + (" new" if new else "")
    truth.part = truth.calls
    return truth


def _incident_or_confounder(
    rng: np.random.Generator, truth: Truth, new: bool, more: tuple[str, ...] = ()
) -> tuple[slice, str]:
    """Where the incident is (or the clean scope's confounder: a surge, a blip, none, or one of
    ``more``, which the caller draws), and which confounder."""
    if truth.incident:
        truth.onset = int(rng.uniform(DAY + 60, 2 * DAY - 150))
        truth.end = truth.onset + int(rng.uniform(30, 120))
        return slice(truth.onset, truth.end), ""
    confounder = str(rng.choice(["surge", "blip", "none", *more]))
    at = int(rng.uniform(DAY + 30, 2 * DAY - 60))
    truth.kind = confounder + (" new" if new else "")
    if confounder == "surge":
        # A user's own surge is a heavy session (minutes); a route's or a tool's, a half hour of traffic.
        length = 8 if truth.name.startswith("c") and "user" in truth.kind_dims else 30
        truth.calls[at : at + length] = rng.poisson(truth.calls[at : at + length] * rng.uniform(3, 5))
    return slice(at, at + int(rng.integers(1, 4))), confounder


def _draw_mean(kind: Kind, rng: np.random.Generator, truth: Truth, new: bool) -> Truth:
    """A per-call mean: each minute's total is Gamma around calls x mean, with a per-call spread of 0.2-4
    (squared coefficient of variation) and a per-minute jitter of the mean (sessions differ)."""
    level = kind.usual(rng)
    if kind.detector == "cost_spike":  # the usual is a spend per minute: per call, spread over the calls
        level /= max(truth.volume, 1e-3)
    truth.usual = _drifting(rng, level)
    truth.spread = float(np.exp(rng.uniform(np.log(0.2), np.log(4.0))))
    truth.rho = float(rng.uniform(0, 0.3)) ** 2  # the jitter's variance (log scale)
    span, confounder = _incident_or_confounder(rng, truth, new)
    truth.changed = truth.usual.copy()
    level = truth.usual.copy()
    if truth.incident:
        low, high = kind.effects
        truth.effect = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        truth.changed = truth.usual * truth.effect
        level[span] = truth.changed[span]
    elif confounder == "blip":
        level[span] *= 10
    jitter = np.exp(np.sqrt(truth.rho) * rng.standard_normal(MINUTES) - truth.rho / 2)
    calls = truth.calls
    shape = np.where(calls > 0, calls / truth.spread, 1.0)
    truth.part = np.where(calls > 0, rng.gamma(shape, level * jitter * truth.spread), 0.0)
    return truth


def _bins(median: np.ndarray, sigma: float, slow_share: float = 0.0, slow_factor: float = 1.0) -> np.ndarray:
    """Probabilities of the duration bins (<= first edge, ..., > last edge) of a log-normal around each
    of ``median`` (... x bins), with ``slow_share`` of calls ``slow_factor`` times slower."""
    erf = np.vectorize(math.erf)

    def cdf(m: np.ndarray) -> np.ndarray:
        return 0.5 * (1 + erf((np.log(EDGES) - np.log(m)[..., None]) / sigma / math.sqrt(2)))

    median = np.asarray(median, dtype=float)
    mixed = (1 - slow_share) * cdf(median) + slow_share * cdf(median * slow_factor)
    ends = np.broadcast_to(np.array([0.0, 1.0]), (*median.shape, 2))
    return np.diff(np.concatenate([ends[..., :1], mixed, ends[..., 1:]], axis=-1), axis=-1)


def p99_of(bins: np.ndarray) -> float:
    """The p99 a bin distribution has (at the first edge past which at most 1% of calls are)."""
    beyond = 1 - np.cumsum(bins)[:-1]
    return float(EDGES[np.argmax(beyond <= 0.01)])


BINS = len(EDGES) + 1
SIZE_GRID = 256  # sizes the oracle's per-call likelihoods are tabulated at (log-spaced: 1-3% apart)
SAMPLE = 20_000  # calls of a scope's usual mix its p99 (and an incident's slow factor) is set on


# Calls slow for reasons of their own (a retried request, a stalled connection): in every scope, clean or
# not, this share of calls (log-uniform per scope: one in 5,000 to one in 500) takes this many times longer
# (log-uniform per call). They are the "single slow calls" clean traffic has, and the oracle knows them:
# an optimal test that paged on one of them would not keep the false-alarm budget.
OUTLIER_RATES = (2e-4, 2e-3)
OUTLIER_FACTORS = (5.0, 50.0)


def _outliers(rng: np.random.Generator, calls: int, rate: float) -> np.ndarray:
    """Each of ``calls`` calls' factor: 1, or for a share ``rate`` of them, log-uniform in OUTLIER_FACTORS."""
    slow = rng.random(calls) < rate
    return np.where(slow, np.exp(rng.uniform(*np.log(OUTLIER_FACTORS), calls)), 1.0)


def _shares(durations: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(EDGES, durations), minlength=BINS) / len(durations)


def _slowed(sample: np.ndarray, share: float, factor: float, quantile: float | None = 0.99) -> Any:
    """``sample`` with its first ``share`` (a random part: the sample is drawn at random) ``factor``
    times slower; its ``quantile``, or the whole of it without one."""
    slow = int(share * len(sample))
    mixed = np.concatenate([sample[:slow] * factor, sample[slow:]])
    return mixed if quantile is None else float(np.quantile(mixed, quantile))


def _draw_tail(kind: Kind, rng: np.random.Generator, truth: Truth, new: bool) -> Truth:
    """Durations of calls of varied sizes. A call's size (output tokens for latency, prompt tokens for
    TTFT) is log-normal around the scope's median (``kind.size_median``, spread 0.3-1); its duration is a
    per-scope base plus a per-token time x its size (the size's part 20-90% of a median call's), times
    log-normal noise (spread 0.2-0.8); scaled so that the scope's usual p99 is in ``kind.p99_ms``. An
    incident moves the p99 2-8x: every call slows (a slower model), or a fraction of calls becomes far
    slower (retries). Clean scopes may get longer answers (or prompts) for an hour (sizes 2-4x,
    durations following the line): not an incident."""
    sigma, size_sigma = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.3, 1.0))
    size_median = float(np.exp(rng.uniform(*np.log(kind.size_median))))
    part = float(rng.uniform(0.2, 0.9))  # of a median-size call's duration, what its size takes
    p99 = float(np.exp(rng.uniform(*np.log(kind.p99_ms))))
    outlier_rate = float(np.exp(rng.uniform(*np.log(OUTLIER_RATES))))
    sample = ((1 - part) + part * np.exp(size_sigma * rng.standard_normal(SAMPLE))) * np.exp(
        sigma * rng.standard_normal(SAMPLE)
    )
    sample *= _outliers(rng, SAMPLE, outlier_rate)
    scale = p99 / float(np.quantile(sample, 0.99))
    base, per_token = scale * (1 - part), scale * part / size_median
    span, confounder = _incident_or_confounder(rng, truth, new, ("longer answers",))
    slowed = sample * scale  # the changed mix, for its p99
    share, factor = 1.0, 1.0  # the fraction of calls slower, and by how much
    if truth.incident:
        truth.kind = f"sigma {sigma:.2f}, size part {part:.0%}, p99 {p99:.0f} ms, "
        low, high = kind.effects
        truth.effect = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if rng.random() < 0.5:
            truth.kind += "slower"
            factor = truth.effect
        else:  # 2-10% of calls become slow enough that the p99 moves by the effect
            share = float(rng.uniform(0.02, 0.1))
            truth.kind += f"{share:.0%} of calls slow"
            low_f, high_f = 0.0, np.log(1000.0)
            for _ in range(30):  # bisection on the log of the factor
                middle = (low_f + high_f) / 2
                reached = _slowed(sample, share, np.exp(middle)) >= truth.effect * p99 / scale
                low_f, high_f = (low_f, middle) if reached else (middle, high_f)
            factor = float(np.exp(high_f))
        slowed = _slowed(sample, share, factor, quantile=None) * scale
    elif confounder == "blip":
        factor = 10.0
    elif confounder == "longer answers":
        span = slice(span.start, span.start + 60)
    # Every call: its minute, its size, its duration.
    counts = truth.calls.astype(np.int64)
    minute = np.repeat(np.arange(MINUTES), counts)
    longer = np.ones(MINUTES)
    if confounder == "longer answers":
        longer[span] = rng.uniform(2, 4)
    sizes = size_median * np.exp(size_sigma * rng.standard_normal(len(minute))) * longer[minute]
    affected = (minute >= (span.start or 0)) & (minute < (span.stop or 0)) & (rng.random(len(minute)) < share)
    if truth.incident or confounder == "blip":
        slower = np.where(affected, factor, 1.0)
    else:
        slower = np.ones(len(minute))
    durations = (base + per_token * sizes) * slower * np.exp(sigma * rng.standard_normal(len(minute)))
    durations *= _outliers(rng, len(minute), outlier_rate)
    bin_of = np.searchsorted(EDGES, durations)
    truth.bins = np.bincount(minute * BINS + bin_of, minlength=MINUTES * BINS).reshape(MINUTES, BINS)
    size_class = size_classes(sizes)
    keys, key_of = np.unique(minute * SIZE_CLASSES + size_class, return_inverse=True)
    truth.by_size = keys, np.bincount(key_of * BINS + bin_of, minlength=len(keys) * BINS).reshape(-1, BINS)
    truth.sizes = {
        f"{kind.column}_{name}": np.bincount(minute, weights, minlength=MINUTES)
        for name, weights in (("size", sizes), ("sum_ms", durations), ("size_ms", sizes * durations),
                              ("size_sq", sizes * sizes))
    }  # fmt: skip
    truth.usual = np.full(MINUTES, p99_of(_shares(sample * scale)))
    truth.changed = np.full(MINUTES, p99_of(_shares(slowed)))
    if truth.incident:  # the oracle's evidence: each call's bin, changed against usual, given its size
        grid = np.geomspace(max(sizes.min(), 1e-3), max(sizes.max(), 1e-3) * 1.0001, SIZE_GRID)
        at = np.clip(np.round(np.log(sizes / grid[0]) / np.log(grid[1] / grid[0])), 0, SIZE_GRID - 1)
        typical = base + per_token * grid
        # Both the usual and the changed traffic hold the scope's own slow outliers, at their rate.
        outlying = np.mean([_bins(typical * f, sigma) for f in np.geomspace(*OUTLIER_FACTORS, 9)], axis=0)
        usual_bins = (1 - outlier_rate) * _bins(typical, sigma) + outlier_rate * outlying
        changed_bins = (1 - outlier_rate) * _bins(typical, sigma, share, factor) + outlier_rate * outlying
        usual_bins, changed_bins = np.clip(usual_bins, 1e-12, None), np.clip(changed_bins, 1e-12, None)
        per_call = np.log(changed_bins / usual_bins)[at.astype(np.int64), bin_of]
        truth.duration_llr = np.bincount(minute, per_call, minlength=MINUTES)
    return truth


def hourly_for(truths: list[Truth], kind: Kind) -> pd.DataFrame:
    """The hourly p99 query's rows: per hour, its calls and the p99 of its durations (log-interpolated in
    the bin it falls in, as a digest would give it)."""
    parts = []
    hours = pd.date_range(START, periods=MINUTES // 60 + 1, freq="1h")
    for truth in truths:
        rows = []
        for h in range(len(hours)):
            bins = truth.bins[h * 60 : (h + 1) * 60].sum(axis=0)
            calls = int(bins.sum())
            if not calls:
                continue
            beyond = calls - np.cumsum(bins)[:-1]  # past each edge
            k = int(np.argmax(beyond <= 0.01 * calls))
            rows.append({"hour": hours[h], "calls": calls, "value": float(EDGES[k]) / 1.25**0.5})
        frame = pd.DataFrame(rows)
        frame["tenant"] = ""
        for dim in kind.dims:
            frame[dim] = truth.name if dim in ("route", "tool", "router") else "svc"
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _no_sizes(calls: Any) -> dict[str, Any]:
    """The size sums of the tails queries (``history.TAIL_SIZES``) where the simulated durations do not
    depend on a size: every call of one token, no duration on the line (no line is fitted)."""
    return {
        f"{column}_{part}": calls if part in ("size", "size_sq") else 0.0
        for column in ("latency", "ttft")
        for part in ("size", "sum_ms", "size_ms", "size_sq")
    }


def _tail_columns(
    kind: Kind, calls: Any, past: list[np.ndarray], sizes: dict[str, Any] | None
) -> dict[str, Any]:
    """A tails frame's columns for rows of ``calls`` and calls ``past`` each edge of the kind's duration
    (the other duration none), with the calls' size sums (``sizes``), or none (every call of one token:
    ``_no_sizes``)."""
    other = "ttft" if kind.column == "latency" else "latency"
    return {
        "calls": calls, "ttft_calls": calls if kind.column == "ttft" else 0, f"{kind.column}_over": past,
        f"{other}_over": [np.zeros(len(EDGES))] * len(past), **_no_sizes(calls), **(sizes or {}),
    }  # fmt: skip


def tails_hourly_for(truths: list[Truth], kind: Kind, flat_sizes: bool = False) -> pd.DataFrame:
    """The hourly histogram query's rows: per hour, the calls, the calls past each edge and the size
    sums (none with ``flat_sizes``)."""
    parts = []
    hours = pd.date_range(START, periods=MINUTES // 60 + 1, freq="1h")
    for truth in truths:
        per_hour = [truth.bins[h * 60 : (h + 1) * 60].sum(axis=0) for h in range(len(hours))]
        past = [b[::-1].cumsum()[::-1][1:] for b in per_hour]
        calls = np.array([int(b.sum()) for b in per_hour])
        has = calls > 0
        hourly = {k: np.add.reduceat(v, np.arange(0, MINUTES, 60)) for k, v in truth.sizes.items()}
        sizes = None if flat_sizes else {k: v[has] for k, v in hourly.items()}
        columns = _tail_columns(kind, calls[has], [p for p, h in zip(past, has, strict=True) if h], sizes)
        frame = pd.DataFrame({"hour": hours[has], "tenant": "", "router": "", **columns})
        for dim in kind.dims:
            frame[dim] = truth.name if dim in ("route", "tool", "router", "user") else "svc"
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def by_size_for(truths: list[Truth], kind: Kind, per: str, flat_sizes: bool = False) -> pd.DataFrame:
    """The rows of the histograms by size class (``history.tails_by_size``), per "minute" or "hour"
    (every call in the lowest class with ``flat_sizes``: no sizes known)."""
    step = 60 if per == "hour" else 1
    parts = []
    for truth in truths:
        keys, bins = truth.by_size
        unit, size_class = np.divmod(keys, SIZE_CLASSES)
        unit //= step
        if flat_sizes:
            size_class = np.zeros_like(size_class)
        grouped, group_of = np.unique(unit * SIZE_CLASSES + size_class, return_inverse=True)
        summed = np.zeros((len(grouped), BINS))
        np.add.at(summed, group_of, bins)
        past = summed[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]
        at = START + pd.to_timedelta(grouped // SIZE_CLASSES * step, unit="min")
        frame = pd.DataFrame({
            per: at, "tenant": "", "router": "", SIZE_CLASS: grouped % SIZE_CLASSES,
            "calls": summed.sum(axis=1), f"{kind.column}_over": list(past),
        })  # fmt: skip
        for dim in kind.dims:
            frame[dim] = truth.name if dim in ("route", "tool", "router", "user") else "svc"
        frame["model"] = frame.get("model", "m")
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def frame_for(
    kind: Kind, truths: list[Truth], rng: np.random.Generator, flat_sizes: bool = False
) -> pd.DataFrame:
    """The rows the detector's query would return for these scopes (tails: without the calls' sizes,
    with ``flat_sizes``)."""
    parts = []
    minute = pd.date_range(START, periods=MINUTES, freq="1min")
    for index, truth in enumerate(truths):
        has = truth.calls > 0
        columns: dict[str, Any] = {"minute": minute[has], "tenant": ""}
        for dim in kind.dims:
            columns[dim] = truth.name if dim in ("route", "tool", "router", "user") else "svc"
        columns["model"] = columns.get("model", "m")
        if kind.count:
            columns.update(calls=truth.calls[has])
        elif kind.tail:
            past = truth.bins[has][:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]  # calls past each edge
            sizes = None if flat_sizes else {k: v[has] for k, v in truth.sizes.items()}
            columns.update(router="", **_tail_columns(kind, truth.calls[has], list(past), sizes))
        elif kind.ratio:
            calls = truth.calls[has]
            writes_reported = index % 2 == 0  # Anthropic-shaped scopes: reads and writes
            prefix = rng.uniform(2000, 20000)
            hits = truth.part[has] / np.maximum(calls, 1)
            reads = hits * calls * prefix
            if writes_reported:
                writes = (1 - hits) * calls * prefix
                cacheable = reads + writes
            else:
                cacheable = calls * prefix * rng.uniform(1.0, 1.3)  # input: the prefix and a suffix
            columns.update(calls=calls, cache_read_tokens=reads, cacheable_tokens=cacheable)
        else:
            columns.update({kind.columns[1]: truth.calls[has], kind.columns[0]: truth.part[has]})
        if kind.detector == "routing_escalation":
            columns["router"] = truth.name
        parts.append(pd.DataFrame(columns))
    return pd.concat(parts, ignore_index=True)


def oracle(kind: Kind, truth: Truth, threshold: float) -> int | None:
    """Minutes from onset to the optimal test's page (the CUSUM of the exact likelihood ratio, paging
    once it has held ``FLOOR`` minutes); None when it would not page before the incident ends."""
    window = slice(truth.onset - 240, truth.end)
    calls, usual, changed = truth.calls[window], truth.usual[window], truth.changed[window]
    if kind.count:  # Gamma-Poisson: variance m (1 + m / shape), ``rho`` holding 1 / shape
        llr = stats.poisson_evidence(calls, usual, changed, 1 + usual * truth.rho)
        return _first_page(llr, truth, threshold, kind.floor)
    # Means and tails have a documented level (the mean past 2x, 5x, 10x, 3x its usual; the p99 past twice
    # its usual) that the detector checks on what it saw since the change began before it pages: the
    # oracle checks the same on the same calls (a p99 that moved 2.02x has changed, but the calls seldom
    # show it past 2x).
    if kind.mean:  # Gamma sums with the true spread per call and the true per-minute jitter
        dispersion = truth.spread + calls * truth.rho
        llr = stats.gamma_evidence(truth.part[window], calls, usual, changed, dispersion)
        gates = [(truth.part[window], calls, usual * kind.effects[0])]
        if kind.usd_per_hour:  # every minute counts, with calls or not
            gates.append(
                (truth.part[window], np.ones(len(calls)), np.full(len(calls), kind.usd_per_hour / 60))
            )
        return _first_page(llr, truth, threshold, kind.floor, *gates)
    if kind.tail:  # the likelihood ratio of each minute's durations over every bin (given their sizes)
        llr = truth.duration_llr[window]
        past = truth.bins[window][:, None, ::-1].cumsum(axis=-1)[..., ::-1][..., 1:]  # calls past each edge
        slow = calls_past(past, (kind.effects[0] * usual)[:, None])[:, 0]
        gate = (slow, calls, np.full(len(calls), 0.01 + 1e-9))
        return _first_page(llr, truth, threshold, kind.floor, gate)
    # Per call a Bernoulli draw (a timeout, a hit, ...) at the usual or the changed share, calls of a
    # minute correlated by the true rho: the likelihood ratio of the minute's count, as quasi-likelihood
    # with the true dispersion 1 + (n - 1) rho.
    dispersion = 1 + np.maximum(calls - 1, 0) * truth.rho
    llr = stats.binomial_evidence(truth.part[window], calls, usual, changed, dispersion)
    return _first_page(llr, truth, threshold, kind.floor)


def _first_page(
    llr: np.ndarray,
    truth: Truth,
    threshold: float,
    floor: int = FLOOR,
    *gates: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> int | None:
    """Minutes from onset to the page of the CUSUM of ``llr`` (from 240 minutes before the onset): its
    crossing plus the floor, and not before the run since the CUSUM last left zero, up to the minute of
    the page, reaches each documented level there is (``gates``: numerator and denominator per minute,
    the level per minute)."""
    cusum, start, crossed = 0.0, 0, None
    for offset, value in enumerate(llr):
        if crossed is None:
            cusum = max(0.0, cusum + value)
            if cusum == 0.0:
                start = offset + 1
        minute = truth.onset - 240 + offset
        if crossed is None and cusum >= threshold and minute >= truth.onset:
            crossed = minute
        if crossed is not None and minute + 1 - crossed >= floor:  # at the page, as the detector checks
            reached = all(
                bottom[start : offset + 1].sum() > 0
                and top[start : offset + 1].sum() >= level[offset] * bottom[start : offset + 1].sum()
                for top, bottom, level in gates
            )
            if reached:
                return minute + 1 - truth.onset
    return None


def band(volume: float) -> str:
    return next(label for low, high, label in VOLUME_BANDS if low <= volume < high)


def effect_band(kind: Kind, effect: float) -> str:
    if kind.mean or kind.tail:
        low = kind.effects[0]
        return (
            f"x{low:g}-{2 * low:g}"
            if effect < 2 * low
            else (f"x{2 * low:g}-{5 * low:g}" if effect < 5 * low else f"x>={5 * low:g}")
        )
    if kind.count:
        return "drop <70%" if effect < 0.7 else ("drop 70-90%" if effect < 0.9 else "drop >=90%")
    if kind.ratio:
        return "drop <40%" if effect < 0.4 else ("drop 40-70%" if effect < 0.7 else "drop >=70%")
    return "odds <3x" if effect < 3 else ("odds 3-10x" if effect < 10 else "odds >=10x")


def run_kind(
    name: str, seed: int, scopes: int, flat_sizes: bool = False, cycle: int | None = None
) -> dict[str, Any]:
    """One detector's run on ``scopes`` incident and as many clean scopes of ``seed`` (``flat_sizes``:
    the tails frames carry no sizes, the detectors' size factor has nothing to work on), day 2 evaluated
    in one pass, as ``tokenpulse backtest`` does, or in evaluations of ``cycle`` minutes each, the alerts'
    state carried from one to the next (1: as the live daemon does)."""
    kind = KINDS[name]
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    truths = [draw(kind, rng, f"i{i}", True) for i in range(scopes)]
    truths += [draw(kind, rng, f"c{i}", False) for i in range(scopes)]
    frame = frame_for(kind, truths, rng, flat_sizes)
    (detector,) = [d for d in build_detectors() if d.name == kind.detector]
    history = History(START, START + timedelta(minutes=MINUTES))
    hourly = hourly_for(truths, kind) if kind.tail else None
    for query in detector.queries():
        history.frames[query.name] = frame if query.name.startswith(kind.query) else frame.iloc[0:0]
        if hourly is not None and query.name.startswith(f"{kind.column}_ms:hourly"):
            history.frames[query.name] = hourly
        if kind.tail and query.name.startswith("tails:hourly"):
            history.frames[query.name] = tails_hourly_for(truths, kind, flat_sizes)
        if kind.tail and query.name.startswith("tails:sized:"):
            per = "hour" if query.name.startswith("tails:sized:hourly") else "minute"
            history.frames[query.name] = by_size_for(truths, kind, per, flat_sizes)
    times = [START + timedelta(minutes=m) for m in range(DAY, MINUTES)]
    started = time.perf_counter()
    engine, step = Engine([detector]), cycle or len(times)
    transitions = [
        t for i in range(0, len(times), step) for t in engine.evaluate(history, times[i : i + step])
    ]
    seconds = time.perf_counter() - started
    by_scope: dict[str, list[tuple[int, str]]] = defaultdict(list)
    of_scope: dict[str, list[Any]] = defaultdict(list)  # its transitions, for the pages it costs
    scope_key = next(d for d in kind.dims if d in ("route", "tool", "router", "user"))
    for t in transitions:
        minute = int((t.at - START).total_seconds() // 60)
        by_scope[dict(t.scope)[scope_key]].append((minute, t.status))
        of_scope[dict(t.scope)[scope_key]].append(t)
    threshold = stats.evidence_threshold(
        len(truths),
        detector.settings.false_page_budget_days,  # type: ignore[attr-defined]
    )
    rows = []
    false_pages = flaps = 0
    details = []
    confounders: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # clean scopes, their false pages
    for truth in truths:
        events = by_scope.get(truth.name, [])
        wrong = [m for m, status in events if status == FIRING and (not truth.incident or m < truth.onset)]
        false_pages += len(wrong)
        if not truth.incident:
            confounders[truth.kind.removesuffix(" new")][0] += 1
            confounders[truth.kind.removesuffix(" new")][1] += len(wrong)
        details += [{"scope": truth.name, "kind": truth.kind, "volume": round(truth.volume, 1), "at": m,
                     "usual": round(float(truth.usual[m]), 3)} for m in wrong]  # fmt: skip
        if not truth.incident:
            continue
        fired = [m for m, status in events if status == FIRING and truth.onset <= m <= truth.end + 30]
        ttd = fired[0] - truth.onset if fired else None
        resolved = [m for m, status in events if status == RESOLVED and fired and m >= fired[0]]
        resolved_in_time = bool(resolved) and resolved[0] <= truth.end + RESOLVE_WITHIN
        resolved_then_fired = [
            m for m, status in events if status == RESOLVED and fired and fired[0] <= m < truth.end
        ]
        if resolved_then_fired and any(m > resolved_then_fired[0] for m in fired):
            flaps += 1
            details.append(
                {
                    "flap": truth.name,
                    "volume": round(truth.volume, 1),
                    "effect": truth.effect,
                    "events": [(m - truth.onset, s) for m, s in events],
                    "end": truth.end - truth.onset,
                }
            )
        limit = oracle(kind, truth, threshold)
        at = [START + timedelta(minutes=m) for m in (truth.onset, truth.end + RESOLVE_WITHIN)]
        paging = count_pages(of_scope.get(truth.name, []), *at)
        rows.append(
            {
                "scope": truth.name,
                "calls_per_minute": round(truth.volume, 2),
                "usual": round(float(truth.usual[truth.onset]), 4),
                "effect_size": round(truth.effect, 2),
                "volume": band(truth.volume),
                "effect": effect_band(kind, truth.effect),
                "ttd": ttd,
                "resolved_in_time": resolved_in_time,
                "oracle": limit,
                "how": truth.kind,
                "resolved_after_end": resolved[0] - truth.end if resolved else None,
                "pages": paging.opened,
                "reopened": paging.reopened,
                "firings": paging.firings,
            }
        )
    clean_days = sum(
        (MINUTES - DAY - max(0, int(np.argmax(t.calls > 0)) - DAY)) / DAY for t in truths if not t.incident
    )
    return {
        "kind": name,
        "seed": seed,
        "rows": rows,
        "false_pages": false_pages,
        "confounders": dict(confounders),
        "clean_scope_days": clean_days,
        "flaps": flaps,
        "details": details,
        "seconds": round(seconds, 1),
    }


def report(results: list[dict[str, Any]]) -> str:
    lines = []
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_kind[result["kind"]].append(result)
    for name, runs in by_kind.items():
        kind = KINDS[name]
        rows = [row for r in runs for row in r["rows"]]
        effects = sorted({row["effect"] for row in rows}, key=lambda e: (len(e), e))
        lines.append(
            f"\n### {name} ({len(rows)} incidents, seeds {', '.join(str(r['seed']) for r in runs)})\n"
        )
        lines.append("| volume \\ effect | " + " | ".join(effects) + " |")
        lines.append("|---" * (len(effects) + 1) + "|")
        for _, _, label in VOLUME_BANDS:
            cells = []
            for effect in effects:
                cell = [r for r in rows if r["volume"] == label and r["effect"] == effect]
                hit = sum(1 for r in cell if r["ttd"] is not None and r["ttd"] <= DETECT_WITHIN)
                limit = sum(1 for r in cell if r["oracle"] is not None and r["oracle"] <= DETECT_WITHIN)
                cells.append(f"{hit}/{len(cell)} (oracle {limit})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        reachable = [r for r in rows if r["oracle"] is not None and r["oracle"] <= DETECT_WITHIN]
        caught = [r for r in reachable if r["ttd"] is not None and r["ttd"] <= DETECT_WITHIN]
        gaps = sorted(r["ttd"] - r["oracle"] for r in reachable if r["ttd"] is not None)
        false_pages = sum(r["false_pages"] for r in runs)
        scope_days = sum(r["clean_scope_days"] for r in runs)
        del kind
        lines.append(
            f"\nrecall where the oracle detects within {DETECT_WITHIN} min: {len(caught)}/{len(reachable)} "
            f"({len(caught) / max(len(reachable), 1):.1%}); TTD - oracle: median "
            f"{statistics.median(gaps) if gaps else float('nan'):.1f} min, p90 "
            f"{np.percentile(gaps, 90) if gaps else float('nan'):.1f} min; false pages: {false_pages} in "
            f"{scope_days:.0f} clean scope-days ({100 * false_pages / max(scope_days, 1):.2f} per 100); "
            f"flaps: {sum(r['flaps'] for r in runs)}; resolved within {RESOLVE_WITHIN} min of the end: "
            f"{sum(1 for r in rows if r['resolved_in_time'])}/{sum(1 for r in rows if r['ttd'] is not None)}"
            "; evaluation: "
            f"{', '.join(str(r['seconds']) for r in runs)} s"
        )
        by_confounder: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for run in runs:
            for confounder, (count, pages) in run.get("confounders", {}).items():
                by_confounder[confounder][0] += count
                by_confounder[confounder][1] += pages
        lines.append(
            "false pages by clean scopes' confounder: "
            + ", ".join(f"{c or 'none'} {p} in {n} scopes" for c, (n, p) in sorted(by_confounder.items()))
        )
        alerted = [r for r in rows if r.get("firings")]
        per_firing = sum(r["firings"] for r in alerted) / max(len(alerted), 1)
        lines.append(
            f"pages per incident alerted: {sum(r['pages'] for r in alerted) / max(len(alerted), 1):.2f} "
            f"({len(alerted)} alerted; {sum(r['reopened'] for r in alerted)} reopened an incident instead "
            f"of paging; one page per alert firing: {per_firing:.2f})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[101])
    parser.add_argument("--scopes", type=int, default=200, help="incident scopes (and clean scopes) per run")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument(
        "--flat-sizes", action="store_true",
        help="tails frames without the calls' sizes (every call of one token): the detectors as they are "
        "without size sums, for comparison",
    )  # fmt: skip
    parser.add_argument(
        "--cycle", type=int, metavar="MINUTES",
        help="evaluate day 2 in evaluations of this many minutes, the alerts carried (1: as the live daemon "
        "does; default: one pass, as `tokenpulse backtest` does)",
    )  # fmt: skip
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        for name in args.kinds:
            results.append(run_kind(name, seed, args.scopes, args.flat_sizes, args.cycle))
            print(f"seed {seed} {name}: {results[-1]['seconds']} s", file=sys.stderr, flush=True)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
