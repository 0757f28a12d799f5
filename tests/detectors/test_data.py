"""The pure helpers under every detector."""

from datetime import UTC, datetime, timedelta

import pandas as pd

from tokenpulse.detectors.data import trailing_sum
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
