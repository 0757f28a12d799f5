"""The detector templates' own arithmetic, tested without I/O."""

import math

import numpy as np
import pandas as pd
import pytest

from tokenpulse.detectors import evidence
from tokenpulse.detectors.history import TAIL_EDGES_MS


def test_calls_past_a_level_between_two_edges_are_interpolated_not_rounded_up() -> None:
    # 100 calls past the edge below the level, 40 past the edge above it: a level a third of the way
    # (in log duration) between them has 80 calls past it, not the upper edge's 40.
    edges = np.asarray(TAIL_EDGES_MS)
    k = 10
    past = np.zeros((1, 1, len(edges)))
    past[..., : k + 1] = 100.0
    past[..., k + 1 :] = 40.0
    level = edges[k] * (edges[k + 1] / edges[k]) ** (1 / 3)
    assert evidence.calls_past(past, np.array([[level]]))[0, 0] == pytest.approx(80.0)
    # On an edge: that edge's count; past the last edge: none; unknown level: none.
    assert evidence.calls_past(past, np.array([[edges[k + 1]]]))[0, 0] == pytest.approx(40.0)
    assert evidence.calls_past(past, np.array([[edges[-1] * 2]]))[0, 0] == 0.0
    assert evidence.calls_past(past, np.array([[np.nan]]))[0, 0] == 0.0


def test_tail_scope_keys_and_edge_counts_are_what_a_multiindex_and_stacked_lists_give() -> None:
    """The tails frame's scopes, in the order they first appear, and its histogram lists as counts."""
    from tokenpulse.detectors.evidence import _EDGES, _edge_counts, _scope_keys

    rng = np.random.default_rng(5)
    rows = 500
    frame = pd.DataFrame(
        {
            "tenant": rng.choice(["", "t1"], rows),
            "service": pd.array(rng.choice(["b", "a"], rows), dtype="string[pyarrow]"),
            "route": rng.choice(["/x", "/y", "/z"], rows),
            "over": [list(rng.integers(0, 9, len(_EDGES))) for _ in range(rows)],
        }
    )
    dims = ("tenant", "service", "route")
    codes, scopes = _scope_keys(frame, dims)
    expected_codes, keys = pd.factorize(pd.MultiIndex.from_frame(frame[list(dims)].astype(str)))
    np.testing.assert_array_equal(codes, expected_codes)
    assert scopes == [
        tuple((d, v) for d, v in zip(dims, key, strict=True) if v != "" or d != "tenant") for key in keys
    ]
    inside = rng.random(rows) < 0.7
    expected = np.vstack(frame["over"].to_numpy()[inside]).astype(np.float32)
    np.testing.assert_array_equal(_edge_counts(frame, "over", inside), expected)


def test_shift_evidence_weighs_each_row_against_its_own_usual_distribution() -> None:
    """Each row of a histogram (a minute of a scope, or of one size class of it) is weighed against the
    distinct usual distribution it uses, as if that distribution were copied out to every row."""
    from tokenpulse.detectors.evidence import _CONTAMINATION, _RULED_OUT

    rng = np.random.default_rng(11)
    rows, scopes, bins_ = 500, 9, len(TAIL_EDGES_MS) + 1
    bins = rng.poisson(0.1, (rows, bins_)).astype(np.float32)  # a few calls a row; some rows none
    usual_bins = rng.poisson(50.0, (3, scopes, bins_)).astype(np.float32)
    usual_of, scope_of = rng.integers(0, 3, rows), rng.integers(0, scopes, rows)

    usual = (usual_bins + 0.05) / (usual_bins.sum(axis=-1, keepdims=True) + 0.05 * bins_)
    # The usual distribution admits 3 calls in as many as its day held (at most 1%) of the changed shape;
    # or in as many as the scope's whole day held, where given and more (a size class of a busier day).
    known = usual_bins.sum(axis=-1, keepdims=True)
    ruled_calls = known[..., 0] * rng.choice([0.5, 4.0], known.shape[:2])
    for ruled in (None, ruled_calls):
        day = known if ruled is None else np.maximum(ruled[..., None], known)
        unknown = np.minimum(_CONTAMINATION, _RULED_OUT / np.maximum(day, 1))
        _check_shift_evidence(bins, usual_bins, usual_of, scope_of, usual, unknown, ruled)


def _check_shift_evidence(
    bins: np.ndarray,
    usual_bins: np.ndarray,
    usual_of: np.ndarray,
    scope_of: np.ndarray,
    usual: np.ndarray,
    unknown: np.ndarray,
    ruled: np.ndarray | None,
) -> None:
    from tokenpulse.detectors.evidence import (
        _CONTAMINATION,
        _SHIFTS,
        _halfway_shift,
        _shift_evidence,
        _slower,
    )

    calls = bins.sum(axis=-1)

    def log_ratio(fraction: float, size: int, spread: bool = False) -> tuple[np.ndarray, np.ndarray]:
        moved = _slower(usual, fraction, size, spread)
        changed = (1 - _CONTAMINATION) * moved + _CONTAMINATION * usual
        base = (1 - unknown) * usual + unknown * moved
        return np.log(changed / base)[usual_of, scope_of], changed[usual_of, scope_of]

    expected_parts: list[list[np.ndarray]] = [[], [], []]
    for fraction, size in _SHIFTS:
        ratio, changed = log_ratio(fraction, size)
        expected_parts[0].append((bins * ratio).sum(axis=-1))
        halfway = log_ratio(*_halfway_shift(fraction, size), spread=True)[0]
        expected_parts[1].append(-(bins * halfway).sum(axis=-1))
        expected_parts[2].append(calls * (changed * ratio).sum(axis=-1))
    got = _shift_evidence(bins, usual_bins, usual_of, scope_of, ruled)
    for grid, parts in zip(got, expected_parts, strict=True):
        # The distributions are float32; the rows' sums are taken in float64 (the dense products here in
        # float32): equal to float32's precision.
        np.testing.assert_allclose(grid, np.stack(parts, axis=-1), rtol=1e-4, atol=1e-5)


def test_add_at_sums_cells_as_numpy_add_at_does() -> None:
    from tokenpulse.detectors.evidence import _add_at

    rng = np.random.default_rng(5)
    unique = np.unravel_index(rng.permutation(35)[:20], (7, 5))
    for dtype, tail in ((np.float32, (41,)), (np.float64, ()), (np.float64, (3,))):
        # Most cells repeated, and each cell once (the fast path), added into what earlier calls left.
        for cells in ((rng.integers(0, 7, 400), rng.integers(0, 5, 400)), unique):
            values = rng.gamma(0.5, 3.0, (len(cells[0]), *tail))
            start = rng.gamma(0.5, 3.0, (7, 5, *tail))
            if dtype == np.float32:  # the histograms: counts of calls, summed exactly
                values, start = np.round(values * 100), np.round(start * 100)
            values = values.astype(dtype)
            # Each cell's values summed in the order given, then added to what it held.
            sums = np.zeros((7, 5, *tail), dtype=dtype)
            np.add.at(sums, cells, values)
            expected = start.astype(dtype) + sums
            got = start.astype(dtype)
            _add_at(got, cells, values)
            np.testing.assert_array_equal(got, expected)


def test_a_call_past_the_trailing_day_is_more_evidence_where_the_day_held_more_calls() -> None:
    """A call slower than any of its trailing day is evidence for calls getting slower, bounded by what
    the day can rule out: at most ln 99 nats against a day of 100 calls, more against 10,000, never more
    than about ln(N/3)."""
    from tokenpulse.detectors.evidence import _SHIFTS, _shift_evidence

    bins_ = len(TAIL_EDGES_MS) + 1
    shape = np.zeros(bins_, dtype=np.float32)
    shape[10:14] = (0.2, 0.4, 0.3, 0.1)  # the usual durations: four bins
    usual_bins = np.stack([shape * 100, shape * 10_000])[:, None, :]  # a thin day and a busy one
    row = np.zeros((2, bins_), dtype=np.float32)
    row[:, 11 + 9] = 1  # one call nine bins (about 7x) slower than the usual mode
    evidence, _, _ = _shift_evidence(row, usual_bins, np.array([0, 1]), np.array([0, 0]))
    slow_fraction = [k for k, (fraction, size) in enumerate(_SHIFTS) if fraction < 1 and size == 9]
    thin, busy = evidence[0, slow_fraction], evidence[1, slow_fraction]
    assert np.all(thin > 2) and np.all(thin < np.log(100))
    assert np.all(busy > thin + 2) and np.all(busy < np.log(10_000 / 3))


def test_a_pooled_histograms_p99_is_placed_within_its_bin() -> None:
    """The p99 of calls binned at ``TAIL_EDGES_MS`` lies within the bin of the sample's p99 (edges 1.25x
    apart), and is NaN for a histogram without calls."""
    durations = np.random.default_rng(7).lognormal(np.log(2000.0), 0.5, 50_000)
    edges = np.asarray(TAIL_EDGES_MS)
    past = (durations[:, None] > edges[None, :]).sum(axis=0).astype(np.float32)
    bins = evidence._bins(np.array([len(durations)], dtype=np.float32), past[None, :])
    pooled = evidence._pooled_p99(np.concatenate([bins, np.zeros_like(bins)]))
    assert abs(np.log(pooled[0] / np.quantile(durations, 0.99))) < np.log(1.25)
    assert np.isnan(pooled[1])


def test_the_same_hours_a_usual_p99_stands_on_are_counted_per_day() -> None:
    """A route with one day of history has one same hour (of its calls), one with three days three; an
    hour under the learning calls counts its calls but not as a day."""
    scope = (("service", "s"), ("route", "/r"))
    start = pd.Timestamp("2026-01-01", tz="UTC")
    hours = [start + pd.Timedelta(days=d, hours=5) for d in range(3)]
    frame = pd.DataFrame(
        {"hour": hours, "service": "s", "route": "/r", "calls": [500.0, 20.0, 400.0], "value": 900.0}
    )
    index = pd.DatetimeIndex([start + pd.Timedelta(days=3, hours=5, minutes=10)])
    calls, days = evidence._same_hour_calls(frame, ("service", "route"), [scope], index, 30)
    assert calls[0, 0] == 920.0 and days[0, 0] == 2
    young = pd.DatetimeIndex([start + pd.Timedelta(days=1, hours=5, minutes=10)])
    calls, days = evidence._same_hour_calls(frame, ("service", "route"), [scope], young, 30)
    assert calls[0, 0] == 500.0 and days[0, 0] == 1


def _lognormal_bins(median_ms: float, sigma: float) -> np.ndarray:
    """The shares of ``TAIL_EDGES_MS``' bins (under the first edge, between edges, past the last) of a
    log-normal duration."""
    z = np.log(np.asarray(TAIL_EDGES_MS) / median_ms) / (sigma * math.sqrt(2))
    cdf = np.array([(1 + math.erf(x)) / 2 for x in z])
    return np.diff(np.r_[0.0, cdf, 1.0])


def test_a_slowdown_keeps_a_share_of_the_calls_under_the_first_edge_under_it() -> None:
    """Where calls under 100 ms go when they slow down is unknown (the histogram stops there): a slowdown
    by s keeps 1/s of them there, so the changed shape is a distribution and a call under 100 ms weighs
    about ln s against the slowdown, or for its recovery, not ln 100. The rest goes to the shift's bin
    for a page, and for a recovery spreads as calls spread evenly under 100 ms would, over 0-100 ms x s."""
    from tokenpulse.detectors.evidence import _SHIFTS, _halfway_shift, _shift_evidence, _slower

    shares = _lognormal_bins(150.0, 0.6)  # a fast route: a quarter of its calls under 100 ms
    for fraction, size in _SHIFTS:
        for spread in (False, True):
            moved = _slower(shares, fraction, size, spread)
            assert moved.sum() == pytest.approx(1.0)
            assert moved[0] == pytest.approx(shares[0] * (1 - fraction + fraction * 1.25**-size))
    # Every call 1.95x slower (3 bins): 0-100 ms becomes 0-195 ms, 100 ms or less 51.2% of it, 100-125 ms
    # 25/195, 125-156 ms 31.25/195, 156-195 ms 39.06/195; the calls of each bin above go 3 bins up.
    moved, spread = _slower(shares, 1.0, 3), _slower(shares, 1.0, 3, spread=True)
    np.testing.assert_allclose(spread[:4], shares[0] * np.array([0.512, 0.128, 0.16, 0.2]))
    np.testing.assert_allclose(moved[:4], shares[0] * np.array([0.512, 0.0, 0.0, 0.488]))
    for shape in (moved, spread):
        np.testing.assert_allclose(shape[4:-1], shares[1:-4])
        assert shape[-1] == pytest.approx(shares[-4:].sum())
    row = np.zeros((1, len(shares)), dtype=np.float32)
    row[0, 0] = 1  # one call under 100 ms
    usual_bins = (shares * 20_000).astype(np.float32)[None, None, :]
    evidence, recovery, _ = _shift_evidence(row, usual_bins, np.array([0]), np.array([0]))
    for k, (fraction, size) in enumerate(_SHIFTS):
        if fraction == 1:
            half = _halfway_shift(fraction, size)[1]
            assert -size * np.log(1.25) - 0.05 < evidence[0, k] < 0
            assert 0 < recovery[0, k] < half * np.log(1.25) + 0.05


def test_a_fast_route_slowed_twice_does_not_look_recovered_for_its_calls_still_under_100_ms() -> None:
    """Every call of a route of median 150 ms twice slower: 3% of them stay under 100 ms. Weighed as if
    none could (the first bin moved whole up the shift's bins), each of them was ln 100 for recovery
    against a slowdown of 1.25x, and 2 hours of 20 calls a minute reached ``clear`` in 9 of 10 draws (a
    flap of ttft_slo, randomized seed 12 i102); as were those slowed into 100-125 ms against a slowdown of
    1.56x (6 in 10 draws, with the first bin kept but the rest not spread). The recovery CUSUMs of
    "every call 2x slower" and "2.4x" (their halfways) now stay far from it."""
    from tokenpulse.detectors.evidence import _SHIFTS, CLEAR_EVIDENCE, _shift_evidence

    usual_bins = (_lognormal_bins(150.0, 0.6) * 20_000).astype(np.float32)[None, None, :]
    changed = _lognormal_bins(300.0, 0.6)
    # The shifts at or above the change (1.95x, 2.44x): their halfways (1.25x, 1.56x) are below it.
    at_or_above = [_SHIFTS.index((1.0, 3)), _SHIFTS.index((1.0, 4))]
    rng = np.random.default_rng(3)
    highest = []
    for _ in range(10):
        rows = rng.multinomial(20, changed, 120).astype(np.float32)
        _, recovery, _ = _shift_evidence(rows, usual_bins, np.zeros(120, int), np.zeros(120, int))
        cusum, top = np.zeros(len(at_or_above)), np.zeros(len(at_or_above))
        for value in recovery[:, at_or_above]:
            cusum = np.maximum(0.0, cusum + value)
            top = np.maximum(top, cusum)
        highest.append(top)
    assert np.max(highest) < CLEAR_EVIDENCE / 2


def test_a_route_back_to_usual_looks_usual_against_half_a_doubling_within_fifty_calls() -> None:
    """Recovery from every call 1.95x slower (3 bins) is weighed against 1.56x (2 bins), not 1.25x: a
    route of median 1 s back at its usual durations reaches ``clear`` within 50 calls (about 5 nats
    against 1.25x)."""
    from tokenpulse.detectors.evidence import _SHIFTS, CLEAR_EVIDENCE, _shift_evidence

    shares = _lognormal_bins(1000.0, 0.5)
    usual_bins = (shares * 20_000).astype(np.float32)[None, None, :]
    rows = np.random.default_rng(5).multinomial(5, shares, 400).astype(np.float32)
    _, recovery, _ = _shift_evidence(rows, usual_bins, np.zeros(400, int), np.zeros(400, int))
    per_50_calls = recovery[:, _SHIFTS.index((1.0, 3))].reshape(40, 10).sum(axis=1)
    assert np.median(per_50_calls) > CLEAR_EVIDENCE
