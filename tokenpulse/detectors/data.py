"""Pure helpers of the detectors: per-minute grids of the history's frames, trailing windows, hourly
baselines of quantiles, and the observations of the rules that are thresholds by definition (budgets).
"""

from __future__ import annotations

import ctypes
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tokenpulse.detectors.base import CRITICAL, WARNING, Observation, Scope
from tokenpulse.detectors.history import BASELINE_DAYS, DETECTOR_DIMENSIONS, FRESH, History, Sources
from tokenpulse.detectors.windows import Timeline, hold_sums

MINUTES_PER_DAY = 1440

# Rollup column -> canonical scope dimension.
SCOPE_NAMES = {"service_version": "deploy_version"}


def hourly_baseline(
    frame: pd.DataFrame,
    dims: Sequence[str],
    times: Sequence[datetime],
    window_minutes: int,
    min_calls: int,
    days: int = BASELINE_DAYS,
) -> pd.DataFrame:
    """The baseline of an hourly signal (hourly_quantile_query) at ``times``: the median of the same
    hour of previous days, else the median of the complete hours of the trailing day before the
    current window. Hours with fewer than ``min_calls`` calls do not count."""
    index = pd.DatetimeIndex([pd.Timestamp(t) for t in times])
    # Hours without a value (no call measured it: a TTFT of non-streaming calls only) say nothing.
    frame = frame[frame["value"].notna()] if "value" in frame else frame
    if frame.empty:
        return pd.DataFrame(index=index, dtype=float)
    value = _hourly_values(frame, dims, index.max().floor("h"), min_calls)
    # A time's baseline depends only on its hour and on the last complete hour before its window: computed
    # once per distinct pair (a scan of two hours of minutes has three), then given to each time.
    last_complete = (index - pd.Timedelta(minutes=window_minutes)).floor("h") - pd.Timedelta(hours=1)
    codes, _ = pd.factorize(pd.MultiIndex.from_arrays([index.floor("h"), last_complete]))
    first = np.unique(codes, return_index=True)[1]
    distinct = index[first]
    previous = [
        value.reindex((distinct - pd.Timedelta(days=k)).floor("h")).to_numpy() for k in range(1, days + 1)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: the normal "no history" case
        same_hour = np.nanmedian(np.stack(previous), axis=0)
    trailing = _trailing_medians(value, last_complete[first])
    baseline = np.where(np.isnan(same_hour), trailing, same_hour)
    return pd.DataFrame(baseline[codes], index=index, columns=value.columns)


# The trailing baseline of an hourly signal: the median of the hours with a value among this many, the
# last complete one included, where at least ``_TRAILING_LEAST`` have one.
_TRAILING_HOURS, _TRAILING_LEAST = 24, 3


def _trailing_medians(value: pd.DataFrame, ends: pd.DatetimeIndex) -> np.ndarray:
    """``value.rolling(_TRAILING_HOURS, min_periods=_TRAILING_LEAST).median()`` (an hour x scope table)
    at the hours ``ends`` (NaN at an hour the table lacks), computed at those hours only: a scan needs
    two or three of the week's hours."""
    table = value.to_numpy(dtype=float)
    out = np.full((len(ends), table.shape[1]), np.nan)
    for i, row in enumerate(value.index.get_indexer(ends)):
        if row < 0:
            continue
        window = table[max(row + 1 - _TRAILING_HOURS, 0) : row + 1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no median
            median = np.nanmedian(window, axis=0)
        out[i] = np.where((~np.isnan(window)).sum(axis=0) >= _TRAILING_LEAST, median, np.nan)
    return out


def _hourly_values(
    frame: pd.DataFrame, dims: Sequence[str], last: pd.Timestamp, min_calls: int
) -> pd.DataFrame:
    """Each hour's value (the first row's) per scope, from the frame's first hour to ``last``, where the
    hour's calls (summed over its rows) are at least ``min_calls``, else NaN: an hour x scope table (the
    scopes sorted), as pivoting the frame by hour and scope gives it, from the codes of its columns."""
    first = frame["hour"].min()
    hours = pd.date_range(first, last, freq="1h")
    offsets = (frame["hour"].to_numpy(dtype="datetime64[ns]") - first.to_datetime64()) // np.timedelta64(
        1, "h"
    )
    layout = _layout(frame, dims, offsets, len(hours), _factorize)
    size = len(hours) * len(layout.scopes)
    calls = np.bincount(
        layout.cells, weights=frame["calls"].to_numpy(dtype=float)[layout.inside], minlength=size
    )
    value = np.full(size, np.nan)
    cells, first_rows = np.unique(layout.cells, return_index=True)  # the first row of each cell
    value[cells] = frame["value"].to_numpy(dtype=float)[layout.inside][first_rows]
    value[~(calls >= min_calls)] = np.nan
    return pd.DataFrame(value.reshape(len(hours), len(layout.scopes)), index=hours, columns=layout.scopes)


def minute_index(start: datetime, end: datetime) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="1min", inclusive="left")


def grids(
    frame: pd.DataFrame, dims: Sequence[str], columns: Sequence[str], start: datetime, end: datetime
) -> dict[str, pd.DataFrame]:
    """Each of ``columns`` as a minute x scope grid over [start, end) (missing minutes are 0), summing
    rows of the same minute and scope.

    Scopes are tuples of (canonical dimension, value), in ``dims`` order, sorted. Built with numpy
    (bincount over minute x scope cells): detectors build many grids from the same large frames.
    """
    index = minute_index(start, end)
    scopes, arrays = grid_arrays(frame, dims, columns, start, end)
    return {c: pd.DataFrame(a, index=index, columns=scopes, copy=False) for c, a in arrays.items()}


def grid_timeline(history: History) -> Timeline:
    """Where the minutes of ``history`` fall in the rows of the grids its evaluation builds
    (``GridMemo``): the ranges it read, and a little of each gap between them (``Timeline``)."""
    held = history.derived.get("timeline")
    if isinstance(held, Timeline):
        return held
    first, count = _minute_span(history.start, history.end)
    ranges = [
        (
            (pd.Timestamp(a) - first) // pd.Timedelta(minutes=1),
            -((first - pd.Timestamp(b)) // pd.Timedelta(minutes=1)),  # a cut minute is held
        )
        for a, b in (history.ranges or [(history.start, history.end)])
    ]
    timeline = Timeline.of_ranges([(max(a, 0), min(b, count)) for a, b in ranges], count)
    history.derived["timeline"] = timeline
    return timeline


def grid_arrays(
    frame: pd.DataFrame, dims: Sequence[str], columns: Sequence[str], start: datetime, end: datetime
) -> tuple[pd.Index, dict[str, np.ndarray]]:
    """``grids`` as plain arrays (minutes x scopes) and their scopes: what the evidence templates work
    on (a week of minutes x every tenant's scopes: no frame around them to build and copy)."""
    layout = grid_layout(frame, dims, start, end)
    return layout.scopes, {c: layout.sum(frame, c) for c in columns}


@dataclass(frozen=True)
class GridLayout:
    """Where each row of a frame falls in a minute x scope grid over [start, end): the scopes (sorted)
    and each row's cell (rows outside the range fall nowhere). Computed once per frame and scope
    dimensions, it serves every column's grid."""

    scopes: pd.Index
    minutes: int
    inside: np.ndarray  # rows of the frame in the range
    cells: np.ndarray  # their cell: minute x scopes + scope
    codes: np.ndarray  # each scope's code in each dimension (scopes x dims): the scopes' sort keys

    def sum(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """``column`` summed per cell (minutes x scopes); a column the frame lacks is 0."""
        if column not in frame:
            return np.zeros((self.minutes, len(self.scopes)))
        return self.sum_values(frame[column].to_numpy(dtype=float))

    def sum_values(self, values: np.ndarray) -> np.ndarray:
        """``values`` (floats, one per row of the frame) summed per cell (minutes x scopes)."""
        size = self.minutes * len(self.scopes)
        if not len(self.cells):
            return np.zeros((self.minutes, len(self.scopes)))
        # A history's frame lies in its grid's range: all its rows are in, and need no copy.
        weights = values if len(self.cells) == len(values) else values[self.inside]
        sums = np.bincount(self.cells, weights=weights, minlength=size)
        return sums.reshape(self.minutes, len(self.scopes))


@dataclass(frozen=True)
class PickedLayout:
    """The layout of a frame whose grids are columns of a held ``GridLayout``'s (``GridMemo``): the same
    frame at the same scope dimensions in another order, or a frame of another's rows that keeps or
    drops each of its scopes whole. Each cell then sums the same rows in the same order: the same
    grids, without laying the frame out again."""

    scopes: pd.Index
    source: tuple[int, tuple[str, ...], datetime, datetime, Timeline | None]  # the held layout's key
    columns: np.ndarray | None  # its grids' columns, in this layout's order (None: all, as they are)


def grid_layout(
    frame: pd.DataFrame,
    dims: Sequence[str],
    start: datetime,
    end: datetime,
    factorize: Callable[[pd.DataFrame, str], tuple[np.ndarray, np.ndarray]] | None = None,
    offsets: Callable[[pd.DataFrame, pd.Timestamp, Timeline], np.ndarray] | None = None,
    timeline: Timeline | None = None,
) -> GridLayout:
    """The ``GridLayout`` of ``frame`` by ``dims`` over [start, end), on ``timeline``'s rows (by default
    a row a minute). ``factorize(frame, dim)``: each row's code and the sorted values of one column;
    ``offsets(frame, first, timeline)``: each row's row in the grid (``GridMemo`` computes each once per
    frame)."""
    first, count = _minute_span(start, end)
    timeline = timeline or Timeline(count)
    if frame.empty:
        empty = np.zeros(0, dtype=np.int64)
        return GridLayout(
            _scope_index(dims, pd.Index([], dtype=object)),
            timeline.rows,
            empty.astype(bool),
            empty,
            np.zeros((0, len(dims)), dtype=np.int64),
        )
    rows = (offsets or _row_offsets)(frame, first, timeline)
    return _layout(frame, dims, rows, timeline.rows, factorize or _factorize)


_MINUTE_NS = 60 * 10**9


def _row_offsets(frame: pd.DataFrame, first: pd.Timestamp, timeline: Timeline) -> np.ndarray:
    """Each row's row in a grid from ``first`` on ``timeline`` (-1: a minute it leaves out, which no
    history's frame holds)."""
    minutes = frame["minute"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    # As integers (nanoseconds since the epoch, UTC): dividing datetimes checks every row for NaT.
    offsets = (minutes - pd.Timestamp(first).value) // _MINUTE_NS
    if not timeline.removed:
        return offsets
    return timeline.held_rows(offsets)


def _layout(
    frame: pd.DataFrame,
    dims: Sequence[str],
    offsets: np.ndarray,
    count: int,
    factorize: Callable[[pd.DataFrame, str], tuple[np.ndarray, np.ndarray]],
) -> GridLayout:
    """The ``GridLayout`` of ``frame``'s rows at ``offsets`` (rows of a grid of ``count``) by ``dims``."""
    inside = (offsets >= 0) & (offsets < count)
    # A history's frame lies in its grid's range: its rows are all in, and need no picking.
    every = bool(inside.all())
    scope_codes = np.zeros(len(frame), dtype=np.int64)
    levels = []
    for dim in dims:
        codes, uniques = factorize(frame, dim)
        scope_codes *= len(uniques)  # in place: a week of rollup's rows, a pass per dimension
        scope_codes += codes
        levels.append(uniques)
    used, scope_ids = _unique_codes(
        scope_codes if every else scope_codes[inside], math.prod(len(u) for u in levels)
    )
    # A copy either way: a frame's offsets are held (``GridMemo``), and the cells are computed in place.
    cells = offsets.astype(np.int64) if every else offsets[inside].astype(np.int64)
    cells *= len(used)
    cells += scope_ids
    # Each used code back to its values, the last dimension first (the codes were built first-major).
    values, positions = [], []
    remaining = used
    for uniques in reversed(levels):
        remaining, position = np.divmod(remaining, len(uniques))
        values.append(uniques[position])
        positions.append(position)
    keys = list(zip(*reversed(values), strict=True)) if values else [() for _ in used]
    scope_index = _scope_index(dims, pd.Index(keys, dtype=object, tupleize_cols=False))
    codes = np.stack(positions[::-1], axis=1) if positions else np.zeros((len(used), 0), dtype=np.int64)
    return GridLayout(scope_index, count, inside, cells, codes.astype(np.int64, copy=False))


def _factorize(frame: pd.DataFrame, dim: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code in ``frame[dim]`` and the column's sorted values (a plain object array: picking
    values out of an Arrow-backed array one by one is slow). A categorical column on sorted categories
    (``HistoryCache``'s) gives its own codes, renumbered over the categories its rows hold: the same
    codes and values, without hashing every row."""
    column = frame[dim]
    if isinstance(column.dtype, pd.CategoricalDtype) and column.cat.categories.is_monotonic_increasing:
        codes = column.cat.codes.to_numpy()
        if not len(codes) or codes.min() >= 0:  # a missing value: factorized as text is
            present = np.bincount(codes, minlength=len(column.cat.categories)) > 0
            values = np.asarray(column.cat.categories, dtype=object)[present]
            return (np.cumsum(present) - 1)[codes], values
    codes, uniques = pd.factorize(column, sort=True)
    return codes, np.asarray(uniques, dtype=object)


def _unique_codes(codes: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)``; codes in [0, bound) with a bound not far above their
    number are counted (one pass) instead of sorted."""
    if not codes.size or codes.min() < 0 or bound > max(4 * codes.size, 1 << 16):
        used, inverse = np.unique(codes, return_inverse=True)
        return used, inverse.reshape(-1)
    present = np.bincount(codes, minlength=bound) > 0
    used = np.flatnonzero(present).astype(codes.dtype)
    return used, (np.cumsum(present) - 1)[codes]


def _minute_span(start: datetime, end: datetime) -> tuple[pd.Timestamp, int]:
    """The first minute of ``minute_index(start, end)`` and how many it holds, without building it."""
    first = pd.Timestamp(start)
    return first, max(-((first - pd.Timestamp(end)) // pd.Timedelta(minutes=1)), 0)


def _once(
    held: dict[tuple[int, Any], tuple[pd.DataFrame, np.ndarray]],
    frame: pd.DataFrame,
    key: Any,
    compute: Callable[[], np.ndarray],
) -> np.ndarray:
    """``compute()`` for (``frame``, ``key``), once: held with the frame, so its id stays its own."""
    entry = held.get((id(frame), key))
    if entry is None:
        entry = held[(id(frame), key)] = (frame, compute())
    return entry[1]


class GridMemo:
    """The grids one evaluation (a cycle, a backtest) built, by frame, scope dimensions and column:
    detectors that read the same query at the same scope share one layout and one grid per column
    (the rollup at service+route serves three of them). Grids handed out are read-only: a detector that
    needs another grid computes a new one.

    Keyed by the frame's identity, and it keeps the frame: a frame filtered or rebuilt by a detector is
    another frame, never mistaken for the one it came from.

    In the live cycle (``kept``: ``HistoryCache.grids``), the grids of a history's own per-minute frames
    are kept from one cycle to the next (``_Kept``) and brought up to date: their rows of minutes served
    from the same held rows as at the last cycle are moved where the new timeline puts them, and only
    the other minutes (new, still settling) are summed from the frame. A kept grid serves the evaluation
    of its own history: the next cycle's updates it in place."""

    def __init__(
        self,
        kept: dict[object, object] | None = None,
        sources: dict[str, Sources] | None = None,
        frames: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        self.kept = kept
        self.sources = sources or {}
        # The history's own frames by identity, with their query's name: what kept grids are kept by.
        self._names = {id(f): (name, f) for name, f in (frames or {}).items() if name in self.sources}
        # The layouts of this evaluation served by kept grids, and the kept entries serving them.
        self._kept_keys: dict[tuple[int, tuple[str, ...], datetime, datetime, Timeline | None], _Kept] = {}
        self._kept_ranges: dict[tuple[int, tuple[str, ...]], tuple[Any, ...]] = {}
        self.layouts: dict[
            tuple[int, tuple[str, ...], datetime, datetime, Timeline | None], tuple[pd.DataFrame, GridLayout]
        ] = {}
        self._grids: dict[
            tuple[int, tuple[str, ...], datetime, datetime, Timeline | None, str], np.ndarray
        ] = {}
        # Each column's codes, once per frame: the layouts of one frame at several scopes share columns.
        self._codes: dict[tuple[int, str], tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
        # Frames made of another's rows (``rows``): their columns' codes are the other's, picked.
        self._parents: dict[int, tuple[pd.DataFrame, pd.DataFrame, np.ndarray]] = {}
        # Each row's row in the grid, once per frame: a frame is laid out at several scopes.
        self._offsets: dict[tuple[int, Any], tuple[pd.DataFrame, np.ndarray]] = {}
        self.requests = 0  # grid_arrays calls, each served by one of ``layouts``

    @classmethod
    def of(cls, history: History) -> GridMemo:
        """The memo of ``history``'s evaluation: with the grids the live cycle keeps, where it has them."""
        return cls(history.kept, history.sources, history.frames)

    def grid_arrays(
        self,
        frame: pd.DataFrame,
        dims: Sequence[str],
        columns: Sequence[str],
        start: datetime,
        end: datetime,
        timeline: Timeline | None = None,
    ) -> tuple[pd.Index, dict[str, np.ndarray]]:
        """``grid_arrays(frame, dims, columns, start, end)`` on ``timeline``'s rows (by default a row a
        minute), each layout and grid computed once."""
        self.requests += 1
        key = (id(frame), tuple(dims), start, end, timeline)
        held = self.layouts.get(key)
        if (
            held is None
            and timeline is not None
            and self.kept is not None
            and id(frame) in self._names
            # One range per frame and scope: a kept grid serves one history's timeline.
            and self._kept_ranges.setdefault((id(frame), tuple(dims)), key) == key
        ):
            kept = self._kept(frame, tuple(dims), start, end, timeline)
            held = self.layouts[key] = (frame, kept.layout)
            self._kept_keys[key] = kept
        if held is None:
            layout: GridLayout | PickedLayout | None = self._picked(frame, tuple(dims), key)
            if layout is None:
                layout = grid_layout(frame, dims, start, end, self._factorize, self._row_offsets, timeline)
            held = self.layouts[key] = (frame, layout)
        return held[1].scopes, {column: self._grid(key, column) for column in columns}

    def _grid(
        self, key: tuple[int, tuple[str, ...], datetime, datetime, Timeline | None], column: str
    ) -> np.ndarray:
        """The grid of ``column`` on the held layout ``key``, computed once."""
        grid = self._grids.get((*key, column))
        if grid is not None:
            return grid
        frame, layout = self.layouts[key]
        kept = self._kept_keys.get(key)
        if kept is not None and column in frame:
            _, dims, start, end, timeline = key
            grid = kept.grid(
                frame,
                column,
                self._column,
                lambda: grid_layout(frame, dims, start, end, self._factorize, self._row_offsets, timeline),
            )
        elif isinstance(layout, PickedLayout):
            source = self._grid(layout.source, column)
            # ``take`` along the columns: a third of what fancy indexing of a week-long grid costs.
            grid = source if layout.columns is None else np.take(source, layout.columns, axis=1)
        elif column in frame:
            grid = layout.sum_values(self._column(frame, column))
        else:
            grid = layout.sum(frame, column)  # 0
        grid.setflags(write=False)
        hold_sums(grid)  # the detectors that share it share its window sums too
        self._grids[(*key, column)] = grid
        return grid

    def _picked(
        self,
        frame: pd.DataFrame,
        dims: tuple[str, ...],
        key: tuple[int, tuple[str, ...], datetime, datetime, Timeline | None],
    ) -> PickedLayout | None:
        """``frame``'s layout at ``dims`` as columns of a held one (``PickedLayout``), where one serves:
        the frame's own at the same dimensions in another order, or that of the frame its rows were
        picked from (``rows``) at the same dimensions in any order, where the rows picked keep or drop
        each of its scopes whole (a filter on a scope dimension: a named route, a routed call) and are
        most of its rows (its grids cost about what the frame's own would). None: none serves."""
        parent = self._parents.get(id(frame))
        sources = [(frame, None)] + ([(parent[1], parent[2])] if parent is not None else [])
        for source, mask in sources:
            if mask is not None and 2 * int(mask.sum()) < len(mask):
                continue
            for held_key, (held, layout) in self.layouts.items():
                if (
                    held is not source
                    or held_key[2:] != key[2:]
                    or sorted(held_key[1]) != sorted(dims)
                    or not isinstance(layout, GridLayout)
                ):
                    continue
                keep = np.ones(len(layout.scopes), dtype=bool)
                if mask is not None:
                    if len(layout.cells) != len(source):
                        continue  # rows outside the range: no scope to say they are kept with
                    scope_of_row = layout.cells % max(len(layout.scopes), 1)
                    kept = np.bincount(scope_of_row[mask], minlength=len(layout.scopes))
                    if (
                        kept[kept > 0] != np.bincount(scope_of_row, minlength=len(layout.scopes))[kept > 0]
                    ).any():
                        continue  # a scope partly kept: its cells sum other rows
                    keep = kept > 0
                # The scopes sorted as a layout sorts them: by their codes in ``dims`` order.
                order = [held_key[1].index(d) for d in dims]
                codes = layout.codes[keep][:, order]
                columns = np.flatnonzero(keep)[np.lexsort(codes.T[::-1])]
                scopes = pd.Index(
                    [tuple(scope[i] for i in order) for scope in layout.scopes[columns]],
                    dtype=object,
                    tupleize_cols=False,
                )
                same = len(columns) == len(layout.scopes) and (columns == np.arange(len(columns))).all()
                return PickedLayout(scopes, held_key, None if same else columns)
        return None

    def rows(self, frame: pd.DataFrame, which: pd.Series | np.ndarray) -> pd.DataFrame:
        """``frame[which]`` (a boolean mask), whose layouts reuse ``frame``'s codes of each column (the
        values the rows lack are in none of their scopes, and the order of the others is the same).

        Its text columns are categories on those codes (the same values: no string is copied; picking
        the rows of Arrow-backed text columns cost more than the grids of the rows)."""
        mask = np.asarray(which, dtype=bool)
        if mask.all():  # every row (every route named, say): the frame itself, its layouts and grids held
            return frame
        text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
        part = frame.loc[mask, [c for c in frame.columns if c not in text]]
        for column in text:
            codes, uniques = self._factorize(frame, column)
            part[column] = pd.Categorical.from_codes(codes[mask], categories=pd.Index(uniques, dtype=object))
        part = part[list(frame.columns)]
        self._parents[id(part)] = (part, frame, mask)
        return part

    def _kept(
        self, frame: pd.DataFrame, dims: tuple[str, ...], start: datetime, end: datetime, timeline: Timeline
    ) -> _Kept:
        """The kept grids of ``frame`` (a history frame) at ``dims``, brought up to this history: moved
        and updated where the last cycle's serve (``_Kept.update``), else laid out afresh."""
        assert self.kept is not None
        name = self._names[id(frame)][0]
        first, _ = _minute_span(start, end)
        minutes = first.value // _MINUTE_NS + timeline.minute(np.arange(timeline.rows))
        sources = _row_sources(minutes, self.sources[name])
        offsets = self._row_offsets(frame, first, timeline)
        # Taken out while it is updated: a cycle that fails half-way leaves nothing half-updated.
        kept = self.kept.pop((name, dims), None)
        if not isinstance(kept, _Kept) or not kept.update(frame, dims, minutes, sources, offsets):
            layout = grid_layout(frame, dims, start, end, self._factorize, self._row_offsets, timeline)
            kept = _Kept.of(layout, frame, minutes, sources)
        self.kept[(name, dims)] = kept
        return kept

    def _row_offsets(self, frame: pd.DataFrame, first: pd.Timestamp, timeline: Timeline) -> np.ndarray:
        return _once(self._offsets, frame, (first, timeline), lambda: _row_offsets(frame, first, timeline))

    @staticmethod
    def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
        """``column``'s values as they are held where they are numbers (``bincount`` reads them as
        floats, as ``to_numpy(dtype=float)`` gives them): no copy of every column as floats is held
        for the whole evaluation (73 MB of a week of rollup at 10 tenants)."""
        values = frame[column].to_numpy()
        return values if values.dtype.kind in "biuf" else frame[column].to_numpy(dtype=float)

    def _factorize(self, frame: pd.DataFrame, dim: str) -> tuple[np.ndarray, np.ndarray]:
        held = self._codes.get((id(frame), dim))
        if held is None:
            parent = self._parents.get(id(frame))
            if parent is not None:
                codes, uniques = self._factorize(parent[1], dim)
                held = self._codes[(id(frame), dim)] = (frame, codes[parent[2]], uniques)
            else:
                held = self._codes[(id(frame), dim)] = (frame, *_factorize(frame, dim))
        return held[1], held[2]


_NO_ROWS = -2  # the source of a minute no span of a frame's ``Sources`` serves: it has no row


def _row_sources(minutes: np.ndarray, sources: Sources) -> np.ndarray:
    """Where the rows of each of ``minutes`` (since the epoch) came from (``Sources``; ``_NO_ROWS``)."""
    if not sources:
        return np.full(len(minutes), _NO_ROWS, dtype=np.int64)
    starts, ends, serials = (np.array(column, dtype=np.int64) for column in zip(*sources, strict=True))
    at = np.searchsorted(starts // _MINUTE_NS, minutes, side="right") - 1
    inside = (at >= 0) & (minutes < (ends // _MINUTE_NS)[np.maximum(at, 0)])
    return np.where(inside, serials[np.maximum(at, 0)], _NO_ROWS)


@dataclass
class _Kept:
    """The grids of one history frame (a per-minute query's) at one scope, kept between live cycles:
    the minute and the source (``Sources``) of each row, the scopes, which cells hold a row, and the
    grid of each column asked for. Updated in place each cycle (``update``): the memory of a week of
    grids is not freed and faulted in again every minute, and only the minutes that are new or still
    settling are summed from the frame."""

    layout: GridLayout  # the scopes and their codes (``PickedLayout``); no cells: see ``update``
    minutes: np.ndarray  # each row's minute (since the epoch)
    sources: np.ndarray  # where its rows came from
    present: np.ndarray  # rows x scopes: whether any row of the frame falls in the cell
    grids: dict[str, np.ndarray]  # column -> rows x scopes, writable (views handed out are not)
    scopes: dict[Scope, int]  # each scope's column
    frame_layout: GridLayout | None  # the frame's own layout where it was laid out afresh
    moves: list[tuple[int, int, int]]  # this cycle's: rows [a, b) take the rows ``d`` below them
    redo: np.ndarray  # this cycle's rows summed afresh
    fresh: np.ndarray  # the frame's rows that fall in them
    cells: np.ndarray  # and their cells in the rows ``redo`` (redo index x scopes + scope)
    current: set[str]  # the columns brought up to this cycle

    @classmethod
    def of(cls, layout: GridLayout, frame: pd.DataFrame, minutes: np.ndarray, sources: np.ndarray) -> _Kept:
        """The kept grids of a frame laid out afresh (``layout``); its grids are summed when asked for."""
        size = layout.minutes * len(layout.scopes)
        present = np.bincount(layout.cells, minlength=size).reshape(layout.minutes, len(layout.scopes)) > 0
        bare = replace(layout, inside=np.zeros(0, dtype=bool), cells=np.zeros(0, dtype=np.int64))
        empty = np.zeros(0, dtype=np.int64)
        return cls(
            bare, minutes, sources, present, {}, {s: i for i, s in enumerate(layout.scopes)}, layout,
            [], empty, empty, empty, set(),
        )  # fmt: skip

    def update(
        self,
        frame: pd.DataFrame,
        dims: Sequence[str],
        minutes: np.ndarray,
        sources: np.ndarray,
        offsets: np.ndarray,
    ) -> bool:
        """Bring the kept grids to a history whose rows hold ``minutes`` served from ``sources``
        (``frame``'s rows at ``offsets``): the rows of a minute served from the same held rows as at the
        last cycle move to their new row (same rows, same order: the same sums), and the other rows are
        summed from the frame's rows of their minutes. False (nothing changed) where that cannot give
        what a fresh layout gives: other grid rows, a row moving down (the moves are done in place,
        upwards), most rows redone, or the scopes changing (a scope new to the frame, one whose minutes
        all left the range)."""
        rows = len(self.minutes)
        if len(minutes) != rows:
            return False
        at = np.minimum(np.searchsorted(self.minutes, minutes), rows - 1)
        reused = (self.minutes[at] == minutes) & (self.sources[at] == sources) & (sources != FRESH)
        shift = at - np.arange(rows)
        if 2 * int(reused.sum()) < rows or (shift[reused] < 0).any():
            return False
        redo = np.flatnonzero(~reused)
        # The frame's rows in the rows redone, in the frame's order (a cell sums them in that order).
        where = np.full(rows, -1, dtype=np.int64)
        where[redo] = np.arange(len(redo))
        inside = (offsets >= 0) & (offsets < rows)
        fresh = np.flatnonzero(inside)
        fresh = fresh[where[offsets[fresh]] >= 0]
        scope = self._scope_columns(frame, dims, fresh)
        if scope is None:
            return False
        present = self.present[at[reused]].any(axis=0)  # the scopes of the rows kept
        present[scope] = True
        if not present.all():
            return False
        # A column not brought up to the last cycle (no detector asked for it) cannot take this one's
        # moves: summed whole if asked for again.
        self.grids = {column: grid for column, grid in self.grids.items() if column in self.current}
        self.moves = _runs(reused, shift)
        self.redo, self.fresh = redo, fresh
        self.cells = where[offsets[fresh]] * len(self.scopes) + scope
        self.minutes, self.sources = minutes, sources
        self.frame_layout, self.current = None, set()
        width = len(self.scopes)
        self._move(self.present)
        self.present[redo] = np.bincount(self.cells, minlength=len(redo) * width).reshape(-1, width) > 0
        return True

    def grid(
        self,
        frame: pd.DataFrame,
        column: str,
        values: Callable[[pd.DataFrame, str], np.ndarray],
        lay_out: Callable[[], GridLayout],
    ) -> np.ndarray:
        """``column``'s grid (read-only), brought up to this cycle; summed whole when it was not kept
        (the frame's values of ``column``: ``values(frame, column)``; its layout: ``lay_out()``)."""
        grid = self.grids.get(column)
        if column not in self.current:
            # Out while it is updated: a failure half-way leaves no half-moved grid to be moved again.
            self.grids.pop(column, None)
            if grid is not None and self.frame_layout is None:
                self._move(grid)
                width = len(self.scopes)
                weights = values(frame, column)[self.fresh]
                grid[self.redo] = np.bincount(
                    self.cells, weights=weights, minlength=len(self.redo) * width
                ).reshape(-1, width)
            else:
                # A column not kept yet: after an update, the frame is laid out once more (rare: the
                # detectors ask for the same columns every cycle).
                if self.frame_layout is None:
                    self.frame_layout = lay_out()
                    assert len(self.frame_layout.scopes) == len(self.scopes)
                grid = self.frame_layout.sum_values(values(frame, column))
            self.grids[column] = grid
            self.current.add(column)
        view = grid.view()
        view.setflags(write=False)
        return view

    def _move(self, grid: np.ndarray) -> None:
        """This cycle's moves, in place: up, in order (a run's source rows are below every row written
        before it). Byte copies that may overlap (``memmove``): numpy copies an overlapping slice
        through a temporary as large as the slice."""
        row = grid.strides[0]
        assert grid.flags.c_contiguous
        for a, b, d in self.moves:
            ctypes.memmove(grid.ctypes.data + a * row, grid.ctypes.data + (a + d) * row, (b - a) * row)

    def _scope_columns(self, frame: pd.DataFrame, dims: Sequence[str], rows: np.ndarray) -> np.ndarray | None:
        """The column of each of ``frame``'s ``rows`` (None: a scope not kept, or a missing value)."""
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        codes = np.zeros(len(rows), dtype=np.int64)
        levels = []
        for dim in dims:
            values = frame[dim].iloc[rows]
            if values.isna().any():
                return None
            level_codes, uniques = pd.factorize(values.to_numpy(dtype=object))
            codes = codes * len(uniques) + level_codes
            levels.append(uniques)
        used, inverse = np.unique(codes, return_inverse=True)
        columns = np.empty(len(used), dtype=np.int64)
        for i, code in enumerate(used):
            key = []
            for uniques in reversed(levels):
                code, position = divmod(int(code), len(uniques))
                key.append(uniques[position])
            scope = _scope(dims, key[::-1])
            if scope not in self.scopes:
                return None
            columns[i] = self.scopes[scope]
        return columns[inverse.reshape(-1)]


def _runs(reused: np.ndarray, shift: np.ndarray) -> list[tuple[int, int, int]]:
    """The runs [a, b) of reused rows that move by the same ``shift`` (rows that do not move: none)."""
    moving = reused & (shift > 0)
    index = np.flatnonzero(moving)
    if not len(index):
        return []
    breaks = np.flatnonzero((np.diff(index) != 1) | (np.diff(shift[index]) != 0)) + 1
    return [(int(run[0]), int(run[-1]) + 1, int(shift[run[0]])) for run in np.split(index, breaks)]


def _scope_index(dims: Sequence[str], keys: pd.Index) -> pd.Index:
    """Grid columns: one Scope per column (a plain index of tuples, never a MultiIndex)."""
    scopes = [_scope(dims, key if isinstance(key, tuple) else (key,)) for key in keys]
    return pd.Index(scopes, dtype=object, tupleize_cols=False)


def _scope(dims: Sequence[str], values: Sequence[Any]) -> Scope:
    """The scope of one grid column: each dimension's name and value."""
    return tuple((SCOPE_NAMES.get(d, d), str(v)) for d, v in zip(dims, values, strict=True))


def trailing_sum(grid: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Value at minute t: the sum over [t - minutes, t), the last complete minutes before t."""
    return grid.rolling(minutes, min_periods=1).sum().shift(1)


# Baseline windows, in minutes: the hour around the same time of day, and the trailing day.
_HOUR, _HOUR_MIN_VALUES = 60, 10


def at_times(grid: pd.DataFrame, times: Sequence[datetime]) -> pd.DataFrame:
    """Rows of ``grid`` at the evaluation ``times``."""
    return grid.reindex(pd.DatetimeIndex([pd.Timestamp(t) for t in times]))


def to_observations(
    detector: str,
    times: Sequence[datetime],
    value: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    warning: pd.DataFrame,
    critical: pd.DataFrame,
    warning_threshold: pd.DataFrame | float,
    critical_threshold: pd.DataFrame | float,
    baseline: pd.DataFrame | None,
    describe: Callable[[Scope, float, float, float | None], str],
) -> list[Observation]:
    """The active observations: one per (time, scope) where ``value`` is known and a condition holds.

    Healthy and unknown cells produce nothing; to the state machine both mean "not holding".
    ``describe(scope, value, threshold, baseline)`` writes the summary line.
    """
    index = pd.DatetimeIndex([pd.Timestamp(t) for t in times])
    columns = value.columns

    def rows(grid: pd.DataFrame | float) -> np.ndarray:
        if isinstance(grid, pd.DataFrame):
            return grid.reindex(index=index, columns=columns).to_numpy(dtype=float)
        return np.full((len(index), len(columns)), float(grid))

    values, counts = rows(value), rows(samples)
    warn, crit = rows(warning.astype(float)) > 0, rows(critical.astype(float)) > 0
    warn_at, crit_at = rows(warning_threshold), rows(critical_threshold)
    base = rows(baseline) if baseline is not None else None
    observations = []
    for i, j in zip(*np.nonzero(~np.isnan(values) & (warn | crit)), strict=True):
        severity = CRITICAL if crit[i, j] else WARNING
        threshold = crit_at[i, j] if severity == CRITICAL else warn_at[i, j]
        base_value = None if base is None or np.isnan(base[i, j]) else float(base[i, j])
        scope = columns[j]
        observations.append(
            Observation(
                detector=detector,
                scope=scope,
                at=times[i],
                severity=severity,
                value=float(values[i, j]),
                threshold=float(threshold),
                baseline=base_value,
                samples=int(counts[i, j]) if not np.isnan(counts[i, j]) else 0,
                summary=describe(scope, float(values[i, j]), float(threshold), base_value),
            )
        )
    return observations


def check_scope(detector: str, scope: Sequence[str], required: Sequence[str] = ()) -> tuple[str, ...]:
    """A configured ``scope`` setting: dimensions of the rollup detectors read, in their canonical order."""
    if not scope or not set(scope) <= set(DETECTOR_DIMENSIONS) or not set(required) <= set(scope):
        raise ValueError(
            f"{detector}: scope {list(scope)!r} must be some of {', '.join(DETECTOR_DIMENSIONS)}"
            + (f" and include {', '.join(required)}" if required else "")
        )
    return tuple(d for d in DETECTOR_DIMENSIONS if d in scope)


def minutes(duration: timedelta) -> int:
    """A settings duration in whole minutes, the unit of every grid."""
    return int(duration.total_seconds() // 60)
