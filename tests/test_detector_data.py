"""The pure helpers under every detector."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tokenpulse.detectors.data import baseline, kth_largest, trailing_sum
from tokenpulse.detectors.history import history_ranges


def random_signal(minutes: int, scopes: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0, 0.5, size=(minutes, scopes))
    values[rng.random(size=values.shape) < 0.3] = np.nan  # thin minutes
    values[: minutes // 3, 0] = np.nan  # a scope that appears later
    index = pd.date_range("2026-11-01", periods=minutes, freq="1min", tz="UTC")
    return pd.DataFrame(values, index=index, columns=[(("route", f"/r{i}"),) for i in range(scopes)])


@pytest.mark.parametrize("window", [5, 15])
def test_baseline_at_a_few_times_equals_the_rolling_baseline(window: int) -> None:
    signal = random_signal(3 * 1440 + 300, 4)
    times = list(signal.index[[100, 1500, 2000, 2900, 3 * 1440 + 299]])
    everywhere = baseline(signal, window).reindex(pd.DatetimeIndex(times))
    at_times = baseline(signal, window, times=times)
    np.testing.assert_allclose(at_times.to_numpy(), everywhere.to_numpy(), equal_nan=True)
    assert at_times.iloc[1:].notna().any().any()


def test_baseline_ignores_one_outlier() -> None:
    signal = random_signal(2 * 1440, 1).fillna(1.0) * 0 + 1.0
    signal.iloc[1440 - 5, 0] = 1e9  # one absurd minute the previous day, same hour
    (value,) = baseline(signal, 5, times=[signal.index[-5]]).iloc[0]
    assert value == 1.0


def test_trailing_sum_covers_the_minutes_before() -> None:
    grid = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    assert trailing_sum(grid, 2)["a"].tolist()[1:] == [1.0, 3.0, 5.0]


def test_kth_largest_is_a_rolling_order_statistic() -> None:
    grid = pd.DataFrame({"a": [5.0, 1.0, np.nan, 3.0, 4.0]})
    # value at t: 2nd largest of the 3 minutes before t (missing minutes count as below anything)
    assert kth_largest(grid, 3, 2)["a"].tolist()[3:] == [1.0, 1.0]


@pytest.mark.parametrize(("window", "k"), [(5, 4), (5, 5), (10, 4), (1, 1)])
def test_order_statistics_at_a_few_times_equal_the_rolling_ones(window: int, k: int) -> None:
    signal = random_signal(600, 5)
    times = list(signal.index[[0, window - 1, window, 333, 599]])
    everywhere = kth_largest(signal, window, k).reindex(pd.DatetimeIndex(times))
    np.testing.assert_array_equal(kth_largest(signal, window, k, times).to_numpy(), everywhere.to_numpy())


def test_history_ranges_merge_the_same_hours_of_previous_days() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    ranges = history_ranges([now], timedelta(hours=25), days=3)
    # The day-1 same hour (with its margin) overlaps the trailing day: one range.
    assert ranges[-1] == (now - timedelta(days=1, minutes=90), now + timedelta(minutes=1))
    assert len(ranges) == 3
    assert ranges[0][0] == now - timedelta(days=3, minutes=90)
