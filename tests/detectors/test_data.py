"""The pure helpers under every detector."""

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tokenpulse.detectors.data import (
    GridMemo,
    _trailing_medians,
    _unique_codes,
    grid_layout,
    hourly_baseline,
    trailing_sum,
)
from tokenpulse.detectors.history import history_ranges

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _rollup_rows(rng: np.random.Generator, minutes: int, rows: int, **columns: Any) -> pd.DataFrame:
    """``rows`` random rollup rows over ``minutes`` from START: a minute, a service, ``columns``, calls."""
    return pd.DataFrame(
        {
            "minute": pd.Timestamp(START) + pd.to_timedelta(rng.integers(0, minutes, rows), "min"),
            "service": pd.array(rng.choice(["b", "a", "c"], rows), dtype="string[pyarrow]"),
            **columns,
            "calls": rng.integers(0, 9, rows).astype(float),
        }
    )


def test_trailing_sum_covers_the_minutes_before() -> None:
    grid = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    assert trailing_sum(grid, 2)["a"].tolist()[1:] == [1.0, 3.0, 5.0]


def test_history_ranges_merge_the_same_hours_of_previous_days() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    ranges = history_ranges([now], timedelta(hours=25), days=3)
    # The day-1 same hour (with its margin) overlaps the trailing day: one range.
    assert ranges[-1] == (now - timedelta(days=1, minutes=90), now + timedelta(minutes=1))
    assert len(ranges) == 3
    assert ranges[0][0] == now - timedelta(days=3, minutes=90)


def test_hourly_baseline_of_many_minutes_is_each_minutes_own() -> None:
    """Computed once per distinct hour, the baseline of a scan's minutes is what each minute gets alone:
    the median of the same hour of previous days, else of the trailing day's hours (the last hour of
    history has no same hour before it: a trailing-day baseline)."""
    rng = np.random.default_rng(3)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    hours = pd.date_range(now - timedelta(days=3), now, freq="1h", inclusive="left")
    frame = pd.DataFrame(
        [
            {"hour": h, "service": s, "calls": int(rng.integers(0, 60)), "value": float(rng.uniform(1, 9))}
            for h in hours
            for s in ("a", "b")
            if not (s == "b" and h < now - timedelta(days=1))  # b is a day old: trailing baselines
        ]
    )
    times = [now - timedelta(minutes=150) + timedelta(minutes=k) for k in range(151)]
    together = hourly_baseline(frame, ("service",), times, 10, 30)
    alone = pd.concat([hourly_baseline(frame, ("service",), [t], 10, 30) for t in times])
    pd.testing.assert_frame_equal(together, alone[together.columns])
    assert together.notna().to_numpy().all() and together.nunique().min() > 1


def test_grid_memo_builds_each_grid_once_and_hands_it_out_read_only() -> None:
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "minute": [start, start, start + timedelta(minutes=2), start + timedelta(minutes=9)],
            "service": ["b", "a", "a", "a"],
            "calls": [1.0, 2.0, 3.0, 4.0],
        }
    )
    end = start + timedelta(minutes=5)  # the last row is outside the range
    memo = GridMemo()
    scopes, first = memo.grid_arrays(frame, ("service",), ("calls", "errors"), start, end)
    _, again = memo.grid_arrays(frame, ("service",), ("calls",), start, end)
    assert list(scopes) == [(("service", "a"),), (("service", "b"),)]
    assert first["calls"][:, 0].tolist() == [2.0, 0.0, 3.0, 0.0, 0.0] and not first["errors"].any()
    assert again["calls"] is first["calls"] and len(memo.layouts) == 1
    with pytest.raises(ValueError):
        first["calls"][0, 0] = 9.0  # a detector cannot change what the others read
    filtered = frame[frame["service"] == "a"]  # another frame: its own layout
    scopes, grids = memo.grid_arrays(filtered, ("service",), ("calls",), start, end)
    assert list(scopes) == [(("service", "a"),)] and len(memo.layouts) == 2
    assert grids["calls"][:, 0].tolist() == first["calls"][:, 0].tolist()


def _pivot_reference(frame: pd.DataFrame, dims: tuple[str, ...], column: str, start, end) -> pd.DataFrame:
    """A grid the slow way: group by minute and scope, pivot, fill every minute."""
    index = pd.date_range(start, end, freq="1min", inclusive="left")
    inside = frame[(frame["minute"] >= start) & (frame["minute"] < end)]
    table = inside.pivot_table(
        index="minute", columns=list(dims), values=column, aggfunc="sum", fill_value=0.0
    )
    return table.reindex(index, fill_value=0.0).astype(float)


@pytest.mark.parametrize("dims", [("service",), ("tenant", "service", "route"), ("route", "tenant")])
def test_grid_layouts_sum_each_minute_and_scope_as_a_pivot_does(dims: tuple[str, ...]) -> None:
    """Grids of several scopes of one frame (the memo shares each column's codes between them) hold what
    a pivot of the frame holds, scopes in sorted order, rows outside the range dropped."""
    rng = np.random.default_rng(7)
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    rows = 3000
    frame = pd.DataFrame(
        {
            "minute": pd.Timestamp(start).floor("min") + pd.to_timedelta(rng.integers(-5, 130, rows), "min"),
            "tenant": rng.choice(["", "t1", "t2"], rows),
            "service": pd.array(rng.choice(["b", "a", "c"], rows), dtype="string[pyarrow]"),
            "route": rng.choice(["/x", "/y", "/z", "/w"], rows),
            "calls": rng.integers(0, 9, rows).astype(float),
        }
    )
    end = start + timedelta(minutes=120)
    memo = GridMemo()
    memo.grid_arrays(frame, ("service", "tenant"), ("calls",), start, end)  # codes of the same columns
    scopes, grids = memo.grid_arrays(frame, dims, ("calls",), start, end)
    reference = _pivot_reference(frame, dims, "calls", pd.Timestamp(start), pd.Timestamp(end))
    keys = reference.columns if len(dims) > 1 else [(k,) for k in reference.columns]
    assert list(scopes) == [tuple(zip(dims, map(str, key), strict=True)) for key in keys]
    assert grids["calls"].shape == reference.shape
    np.testing.assert_array_equal(grids["calls"], reference.to_numpy())


def test_grids_of_one_frame_over_other_ranges_and_scopes_are_each_their_own_pivot() -> None:
    """The memo computes each row's minute and each column's values once per frame: the grids of the
    frame over another range (rows all inside it, or not) and at other scopes are still each a pivot."""
    rng = np.random.default_rng(11)
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    rows = 2000
    frame = pd.DataFrame(
        {
            "minute": pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 60, rows), "min"),
            "service": rng.choice(["b", "a", "c"], rows),
            "route": rng.choice(["/x", "/y"], rows),
            "calls": rng.integers(0, 9, rows).astype(float),
            "cost_usd": rng.random(rows),
        }
    )
    memo = GridMemo()
    for first, minutes, dims in (
        (start, 60, ("service",)),  # every row inside
        (start - timedelta(minutes=7), 80, ("service", "route")),  # every row inside, other offsets
        (start + timedelta(minutes=10), 30, ("service",)),  # rows before and after the range
    ):
        end = first + timedelta(minutes=minutes)
        scopes, grids = memo.grid_arrays(frame, dims, ("calls", "cost_usd"), first, end)
        for column in ("calls", "cost_usd"):
            reference = _pivot_reference(frame, dims, column, pd.Timestamp(first), pd.Timestamp(end))
            assert grids[column].shape == reference.shape and len(scopes) == reference.shape[1]
            np.testing.assert_allclose(grids[column], reference.to_numpy(), rtol=1e-12)


def test_unique_codes_counted_or_sorted_are_numpys() -> None:
    rng = np.random.default_rng(1)
    for codes, bound in (
        (rng.integers(0, 50, 1000), 50),  # counted
        (rng.integers(0, 10**9, 1000), 10**9),  # sorted: the bound is far above their number
        (np.array([3, -1, 3, 0]), 4),  # a missing value's -1: sorted, as np.unique does
        (np.zeros(0, dtype=np.int64), 1),
    ):
        used, inverse = _unique_codes(codes, bound)
        expected_used, expected_inverse = np.unique(codes, return_inverse=True)
        np.testing.assert_array_equal(used, expected_used)
        np.testing.assert_array_equal(inverse, expected_inverse)


def test_grids_of_a_frames_rows_reuse_its_codes_and_are_those_of_the_rows_alone() -> None:
    """A filtered frame's layout from its parent's codes (values the rows lack included) has the
    scopes, order and sums of the filtered frame laid out on its own."""
    rng = np.random.default_rng(3)
    start, end = START, START + timedelta(minutes=60)
    frame = _rollup_rows(rng, 60, 2000, router=rng.choice(["", "r1", "r0"], 2000))
    memo = GridMemo()
    memo.grid_arrays(frame, ("service", "router"), ("calls",), start, end)  # the parent's codes
    routed = memo.rows(frame, frame["router"] != "")
    scopes, grids = memo.grid_arrays(routed, ("service", "router"), ("calls",), start, end)
    alone_scopes, alone = GridMemo().grid_arrays(
        frame[frame["router"] != ""], ("service", "router"), ("calls",), start, end
    )
    assert list(scopes) == list(alone_scopes) and all(dict(s)["router"] != "" for s in scopes)
    np.testing.assert_array_equal(grids["calls"], alone["calls"])
    # The rows themselves are the filtered frame's (its text as categories of the parent's codes).
    assert isinstance(routed["service"].dtype, pd.CategoricalDtype)
    text = {"service": object, "router": object}
    pd.testing.assert_frame_equal(routed.astype(text), frame[frame["router"] != ""].astype(text))


@pytest.mark.parametrize("dims", [("service",), ("tenant", "service")])
def test_hourly_values_are_the_pivot_of_the_frame(dims: tuple[str, ...]) -> None:
    """Each hour's first value per scope where the hour's calls reach the minimum, as pivoting the frame
    by hour and scope gives it (how ``hourly_baseline`` built it before), from the hours' codes."""
    from tokenpulse.detectors.data import _hourly_values, _scope_index

    rng = np.random.default_rng(len(dims))
    now = pd.Timestamp("2026-11-20 12:00", tz="UTC")
    rows = 400
    frame = pd.DataFrame(
        {
            "hour": now - pd.to_timedelta(rng.integers(0, 72, rows), "h"),
            "tenant": rng.choice(["", "t1"], rows),
            "service": pd.array(rng.choice(["b", "a", "c"], rows), dtype="string[pyarrow]"),
            "calls": rng.integers(0, 60, rows),
            "value": rng.uniform(1, 9, rows),
        }
    )  # repeated (hour, scope) rows: the first value, the calls summed
    value = frame.pivot_table(
        index="hour", columns=list(dims), values="value", aggfunc="first", observed=True
    )
    calls = frame.pivot_table(index="hour", columns=list(dims), values="calls", aggfunc="sum", observed=True)
    hours = pd.date_range(value.index.min(), now, freq="1h")
    expected = value.where(calls >= 30).reindex(hours)
    expected.columns = _scope_index(dims, expected.columns)
    pd.testing.assert_frame_equal(_hourly_values(frame, dims, now, 30), expected, check_freq=False)


def test_trailing_medians_are_pandas_rolling_medians_at_the_hours_asked() -> None:
    """The trailing baseline computed at a few hours is the rolling median of the whole table there (even
    and odd counts of hours with a value, too few of them, hours the table lacks)."""
    rng = np.random.default_rng(7)
    hours = pd.date_range("2026-01-01", periods=200, freq="1h", tz="UTC")
    values = rng.lognormal(size=(200, 6))
    values[rng.random(values.shape) < 0.4] = np.nan  # hours under the minimum calls
    values[:, 5] = np.nan
    values[150:190, 4] = np.nan  # a gap: windows with 0-2 values
    values[:, 3] = np.round(values[:, 3], 1)  # ties
    table = pd.DataFrame(values, index=hours)
    ends = pd.DatetimeIndex([hours[0] - pd.Timedelta(hours=1), *hours, hours[-1] + pd.Timedelta(hours=1)])
    expected = table.rolling(24, min_periods=3).median().reindex(ends).to_numpy()
    assert np.array_equal(_trailing_medians(table, ends), expected, equal_nan=True)


def test_a_frame_that_keeps_whole_scopes_of_another_picks_its_grids() -> None:
    """The memo's grids of a frame at scope dimensions in another order, and of rows picked from a frame
    (``GridMemo.rows``) that keep or drop each scope whole, are columns of the grids it holds: the same
    scopes and sums as a layout of their own. Rows that split a scope get a layout of their own."""
    rng = np.random.default_rng(5)
    start, end = START, START + timedelta(minutes=90)
    routes = pd.array(rng.choice(["", "/y", "/x", "/z"], 4000), dtype="string[pyarrow]")
    frame = _rollup_rows(rng, 90, 4000, route=routes, cost_usd=rng.random(4000))
    memo = GridMemo()
    memo.grid_arrays(frame, ("route", "service"), ("calls",), start, end)
    cases = (
        (frame, ("service", "route")),  # another order
        (memo.rows(frame, frame["route"] != ""), ("service", "route")),  # routes named: whole scopes
        (memo.rows(frame, frame["calls"] > 2), ("service", "route")),  # splits scopes
    )
    for part, dims in cases:
        scopes, grids = memo.grid_arrays(part, dims, ("calls", "cost_usd"), start, end)
        own = grid_layout(part, dims, start, end)
        assert list(scopes) == list(own.scopes)
        for column in ("calls", "cost_usd"):
            np.testing.assert_array_equal(grids[column], own.sum(part, column))
    kinds = [type(layout).__name__ for _, layout in memo.layouts.values()]
    assert kinds == ["GridLayout", "PickedLayout", "PickedLayout", "GridLayout"]
