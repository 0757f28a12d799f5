"""The scenario's statistical limit per incident: when the optimal detector would have paged.

    python bench/scenario_limit.py DIR      (a kept run of bench/detection.py: DIR/data, DIR/manifest.json)

For each incident of the scenario's manifest, the minute (from its onset) at which an oracle that knows the
scope's usual level and the incident's changed level pages, using the optimal sequential test: the CUSUM
of the exact log-likelihood ratio of each minute, with the threshold of the detector's own false-alarm
budget and its floor before paging, through ``randomized.oracle`` (the same test, threshold and floor as
the randomized benchmark's). ``None``: it would not page within the incident. Prints one JSON object.

The oracle tests the quantity the incident's detector tests, on the detector's own scopes (the rows its
queries return, summed to its dimensions), and takes the earliest page over the scopes that point at the
culprit (they agree on every dimension they share: a model's tail on every route it serves):

- counts (traffic_drop): calls per minute, Gamma-mixed Poisson;
- shares (timeout_surge: timeouts / calls, cache_not_applied: uncached calls / calls, routing_escalation:
  escalated / calls, quality_drop: failed / judged evaluations): binomial per minute, with the scope's
  intra-minute correlation as a quasi-likelihood;
- the hit ratio (cache_hit_collapse): read / cacheable tokens, a minute of n calls at ratio r as r x n
  hits in n draws (as the kernel counts it);
- means (input tokens per call, reasoning tokens per call, LLM cost per tool execution, a user's spend
  per active minute): Gamma sums with the scope's per-call spread and per-minute jitter;
- tails (p99 latency, TTFT): the multinomial over the duration bins of the detectors' histogram.

Where the simulator's true parameters are not explicit (it draws sessions, users and their calls, not
levels), they are estimated from the kept store, generously - the oracle knows the effect:

- the usual level of a minute of day 2 is the scope's level over the same minutes of day 1, +-60 minutes
  (calls per minute: +-30), the simulator's traffic following the same daily course both days; a user
  never seen at those hours on day 1 gets their level over the whole of day 1;
- the changed level is the incident's own: the ratio of the scope's sums over the incident (the changed
  calls per minute and per-call means as a factor on the usual course); for a gradual incident
  (prompt_growth) each minute's factor is that of the +-7 minutes around it within the incident; a tail
  incident's changed durations are all of the incident's calls (the oracle's distributions are fixed);
- the dispersions are day 1's, measured without shrinkage: a share's intra-minute correlation (the sum
  of ``stats.share_excess`` over its pairs of calls), a count's Gamma-Poisson excess (variance over the
  Poisson around a +-15-minute local rate), a mean's per-call spread and per-minute jitter (least squares
  of ``stats.mean_excess``'s terms, +-60 minutes local, on the calls of the minute);
- duration bins get one pseudo-call spread over all bins, day 1 and incident alike: a call slower than
  any of day 1 is strong evidence, not infinite evidence;
- the threshold counts the detector's scopes in the store (two days of its query's rows), with its
  ``false_page_budget_days`` (default settings); the oracle tests the one changed level it knows;
- the documented level the detector waits for is the oracle's too (``randomized.oracle``'s gate: a mean
  at its first rise, more than 1% of durations past twice the usual p99, or past the detector's
  ``floor_ms`` where that is higher); the business floors in dollars or tokens of the mean detectors
  are not (the oracle is about what the data can show).

A change in the direction the detector does not test (a share that falls) is not the detector's: None.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from randomized import KINDS, Kind, Truth, oracle, p99_of  # bench/ holds scripts, not a package

from tokenpulse.detectors import stats
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.history import TAIL_EDGES_MS, History, load_history

DAY = 1440
SAME_MINUTES = 60  # day 1's minutes either side of a minute's time of day: its usual level
SAME_MINUTES_CALLS = 30  # ... for calls per minute (a course that moves within the hour)
LOCAL_MINUTES = 15  # a count's local rate, for its dispersion
SPREAD_MINUTES = 60  # a mean's local level, for its spread
GRADUAL_MINUTES = 7  # a gradual incident's factor: the minutes either side within the incident
BEFORE = 240  # minutes before the onset the oracle's CUSUM starts (``randomized.oracle``)
BINS = len(TAIL_EDGES_MS) + 1


def kind_of(detector: str, culprit: dict[str, str]) -> Kind:
    """The randomized benchmark's kind (quantity, scope, query, floor) for an incident of ``detector``."""
    if detector == "timeout_surge" and "tool" in culprit:
        return KINDS["timeout_surge/tool"]
    if detector == "cost_spike":  # the scenario's cost spike is a user's runaway loop
        return KINDS["cost_spike/user"]
    return KINDS[detector]


@dataclass
class Series:
    """One scope's minutes over the grid (two days from the manifest's start): the draws of the quantity
    (calls, evaluations, active minutes), its numerator, and for tails the calls per duration bin."""

    total: np.ndarray
    part: np.ndarray
    bins: np.ndarray | None = None


def frame_of(history: History, kind: Kind) -> pd.DataFrame:
    """The rows of the detector's query ``kind`` reads (by the name's prefix)."""
    return next(f for name, f in history.frames.items() if name.startswith(kind.query))


def scopes_of(frame: pd.DataFrame, kind: Kind) -> list[tuple[str, ...]]:
    """The detector's scopes in the frame (its dimensions' values; a router's only where it has one)."""
    if frame.empty:
        return []
    values = frame[list(kind.dims)].astype(str).drop_duplicates()
    if "router" in kind.dims:
        values = values[values["router"] != ""]
    return [tuple(row) for row in values.itertuples(index=False)]


def pointing(scopes: list[tuple[str, ...]], kind: Kind, culprit: dict[str, str]) -> list[tuple[str, ...]]:
    """The scopes that agree with the culprit on every dimension they share (and share one)."""
    shared = [(i, d) for i, d in enumerate(kind.dims) if d in culprit]
    if not shared:
        return []
    return [s for s in scopes if all(s[i] == culprit[d] for i, d in shared)]


def series(frame: pd.DataFrame, kind: Kind, scope: tuple[str, ...], start: datetime, minutes: int) -> Series:
    """The scope's minutes of the quantity ``kind`` tests."""
    rows = frame
    for dim, value in zip(kind.dims, scope, strict=True):
        rows = rows[rows[dim].astype(str) == value]
    at = ((pd.DatetimeIndex(rows["minute"]) - pd.Timestamp(start)) // pd.Timedelta(minutes=1)).to_numpy()
    inside = (at >= 0) & (at < minutes)
    at, rows = at[inside], rows[inside]
    part_column, total_column = kind.columns

    def summed(values: np.ndarray) -> np.ndarray:
        out = np.zeros(minutes)
        np.add.at(out, at, values.astype(float))
        return out

    if kind.tail:
        total = summed(rows[total_column].to_numpy())
        past = np.zeros((minutes, BINS - 1))
        if len(rows):
            np.add.at(past, at, np.vstack(rows[part_column].to_numpy()).astype(float))
        below = total - past[:, 0]
        bins = np.maximum(np.column_stack([below, past[:, :-1] - past[:, 1:], past[:, -1]]), 0.0)
        return Series(total, np.zeros(minutes), bins)
    if kind.ratio:  # a minute of n calls at hit ratio r: r x n hits in n draws
        calls = summed(rows["calls"].to_numpy())
        reads, cacheable = summed(rows[part_column].to_numpy()), summed(rows[total_column].to_numpy())
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(cacheable > 0, np.clip(reads / cacheable, 0.0, 1.0), 0.0)
        draws = np.where(cacheable > 0, calls, 0.0)
        return Series(draws, ratio * draws)
    if kind.detector == "cost_spike":  # a user's spend per active minute
        calls = summed(rows["calls"].to_numpy())
        return Series((calls > 0).astype(float), summed(rows[part_column].to_numpy()))
    return Series(summed(rows[total_column].to_numpy()), summed(rows[part_column].to_numpy()))


def _sums_around(values: np.ndarray, centres: np.ndarray, half: int) -> np.ndarray:
    """Sums of ``values`` (along the first axis) over [c - half, c + half] for each centre, clipped."""
    totals = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
    low = np.clip(centres - half, 0, len(values))
    high = np.clip(centres + half + 1, 0, len(values))
    return totals[high] - totals[low]


def _day1(minutes: np.ndarray) -> np.ndarray:
    return minutes - DAY


def usual_ratio(s: Series, minutes: np.ndarray) -> np.ndarray:
    """The usual part / total at each minute: day 1's, the same time of day +-``SAME_MINUTES``; over the
    whole of day 1 where those minutes hold nothing."""
    part = _sums_around(s.part[:DAY], _day1(minutes), SAME_MINUTES)
    total = _sums_around(s.total[:DAY], _day1(minutes), SAME_MINUTES)
    whole = s.part[:DAY].sum() / max(s.total[:DAY].sum(), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, part / total, whole)


def share_correlation(part: np.ndarray, total: np.ndarray) -> float:
    """Day 1's intra-minute correlation of a share: summed Pearson excess over summed pairs of calls."""
    excess, pairs = stats.share_excess(part[:, None], total[:, None])
    return float(np.clip(excess.sum() / max(pairs.sum(), 1.0), 0.0, 0.5))


def count_dispersion(calls: np.ndarray) -> float:
    """Day 1's Gamma-Poisson excess of calls per minute: variance = m (1 + m rho) around the local rate."""
    local = _sums_around(calls, np.arange(len(calls)), LOCAL_MINUTES) / (2 * LOCAL_MINUTES + 1)
    return float(max(((calls - local) ** 2 - local).sum() / max((local**2).sum(), 1e-12), 0.0))


def mean_dispersion(total: np.ndarray, calls: np.ndarray) -> tuple[float, float]:
    """Day 1's per-call spread (squared coefficient of variation) and per-minute jitter of a mean: the
    terms of ``stats.mean_excess`` are about spread + calls x jitter, fitted by least squares."""
    terms, counted = stats.mean_excess(total[:, None], calls[:, None], SPREAD_MINUTES)
    used = counted[:, 0] > 0
    y, n = terms[used, 0], calls[used]
    if len(y) < 3:
        return 1.0, 0.0
    if np.ptp(n) > 0:
        slope, intercept = np.polyfit(n, y, 1)
        if slope > 0 and intercept > 0:
            return float(intercept), float(slope)
    return float(max(y.mean(), 0.1)), 0.0


def truth_of(s: Series, kind: Kind, onset: int, end: int, gradual: bool, settings: Any) -> Truth | None:
    """The oracle's knowledge of one scope: its usual and changed levels, its dispersion; None where the
    scope has no usual level or changed the other way than the detector tests."""
    minutes = np.arange(len(s.total))
    span = slice(onset, end)
    truth = Truth("", 0.0, True, onset=onset, end=end, calls=s.total, part=s.part)
    if kind.tail:
        day1 = s.bins[:DAY][_day1(np.arange(onset - SAME_MINUTES, end + SAME_MINUTES)).clip(0, DAY - 1)]
        usual_counts = day1.sum(axis=0) + 1 / BINS
        changed_counts = s.bins[span].sum(axis=0) + 1 / BINS
        if s.bins[span].sum() == 0 or day1.sum() == 0:
            return None
        usual, changed = usual_counts / usual_counts.sum(), changed_counts / changed_counts.sum()
        if np.cumsum(changed)[:-1].mean() >= np.cumsum(usual)[:-1].mean():  # not slower
            return None
        # The multinomial over the bins, one fixed distribution each way (the store keeps no sizes per call).
        truth.bins, truth.duration_llr = s.bins, s.bins @ np.log(changed / usual)
        # The documented level: twice the usual p99, or the detector's floor where that is higher.
        p99 = max(p99_of(usual), float(getattr(settings, "floor_ms", 0.0)) / kind.effects[0])
        truth.usual, truth.changed = np.full(len(minutes), p99), np.full(len(minutes), p99_of(changed))
        truth.effect = float(truth.changed[0] / p99_of(usual))
        return truth
    if kind.count:
        usual = _sums_around(s.total[:DAY], _day1(minutes), SAME_MINUTES_CALLS) / (2 * SAME_MINUTES_CALLS + 1)
        usual = np.where(minutes >= DAY, usual, s.total)  # day 1 is its own
        factor = s.total[span].sum() / max(usual[span].sum(), 1e-12)
        if factor >= 1:
            return None
        truth.usual, truth.changed, truth.effect = usual, usual * factor, 1 - factor
        truth.rho = count_dispersion(s.total[:DAY])
        return truth
    usual = usual_ratio(s, minutes)
    if kind.mean:
        if usual[span].max() <= 0 or s.total[span].sum() == 0:
            return None
        expected = (usual * s.total)[span].sum()
        factor = np.full(len(minutes), s.part[span].sum() / max(expected, 1e-12))
        if gradual:  # each minute's own factor, from the minutes around it within the incident
            inside = np.arange(onset, end)
            near = _sums_around(s.part[span], inside - onset, GRADUAL_MINUTES)
            base = _sums_around((usual * s.total)[span], inside - onset, GRADUAL_MINUTES)
            with np.errstate(divide="ignore", invalid="ignore"):
                local = np.where(base > 0, near / base, 1.0)
            factor[span], factor[:onset] = local, local[0]
        if factor[span].mean() <= 1:
            return None
        # Never less than the documented level the page waits for: a ramp's first minutes (1.1x) do not
        # start the evidence run whose mean must reach it, as the detector's own alternatives do not.
        truth.usual, truth.changed = usual, usual * np.maximum(factor, kind.effects[0])
        truth.effect = float(s.part[span].sum() / max(expected, 1e-12))
        truth.spread, truth.rho = mean_dispersion(s.part[:DAY], s.total[:DAY])
        return truth
    # A share or the hit ratio: the incident's own level.
    changed = s.part[span].sum() / max(s.total[span].sum(), 1e-12)
    before = usual[span].mean()
    if s.total[span].sum() == 0 or (changed >= before if kind.ratio else changed <= before):
        return None
    truth.usual, truth.changed = usual, np.full(len(minutes), changed)
    truth.effect = float(changed)
    truth.rho = share_correlation(s.part[:DAY], s.total[:DAY])
    return truth


def limit(
    history: History, incident: dict[str, Any], start: datetime, minutes: int, settings: Any
) -> dict[str, Any]:
    """The oracle's page for one incident (minutes from its onset, None: not within the incident), the
    scope it pages on, and what it knew there."""
    kind = kind_of(incident["detector"], incident["scope"])
    frame = frame_of(history, kind)
    scopes = scopes_of(frame, kind)
    threshold = stats.evidence_threshold(len(scopes), settings.false_page_budget_days)
    onset = int((_time(incident["onset"]) - start).total_seconds() // 60)
    end = int((_time(incident["end"]) - start).total_seconds() // 60)
    best: dict[str, Any] = {"oracle": None, "scope": None, "threshold": round(threshold, 2), "floor": None}
    busiest = -1.0
    for scope in pointing(scopes, kind, incident["scope"]):
        s = series(frame, kind, scope, start, minutes)
        truth = truth_of(s, kind, onset, end, incident["gradual"], settings)
        if truth is None:
            continue
        page = oracle(kind, truth, threshold)
        found = {
            "oracle": page, "scope": dict(zip(kind.dims, scope, strict=True)),
            "threshold": round(threshold, 2),
            "usual": round(float(np.mean(truth.usual[onset:end])), 4),
            "changed": round(float(np.mean(truth.changed[onset:end])), 4),
            "per_minute": round(float(s.total[onset:end].mean()), 2),
            "floor": under_floor(kind, s, onset, end, settings),
        }  # fmt: skip
        # The earliest page; without one, what the busiest scope of the incident knew.
        if page is not None and (best["oracle"] is None or page < best["oracle"]):
            best = found
        elif best["oracle"] is None and page is None and s.total[onset:end].sum() > busiest:
            best, busiest = found, float(s.total[onset:end].sum())
    return best


def under_floor(kind: Kind, s: Series, onset: int, end: int, settings: Any) -> str | None:
    """Where the incident stays under the business floor a mean detector pages at (a user's dollars an
    hour, tokens or dollars per call): the floor, which the oracle does not have; else None."""
    span = slice(onset, end)
    if kind.detector == "cost_spike":
        rate, floor = s.part[span].sum() / (end - onset) * 60, settings.user_min_usd_per_hour
        return f"${rate:.2f}/h, under the ${floor:g}/h floor" if rate < floor else None
    if kind.mean and s.total[span].sum() > 0:
        mean, floor = s.part[span].sum() / s.total[span].sum(), settings.floor
        return f"{mean:.4g} per call, under the {floor:g} floor" if mean < floor else None
    return None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def limits(store: Any, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The oracle's page for every incident of the manifest, read from ``store`` (the kept run's)."""
    start, end = _time(manifest["start"]), _time(manifest["end"])
    minutes = int((end - start).total_seconds() // 60)
    detectors = {d.name: d for d in build_detectors()}
    incidents = [i for i in manifest["incidents"] if i["detector"]]
    queries = {q.name: q for i in incidents for q in detectors[i["detector"]].queries()}
    history = load_history(store, list(queries.values()), start, end)
    out = []
    for incident in incidents:
        found = limit(history, incident, start, minutes, detectors[incident["detector"]].settings)
        out.append({"kind": incident["kind"], "detector": incident["detector"], "onset": incident["onset"],
                    **found})  # fmt: skip
    return out


def main() -> int:
    from tokenpulse.storage.store import DataDirLock, Store

    directory = Path(sys.argv[1])
    manifest = json.loads((directory / "manifest.json").read_text())
    lock = DataDirLock(directory / "data")
    store = Store.open(directory / "data")
    try:
        print(json.dumps(limits(store, manifest)))
    finally:
        store.close()
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
