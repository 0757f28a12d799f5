"""Window sums from the rows the windows cover give what the week-long cumulative sums give: exactly on
counts, to the last bits on float sums, including windows the grid's edges cut."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tokenpulse.detectors import stats, windows

DAY = stats.MINUTES_PER_DAY


def cumulative_baseline_sums(
    grids: Sequence[np.ndarray], positions: np.ndarray, lag: int, days: int, enough: float, index: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The reference ``windows.baseline_sums`` must match: the same sums from cumulative sums over the
    whole grid (how they were computed before)."""
    cumulatives = [stats.cumulative(g) for g in grids]
    here = positions[:, None] + np.zeros((1, grids[0].shape[1]), dtype=np.int64)
    same_hour = [np.zeros(here.shape) for _ in grids]
    for k in range(1, days + 1):
        centre = here - k * DAY
        for total, c in zip(same_hour, cumulatives, strict=True):
            total += stats.window_sums(c, centre + stats.SAME_HOURS, centre - stats.SAME_HOURS)
    trailing = [stats.window_sums(c, here - lag, here - lag - DAY) for c in cumulatives]
    use_same_hour = same_hour[index] >= enough
    chosen = [np.where(use_same_hour, s, t) for s, t in zip(same_hour, trailing, strict=True)]
    return chosen, trailing, use_same_hour


def count_grid(rng: np.random.Generator, minutes: int, scopes: int) -> np.ndarray:
    """Poisson calls with empty scopes and empty stretches, as a week of rollup looks."""
    grid = rng.poisson(rng.uniform(0, 20, scopes), (minutes, scopes)).astype(float)
    grid[:, 0] = 0.0  # a scope without calls
    grid[rng.integers(0, minutes, minutes // 3)] = 0.0  # minutes the history did not read
    return grid


@pytest.mark.parametrize(
    "first",
    [
        7 * DAY + 200,  # a live cycle: every same-hour window inside the grid
        3 * DAY + 30,  # a young store: most previous days before the grid starts, some windows cut
        40,  # the store's first hour: the trailing day and the previous days outside the grid
    ],
)
def test_baseline_sums_are_the_cumulative_ones(first: int) -> None:
    rng = np.random.default_rng(first)
    minutes, scopes = 7 * DAY + 400, 9
    calls = count_grid(rng, minutes, scopes)
    part = np.minimum(rng.poisson(calls * 0.1).astype(float), calls)
    cost = calls * rng.uniform(0.001, 0.02, calls.shape)  # a float grid
    positions = np.arange(first, first + 121)
    grids = (calls, part, cost)

    expected, expected_trailing, expected_same = cumulative_baseline_sums(
        grids, positions, lag=60, days=7, enough=30.0
    )
    chosen, trailing, same_hour = windows.baseline_sums(grids, positions, lag=60, days=7, enough=30.0)

    np.testing.assert_array_equal(same_hour, expected_same)
    for got, want in zip(chosen[:2] + trailing[:2], expected[:2] + expected_trailing[:2], strict=True):
        np.testing.assert_array_equal(got, want)  # counts: exact
    np.testing.assert_allclose(chosen[2], expected[2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trailing[2], expected_trailing[2], rtol=1e-12, atol=1e-12)
    assert same_hour.any() == (first > DAY)  # the cases do test both baselines
    assert (~same_hour).any()


def test_trailing_only_grids_get_the_trailing_day_and_their_weight_still_chooses() -> None:
    rng = np.random.default_rng(1)
    calls = count_grid(rng, 8 * DAY, 4)
    excess = rng.normal(0, 1, calls.shape)
    positions = np.arange(7 * DAY + 100, 7 * DAY + 160)
    expected, expected_trailing, _ = cumulative_baseline_sums(
        (calls, excess), positions, lag=60, days=7, enough=5.0
    )
    chosen, trailing, _ = windows.baseline_sums(
        (calls, excess), positions, lag=60, days=7, enough=5.0, trailing_only=1
    )
    np.testing.assert_array_equal(chosen[0], expected[0])
    np.testing.assert_allclose(trailing[1], expected_trailing[1], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(chosen[1], expected_trailing[1], rtol=1e-9, atol=1e-9)


def test_run_sums_are_the_sums_since_each_onset() -> None:
    rng = np.random.default_rng(2)
    grid = count_grid(rng, 3000, 6)
    positions = np.array([2800, 2850, 2900])
    onset = rng.integers(2600, 2902, (3, 6))
    onset[0, 0] = positions[0] + 1  # an alarm that starts after the minute: an empty run
    want = stats.window_sums(stats.cumulative(grid), positions[:, None] + 1, onset)
    got = windows.run_sums(grid, onset, positions)
    np.testing.assert_array_equal(got, want)
    assert got[0, 0] == 0 and got[2, 1] == grid[onset[2, 1] : 2901, 1].sum()


def test_span_sums_clip_to_the_grid_as_window_sums_does() -> None:
    grid = np.arange(20.0).reshape(10, 2)
    starts, ends = np.array([-5, 3, 8, 12]), np.array([2, 7, 15, 20])
    want = stats.window_sums(stats.cumulative(grid), ends[:, None], starts[:, None])
    np.testing.assert_array_equal(windows.span_sums(grid, starts, ends), want)


@pytest.mark.parametrize("excess", [stats.share_excess, stats.mean_excess])
@pytest.mark.parametrize("first", [7 * DAY + 200, DAY + 100, 40])
def test_excess_sums_are_those_of_the_excess_of_the_whole_grid(excess, first: int) -> None:
    """The trailing-day sums of an excess computed on the rows they read (and a margin) are those of
    the excess of the whole week-long grid: its local windows never reach past the margin."""
    rng = np.random.default_rng(first)
    calls = count_grid(rng, 8 * DAY, 7)
    part = np.minimum(rng.poisson(2.0, calls.shape).astype(float), calls)
    positions = np.arange(first, first + 121)
    whole = [windows.trailing_day_sums(g, positions, 60) for g in excess(part, calls)]
    local = windows.excess_sums(excess, (part, calls), positions, 60, 30)
    for got, expected in zip(local, whole, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("first", [7 * DAY + 200, DAY + 100, 40])
@pytest.mark.parametrize("minutes", [8 * DAY, 8 * DAY + 7])  # a grid that ends inside a block
def test_block_sums_are_the_trailing_day_sums_of_the_placed_blocks(first: int, minutes: int) -> None:
    """A count's block terms summed over the trailing day from the blocks are the sums of the minute
    grid that holds each block's terms on its last minute (``stats.block_excess``), to the last bit."""
    calls = count_grid(np.random.default_rng(first), minutes, 6)
    positions = np.arange(first, min(first + 121, minutes))
    placed = [windows.trailing_day_sums(g, positions, 60) for g in stats.block_excess(calls)]
    from_blocks = [
        windows.block_trailing_day_sums(terms, 15, minutes, positions, 60)
        for terms in stats.block_terms(calls)
    ]
    for got, expected in zip(from_blocks, placed, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("first", [7 * DAY + 200, 2 * DAY + 30, 40])
def test_the_sums_of_a_scan_read_nothing_outside_its_read_spans(first: int) -> None:
    """A grid whose rows outside ``read_spans`` are NaN gives the scan's baseline, excess and run sums
    of the grid itself: a derived grid computed only on the spans (``on_spans``) is enough."""
    rng = np.random.default_rng(first)
    calls = count_grid(rng, first + 2, 5)  # a history ends with the evaluated minute
    part = np.minimum(rng.poisson(2.0, calls.shape).astype(float), calls)
    positions = np.arange(max(first - 120, 0), first + 1)
    spans = windows.read_spans(positions, 60, 7, 30, calls.shape[0])
    if first > 7 * DAY:  # a live cycle's week: a third of it is read
        assert sum(b - a for a, b in spans) < calls.shape[0] // 2

    def sums(part: np.ndarray, total: np.ndarray) -> list[np.ndarray]:
        chosen, trailing, _ = windows.baseline_sums((total, part), positions, lag=60, days=7, enough=30.0)
        excess = windows.excess_sums(stats.share_excess, (part, total), positions, 60, 30)
        onset = positions[0] + rng.integers(0, 10, (len(positions), part.shape[1]))
        onset = np.minimum(onset, positions[:, None])
        return [*chosen, *trailing, *excess, windows.run_sums(part, onset, positions)]

    outside = windows.on_spans(lambda r: part[r], spans, part.shape)
    mask = np.ones(part.shape[0], dtype=bool)
    for a, b in spans:
        mask[a:b] = False
    outside[mask] = np.nan
    state = rng.bit_generator.state
    expected = sums(part, calls)
    rng.bit_generator.state = state  # the same onsets
    for got, want in zip(sums(outside, calls), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def live_timeline(
    first: int, lookback: int, margin: int = 185
) -> tuple[windows.Timeline, list[tuple[int, int]]]:
    """The timeline of a live cycle's history (``history.history_ranges``) evaluating minute ``first``:
    the ``lookback`` before it and ``margin`` around the same minute of 7 previous days; and its ranges."""
    start = first - 7 * DAY - margin  # the history's first minute
    ranges = stats.merge_overlapping(
        [
            (first - lookback, first + 1),
            *((first - k * DAY - margin, first + 1 - k * DAY + margin) for k in range(1, 8)),
        ]
    )
    ranges = [(a - start, b - start) for a, b in ranges]
    return windows.Timeline.of_ranges(ranges, first + 1 - start), ranges


@pytest.mark.parametrize("lookback", [27 * 60 + 5, 32 * 60 + 35])
def test_a_grid_of_the_minutes_read_gives_the_sums_of_the_week_long_grid(lookback: int) -> None:
    """A grid holding only the ranges a live cycle read (and ``GAP_KEPT`` rows either side of each gap)
    gives the same baseline, excess, block and run sums as the week-long grid that is 0 between them, to
    the last bit: on counts and on float grids."""
    rng = np.random.default_rng(lookback)
    timeline, ranges = live_timeline(7 * DAY + 185, lookback)
    week = count_grid(rng, timeline.minutes, 6)
    week[~np.isin(np.arange(timeline.minutes), np.concatenate([np.arange(a, b) for a, b in ranges]))] = 0.0
    cost = week * rng.uniform(0.001, 0.02, week.shape)
    held = timeline.held(np.arange(timeline.minutes))
    assert held.sum() == timeline.rows < 0.6 * timeline.minutes
    minutes = np.arange(timeline.minutes - 121, timeline.minutes)  # the scan, the last minute of the history
    rows = timeline.row(minutes)
    np.testing.assert_array_equal(timeline.minute(rows), minutes)
    np.testing.assert_array_equal(timeline.row(np.arange(timeline.minutes))[held], np.arange(timeline.rows))

    def sums(
        grids: Sequence[np.ndarray], positions: np.ndarray, on: windows.Timeline | None
    ) -> list[np.ndarray]:
        calls, spend = grids
        spans = windows.read_spans(positions, 60, 7, 30, calls.shape[0], on)
        part = windows.on_spans(lambda r: np.minimum(calls[r], 3.0), spans, calls.shape)
        chosen, trailing, same_hour = windows.baseline_sums(
            (calls, part, spend), positions, lag=60, days=7, enough=30.0, timeline=on
        )
        excess = windows.excess_sums(stats.share_excess, (part, calls), positions, 60, 30)
        blocks = [
            windows.block_trailing_day_sums(terms, 15, calls.shape[0], positions, 60)
            for terms in stats.block_terms(calls)
        ]
        onset = np.minimum(positions[0] + np.arange(len(positions))[:, None] % 7, positions[:, None])
        return [*chosen, *trailing, same_hour, *excess, *blocks, windows.run_sums(spend, onset, positions)]

    for got, want in zip(
        sums((week[held], cost[held]), rows, timeline), sums((week, cost), minutes, None), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_a_timelines_held_lookups_are_its_plain_ones() -> None:
    """``held_rows`` is each minute's row, -1 where it is left out, inside the history and past its edges;
    ``same_hour_rows`` are the rows ``earlier`` gives, the same at a second asking."""
    timeline, _ = live_timeline(7 * DAY + 185, 27 * 60 + 5)
    assert timeline.removed
    inside = np.arange(timeline.minutes + 1)
    for minutes in (inside, np.arange(-3, timeline.minutes + 4), inside[::-7]):
        want = np.where(timeline.held(minutes), timeline.row(minutes), -1)
        np.testing.assert_array_equal(timeline.held_rows(minutes), want)
    positions = timeline.row(np.arange(timeline.minutes - 121, timeline.minutes))
    first = timeline.same_hour_rows(positions, 7)
    assert timeline.same_hour_rows(positions.copy(), 7) is first
    for k, (early, late) in enumerate(first, start=1):
        np.testing.assert_array_equal(early, timeline.earlier(positions, k * DAY + stats.SAME_HOURS))
        np.testing.assert_array_equal(late, timeline.earlier(positions, k * DAY - stats.SAME_HOURS))


@pytest.mark.parametrize("scopes", [3, stats.ROW_WISE_FROM - 1, stats.ROW_WISE_FROM, 600])
def test_cumulative_sums_a_row_at_a_time_are_cumsums_bit_for_bit(scopes: int) -> None:
    """Wide grids are summed a row at a time: the same additions in the same order as ``cumsum``, so the
    same bits, a NaN and a negative zero included."""
    rng = np.random.default_rng(scopes)
    grid = rng.gamma(0.3, 1e-3, (300, scopes)) * (rng.random((300, scopes)) < 0.5)
    grid[0, 0], grid[5, -1] = -0.0, np.nan
    expected = np.empty((301, scopes))
    expected[0] = 0.0
    np.cumsum(grid, axis=0, out=expected[1:])
    for got in (stats.cumulative(grid), windows._cumulative_rows(grid, 0, 300)):
        assert np.array_equal(got, expected, equal_nan=True)
        assert (np.signbit(got) == np.signbit(expected)).all()
    one = windows._cumulative_rows(grid, 7, 8)  # a single row: copied after the zero row
    assert np.array_equal(one, np.vstack([np.zeros(scopes), grid[7]]), equal_nan=True)


def test_a_held_grid_gives_its_span_sums_again_and_a_caller_cannot_change_them() -> None:
    """``hold_sums``: the same spans of a held grid are summed once; what a caller gets is its own."""
    rng = np.random.default_rng(3)
    grid = count_grid(rng, 3 * DAY, 40)
    starts, ends = np.array([10, 100, DAY]), np.array([70, DAY, 2 * DAY])
    expected = windows.span_sums(grid, starts, ends)
    windows.hold_sums(grid)
    first = windows.span_sums(grid, starts, ends)
    first += 1.0  # a caller adding into its sums
    again = windows.span_sums(grid, starts, ends)
    assert np.array_equal(again, expected)
    assert len(windows._held_sums(grid)) == 1
    everywhere = np.arange(0, 3 * DAY, 10)  # sums past a sixteenth of the grid (a backtest's): not held
    windows.span_sums(grid, everywhere, everywhere + 10)
    assert len(windows._held_sums(grid)) == 1
    key = id(grid)
    del grid
    assert key not in windows._HELD_SUMS  # gone with the grid
