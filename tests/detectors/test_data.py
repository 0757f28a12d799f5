"""The pure helpers under every detector."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tokenpulse.detectors.data import GridMemo, hourly_baseline, trailing_sum
from tokenpulse.detectors.history import history_ranges


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
