"""Window sums of per-minute grids, computed on the rows the windows cover and nothing else.

The evidence templates evaluate a scan of about two hours, but their grids hold a week of minutes (the
same hours of previous days are read for the baselines). Cumulative sums over the whole week, to read a
few windows of it, were most of a cycle's arithmetic; these functions give the same sums from the rows
each family of windows covers (the same hours of each previous day, the trailing day, the scan): the
same clipping to the grid as ``stats.window_sums``. Pure numpy, no I/O.

Integer-valued grids (calls, tokens, counts) give exactly the same sums. Float grids (cost, hits) are
summed over fewer rows, so their sums may differ from a week-long cumulative difference in the last
bits only (the local sums are the more precise).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np

from tokenpulse.detectors.stats import (
    MINUTES_PER_DAY,
    SAME_HOURS,
    cumsum_rows,
    merge_overlapping,
    window_sums,
)

# Zero rows a grid keeps on each side of a gap between the ranges its history read: more than any local
# window reaches into a gap (the quarter hours within an hour of a block, ``stats.block_terms``; the
# excess functions' half hour before the trailing day and 15 minutes either side).
GAP_KEPT = 90
# What a gap is shortened by is a whole number of these: quarter hours stay aligned to the grid's start.
GAP_STEP = 15


@dataclass(frozen=True)
class Timeline:
    """Where the minutes of a history fall in its grids' rows. A live cycle reads the trailing day and
    the scan, and the same hours of previous days: a week of minutes, of which a grid holds the ranges
    read and ``GAP_KEPT`` zero rows either side of each gap between them (about half the week). Within
    a range, and across what is left of a gap, rows are minutes apart as their minutes are; a window
    across a gap skips only zero rows (the same sums: the same additions, in the same order).

    Minutes are offsets from the history's start; rows, from the grid's first (the same minute)."""

    minutes: int  # of the history: [0, minutes)
    removed: tuple[tuple[int, int], ...] = ()  # [start, end) minutes of the gaps left out, sorted

    @classmethod
    def of_ranges(cls, ranges: Sequence[tuple[int, int]], minutes: int) -> Timeline:
        """The timeline of a history of ``minutes`` that read ``ranges`` (sorted, disjoint [start, end)
        minutes): of each gap between two ranges, all but ``GAP_KEPT`` rows either side (a whole number
        of ``GAP_STEP``) left out."""
        removed = []
        for (_, end), (start, _) in pairwise(ranges):
            cut = (start - end - 2 * GAP_KEPT) // GAP_STEP * GAP_STEP
            if cut > 0:
                removed.append((end + GAP_KEPT, end + GAP_KEPT + cut))
        return cls(minutes, tuple(removed))

    @property
    def rows(self) -> int:
        """The rows of the grids: the minutes held."""
        return self.minutes - sum(b - a for a, b in self.removed)

    def row(self, minute: np.ndarray) -> np.ndarray:
        """The row of each minute (int array); a minute left out falls where its gap was shortened (a
        window's bound there sums the same rows: the minutes left out are zeros), and minutes outside
        the history move with the rows at its edges (clipped as windows clip, they are its edges)."""
        minute = np.asarray(minute, dtype=np.int64)
        if not self.removed:
            return minute.copy()
        row = self._rows[np.clip(minute, 0, self.minutes)]
        row = np.where(minute > self.minutes, minute - self.minutes + self.rows, row)
        return np.where(minute < 0, minute, row)

    def minute(self, row: np.ndarray) -> np.ndarray:
        """The minute of each row (``row``'s inverse on the minutes held)."""
        row = np.asarray(row, dtype=np.int64)
        out = row.copy()
        before = 0  # minutes left out before the gap
        for a, b in self.removed:
            out += np.where(row >= a - before, b - a, 0)
            before += b - a
        return out

    def held(self, minute: np.ndarray) -> np.ndarray:
        """Whether each minute is held (not left out)."""
        minute = np.asarray(minute, dtype=np.int64)
        return self._held[np.clip(minute, 0, self.minutes)] | (minute < 0) | (minute > self.minutes)

    @cached_property
    def _rows(self) -> np.ndarray:
        """``row`` of each minute of [0, minutes] (a frame's rows are mapped by one lookup)."""
        minute = np.arange(self.minutes + 1)
        out = minute.copy()
        for a, b in self.removed:
            out -= np.clip(minute - a, 0, b - a)
        return out

    @cached_property
    def _held(self) -> np.ndarray:
        """``held`` of each minute of [0, minutes]."""
        held = np.ones(self.minutes + 1, dtype=bool)
        for a, b in self.removed:
            held[a:b] = False
        return held

    def earlier(self, rows: np.ndarray, minutes: np.ndarray | int) -> np.ndarray:
        """The row ``minutes`` before each of ``rows`` (a minute left out: where its gap was shortened)."""
        return self.row(self.minute(rows) - minutes)

    def held_rows(self, minute: np.ndarray) -> np.ndarray:
        """The row of each minute, -1 where it is left out (a frame's rows: one lookup where they all lie
        in the history, as they do)."""
        minute = np.asarray(minute, dtype=np.int64)
        if not len(minute) or minute.min() < 0 or minute.max() > self.minutes:
            return np.where(self.held(minute), self.row(minute), -1)
        return self._held_rows[minute]

    @cached_property
    def _held_rows(self) -> np.ndarray:
        """``held_rows`` of each minute of [0, minutes]."""
        return np.where(self._held, self._rows, -1)

    def same_hour_rows(self, positions: np.ndarray, days: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per previous day (1 to ``days``), the rows [start, end) of the ``SAME_HOURS`` minutes either side
        of the same minute that day, for each of ``positions`` (``same_hour_sums``), computed once per
        positions: every grid of an evaluation asks for them at the same positions (532 lookups of a
        live cycle's 38 sums, 70 distinct)."""
        key = (np.asarray(positions, dtype=np.int64).tobytes(), days)
        held = self._same_hours.get(key)
        if held is None:
            held = self._same_hours[key] = [
                (
                    self.earlier(positions, k * MINUTES_PER_DAY + SAME_HOURS),
                    self.earlier(positions, k * MINUTES_PER_DAY - SAME_HOURS),
                )
                for k in range(1, days + 1)
            ]
        return held

    @cached_property
    def _same_hours(self) -> dict[tuple[bytes, int], list[tuple[np.ndarray, np.ndarray]]]:
        return {}


def span_sums(grid: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sums of ``grid`` (minutes x scopes) over [starts[i], ends[i]) for each i (the same rows for every
    scope), clipped to the grid as ``stats.window_sums`` clips: one cumulative sum over the rows the
    windows cover, not over the grid."""
    rows = grid.shape[0]
    ends = np.clip(np.asarray(ends, dtype=np.int64), 0, rows)
    starts = np.minimum(np.clip(np.asarray(starts, dtype=np.int64), 0, rows), ends)
    if not starts.size:
        return np.zeros((0, grid.shape[1]))
    memo = _held_sums(grid)
    key = (starts.tobytes(), ends.tobytes()) if memo is not None else None
    if memo is not None and key in memo:
        return memo[key].copy()  # a copy: callers may add into what they get
    lo, hi = int(starts.min()), int(ends.max())
    part = _cumulative_rows(grid, lo, hi)
    sums = part[ends - lo] - part[starts - lo]
    if memo is not None and sums.size * _HELD_SHARE <= grid.size:
        memo[key] = sums.copy()
    return sums


# The span sums of each grid held for an evaluation (``hold_sums``), by the spans' bounds: a live cycle's
# detectors ask for the same windows of the same grids (the same hours of previous days and the trailing
# day of the calls at service+route, for six of them): 96 of its 335 span sums repeated one before.
_HELD_SUMS: dict[int, tuple[weakref.ref[np.ndarray], dict[tuple[bytes, bytes], np.ndarray]]] = {}
# Sums are held only where they are at most this share of their grid: a live cycle's scan of two hours
# against a week-long grid (1/40), not a backtest's day of times (its sums about the grid's size, a dozen
# of them per grid held for the whole evaluation).
_HELD_SHARE = 16


def hold_sums(grid: np.ndarray) -> None:
    """Keep ``grid``'s span sums (``span_sums``) for as long as it lives, so that a detector that asks
    for the same spans of it again gets them without summing them again. Only for a grid that does not
    change (``data.GridMemo``'s: read-only, shared by the detectors of one evaluation)."""
    if id(grid) in _HELD_SUMS:
        return
    _HELD_SUMS[id(grid)] = (weakref.ref(grid), {})
    weakref.finalize(grid, _HELD_SUMS.pop, id(grid), None)


def _held_sums(grid: np.ndarray) -> dict[tuple[bytes, bytes], np.ndarray] | None:
    """The span sums held for ``grid`` (None: it is not held; an id of a grid gone is not its)."""
    held = _HELD_SUMS.get(id(grid))
    return held[1] if held is not None and held[0]() is grid else None


def same_hour_sums(
    grid: np.ndarray, positions: np.ndarray, days: int, timeline: Timeline | None = None
) -> np.ndarray:
    """Per (position, scope): the sum over the ``SAME_HOURS`` minutes either side of the same minute of
    each of ``days`` previous days (on ``timeline``'s rows: by default, a row a minute)."""
    total = np.zeros((len(positions), grid.shape[1]))
    if timeline is not None:
        for early, late in timeline.same_hour_rows(positions, days):
            total += span_sums(grid, early, late)
        return total
    for k in range(1, days + 1):
        centre = positions - k * MINUTES_PER_DAY
        total += span_sums(grid, centre - SAME_HOURS, centre + SAME_HOURS)
    return total


def trailing_day_sums(grid: np.ndarray, positions: np.ndarray, lag: int) -> np.ndarray:
    """Per (position, scope): the sum over the day ending ``lag`` minutes before the position."""
    return span_sums(grid, positions - lag - MINUTES_PER_DAY, positions - lag)


def excess_sums(
    excess: Callable[..., tuple[np.ndarray, ...]],
    grids: Sequence[np.ndarray],
    positions: np.ndarray,
    lag: int,
    margin: int,
) -> list[np.ndarray]:
    """The trailing-day sums (``trailing_day_sums``) at ``positions`` of each grid ``excess(*grids)``
    returns (``stats.share_excess``, ``stats.mean_excess``: per-minute terms of a week-long grid), with
    ``excess`` computed only on the rows those sums read and ``margin`` rows before them (more than its
    local windows reach: the rows read are then computed exactly). The rest of the week is summed by
    nothing, so it is neither computed nor held."""
    positions = np.asarray(positions, dtype=np.int64)
    start = max(int(positions.min()) - lag - MINUTES_PER_DAY - margin, 0)
    parts = excess(*(grid[start:] for grid in grids))
    return [trailing_day_sums(part, positions - start, lag) for part in parts]


def block_trailing_day_sums(
    blocks: np.ndarray, block: int, rows: int, positions: np.ndarray, lag: int
) -> np.ndarray:
    """``trailing_day_sums`` of a grid of ``rows`` minutes that holds ``blocks`` (per block of ``block``
    minutes x scopes, ``stats.block_terms``) on each block's last minute and 0 elsewhere, from the
    blocks themselves: the same sums (the same additions, in the same order), without the grid."""
    positions = np.asarray(positions, dtype=np.int64)

    def before(minute: np.ndarray) -> np.ndarray:
        """How many blocks end before ``minute`` (clipped to the grid, as ``span_sums`` clips)."""
        minute = np.clip(minute, 0, rows)
        return np.clip(-((block - 1 - minute) // block), 0, len(blocks))

    ends = before(positions - lag)
    return span_sums(blocks, np.minimum(before(positions - lag - MINUTES_PER_DAY), ends), ends)


def read_spans(
    positions: np.ndarray, lag: int, days: int, margin: int, rows: int, timeline: Timeline | None = None
) -> list[tuple[int, int]]:
    """The rows of a grid of ``rows`` that the sums of a scan at ``positions`` read (sorted, disjoint
    [start, end) spans): the two hours around the same minutes of ``days`` previous days
    (``same_hour_sums``, on ``timeline``'s rows), and from the trailing day's start (``lag`` before the
    scan, and ``margin`` more: ``excess_sums``) to the grid's end (the scan itself and its alarms' runs).
    Of a live cycle's week-long grid, about a third."""
    first, last = int(np.min(positions)), int(np.max(positions))
    spans = []
    for k in range(1, days + 1):
        start, end = k * MINUTES_PER_DAY + SAME_HOURS, k * MINUTES_PER_DAY - SAME_HOURS
        if timeline is None:
            spans.append((first - start, last - end))
        else:
            spans.append((int(timeline.earlier(first, start)), int(timeline.earlier(last, end))))
    spans.append((first - lag - MINUTES_PER_DAY - margin, rows))
    return merge_overlapping((max(a, 0), min(b, rows)) for a, b in spans)


def on_spans(
    compute: Callable[[slice], np.ndarray], spans: Sequence[tuple[int, int]], shape: tuple[int, ...]
) -> np.ndarray:
    """A grid of ``shape`` holding ``compute(rows)`` (an elementwise function of grids' rows) on each of
    ``spans`` and 0 elsewhere: a derived grid computed only where ``read_spans`` says it is read."""
    out = np.zeros(shape)
    for start, end in spans:
        out[start:end] = compute(slice(start, end))
    return out


def baseline_sums(
    grids: Sequence[np.ndarray],
    positions: np.ndarray,
    lag: int,
    days: int,
    enough: np.ndarray | float,
    weight_index: int = 0,
    trailing_only: int = 0,
    timeline: Timeline | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The sums of each of ``grids`` (minutes x scopes) that a baseline at ``positions`` rests on: the two
    hours around the same time of ``days`` previous days when those hold at least ``enough`` of the grid
    at ``weight_index`` (calls), else the trailing day ending ``lag`` minutes before the position (so
    the change being tested is not its own baseline). One value per (position, scope). Also the
    trailing day's sums (what a property of the scope that does not follow the time of day, such as its
    dispersion, rests on), and where the same time of day was used.

    The last ``trailing_only`` grids are only ever read from the trailing day (a dispersion's sums):
    their same-hour sums are not computed, and their "chosen" sums are the trailing day's (callers
    ignore them).

    ``timeline``: where the grids' rows are in time (``Timeline``; by default a row a minute). The
    trailing day is read as rows, inside the range a history reads before its first evaluation time."""
    positions = np.asarray(positions, dtype=np.int64)
    both = len(grids) - trailing_only
    trailing = [trailing_day_sums(g, positions, lag) for g in grids]
    same_hour = [same_hour_sums(g, positions, days, timeline) for g in grids[:both]]
    use_same_hour = same_hour[weight_index] >= enough
    chosen = [np.where(use_same_hour, s, t) for s, t in zip(same_hour, trailing[:both], strict=True)]
    return chosen + trailing[both:], trailing, use_same_hour


def run_sums(grid: np.ndarray, onset: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Sums of ``grid`` over each alarm's evidence run, [onset, position] inclusive, per (time, scope)
    (``onset``: times x scopes, ``positions``: per time), from the rows the runs cover."""
    lo = max(min(int(onset.min(initial=positions.min() + 1)), int(positions.min()) + 1), 0)
    hi = max(int(positions.max()) + 1, lo)
    return window_sums(_cumulative_rows(grid, lo, hi), positions[:, None] + 1 - lo, onset - lo)


def _cumulative_rows(grid: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The cumulative sums of ``grid``'s rows [lo, hi), after a row of zeros (row k: the sum of the first
    k). Only the zero row is written before the sums: zeroing the whole array first (a day of a week-long
    grid's scopes, hundreds of times a cycle) cost about as much as summing it."""
    part = np.empty((hi - lo + 1, grid.shape[1]))
    part[0] = 0.0
    cumsum_rows(grid[lo:hi], part[1:])
    return part
