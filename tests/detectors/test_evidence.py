"""The detector templates' own arithmetic, tested without I/O."""

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
    from tokenpulse.detectors.evidence import (
        _CONTAMINATION,
        _SHIFTS,
        _halfway_shift,
        _shift_evidence,
        _slower,
    )

    rng = np.random.default_rng(11)
    rows, scopes, bins_ = 500, 9, len(TAIL_EDGES_MS) + 1
    bins = rng.poisson(0.1, (rows, bins_)).astype(np.float32)  # a few calls a row; some rows none
    usual_bins = rng.poisson(50.0, (3, scopes, bins_)).astype(np.float32)
    usual_of, scope_of = rng.integers(0, 3, rows), rng.integers(0, scopes, rows)

    usual = (usual_bins + 0.05) / (usual_bins.sum(axis=-1, keepdims=True) + 0.05 * bins_)
    calls = bins.sum(axis=-1)

    def log_ratio(fraction: float, size: int) -> tuple[np.ndarray, np.ndarray]:
        moved = _slower(usual, fraction, size)
        changed = (1 - _CONTAMINATION) * moved + _CONTAMINATION * usual
        base = (1 - _CONTAMINATION) * usual + _CONTAMINATION * moved
        return np.log(changed / base)[usual_of, scope_of], changed[usual_of, scope_of]

    expected_parts: list[list[np.ndarray]] = [[], [], []]
    for fraction, size in _SHIFTS:
        ratio, changed = log_ratio(fraction, size)
        expected_parts[0].append((bins * ratio).sum(axis=-1))
        halfway = log_ratio(*_halfway_shift(fraction, size))[0]
        expected_parts[1].append(-(bins * halfway).sum(axis=-1))
        expected_parts[2].append(calls * (changed * ratio).sum(axis=-1))
    got = _shift_evidence(bins, usual_bins, usual_of, scope_of)
    for grid, parts in zip(got, expected_parts, strict=True):
        # The distributions are float32; the rows' sums are taken in float64 (the dense products here in
        # float32): equal to float32's precision.
        np.testing.assert_allclose(grid, np.stack(parts, axis=-1), rtol=1e-4, atol=1e-5)
