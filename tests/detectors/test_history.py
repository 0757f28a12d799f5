"""The live cycle's history cache: the rows it serves are the rows a full read gives, it reads only the
minutes it does not hold, and the alert transitions of live cycles are the same with it as without."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.factories import call_record, store_records
from tokenpulse.alerts.contract import Transition
from tokenpulse.detectors import data, history
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.catalog.cost_spike import CostSpike
from tokenpulse.detectors.catalog.cost_spike import Settings as CostSpikeSettings
from tokenpulse.detectors.data import GridMemo
from tokenpulse.detectors.engine import Engine, floor_minute
from tokenpulse.detectors.evidence import SCAN
from tokenpulse.detectors.history import (
    ROLLUP,
    TAILS_HOURLY,
    HistoryCache,
    hourly_quantile_query,
    read_ranges,
)
from tokenpulse.storage.store import Store

NOW = floor_minute(datetime.now(UTC))
LATENCY = hourly_quantile_query("latency_ms", ("service", "route"), 0.99)


def calls_between(start: datetime, end: datetime, route: str = "/chat", every: int = 20) -> list:
    """A call every ``every`` seconds in [start, end), each a little slower than the last."""
    records, moment, n = [], start, 0
    while moment < end:
        records.append(
            call_record(time_unix_nano=int(moment.timestamp()) * 10**9, route=route, duration_ms=500.0 + n)
        )
        moment += timedelta(seconds=every)
        n += 1
    return records


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in a fixed row and column order (ClickHouse returns groups in any order); list cells
    (histograms) as tuples, so rows sort; text as text (the cache holds it as categories, and histograms
    as fixed-size lists: the same values)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    frame = frame[sorted(frame.columns)].copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype("string")
        if isinstance(frame[column].iloc[0], list | tuple | np.ndarray):
            frame[column] = pd.Series([tuple(v) for v in frame[column].tolist()], index=frame.index)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def ranges_at(moment: datetime) -> list[tuple[datetime, datetime]]:
    """A trailing range and two ranges of previous days, ending at ``moment`` (+1 min): the shapes a
    live cycle reads. The previous days' ranges start and end off the hour, so hourly rows are cut."""
    end = moment + timedelta(minutes=1)
    before, after = timedelta(hours=3, minutes=7), timedelta(hours=2, minutes=4)
    days = [(end - timedelta(days=k) - before, end - timedelta(days=k) + after) for k in (2, 1)]
    return [*days, (end - timedelta(hours=6, minutes=5), end)]


@pytest.fixture
def filled(store: Store, tmp_path: Path) -> Store:
    """Two days of calls up to NOW (one every 20 s on /chat), a busy hour two days ago on /search."""
    records = calls_between(NOW - timedelta(days=2, hours=4), NOW)
    records += calls_between(NOW - timedelta(days=2, hours=2), NOW - timedelta(days=2, hours=1), "/search", 5)
    store_records(store, tmp_path, records)
    return store


def test_the_cache_serves_what_a_full_read_gives_and_reads_only_new_minutes(
    filled: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = HistoryCache()
    read: list[tuple[str, list[tuple[datetime, datetime]]]] = []

    def recorded(store: Store, query, ranges):
        read.append((query.name, list(ranges)))
        return read_ranges(store, query, ranges)

    monkeypatch.setattr(history, "read_ranges", recorded)
    for offset in range(20):  # past a refresh (15 min): everything is read again then
        moment = NOW - timedelta(minutes=40) + timedelta(minutes=offset)
        ranges = ranges_at(moment)
        cache.start_cycle(filled, ranges[-1][1])
        read.clear()
        for query in (ROLLUP, TAILS_HOURLY, LATENCY):
            served = cache.read(filled, query, ranges, ranges[-1][1])
            assert not served.empty
            pd.testing.assert_frame_equal(canonical(served), canonical(read_ranges(filled, query, ranges)))
            cache_read = [r for name, r in read if name == query.name]
            if offset in (0, 15):  # the first cycle and a refresh read the ranges whole
                (pieces,) = cache_read
                assert history._subtract(ranges, pieces) == []
            elif query is ROLLUP:
                # Held: the previous days up to 15 minutes past their ends (read ahead), and the trailing
                # range but its last, settling minutes. Read: those, and the previous days' next
                # minutes every 15 cycles.
                (pieces,) = cache_read
                # One span per run of touching pieces: the settling minutes and the one that settled.
                assert pieces == history._union([], pieces)
                assert any(a <= ranges[-1][1] - history.SETTLE and b == ranges[-1][1] for a, b in pieces)
                assert sum((b - a for a, b in pieces), timedelta()) <= history.SETTLE + timedelta(minutes=32)


def test_rows_that_arrive_late_are_read_at_the_next_cycle(filled: Store, tmp_path: Path) -> None:
    """A minute still settling is read every cycle; rows that started before the held minutes (a
    backfill sent to a running daemon) make the next cycle read everything again."""
    cache = HistoryCache()
    moment = NOW - timedelta(minutes=30)

    def cycle(minutes: int) -> list[datetime]:
        ranges = ranges_at(moment + timedelta(minutes=minutes))
        cache.start_cycle(filled, ranges[-1][1])
        frame = cache.read(filled, ROLLUP, ranges, ranges[-1][1])
        return sorted(frame.loc[frame["route"] == "/late", "minute"].dt.to_pydatetime())

    def arrive(*times: datetime) -> None:
        calls = [call_record(time_unix_nano=int(t.timestamp()) * 10**9, route="/late") for t in times]
        store_records(filled, tmp_path / str(len(list(tmp_path.iterdir()))), calls)

    assert cycle(0) == [] and cycle(1) == []
    refreshed = cache.refreshed
    settling, old = moment - timedelta(minutes=2), moment - timedelta(hours=3)
    arrive(settling)
    assert cycle(2) == [settling] and cache.refreshed == refreshed  # read again as the last minutes are
    arrive(old)
    assert cycle(3) == [old, settling] and cache.refreshed != refreshed  # everything read again
    assert cycle(4) == [old, settling]
    # A row of five days ago (a day whose rows are counted from the parts' metadata) is seen too.
    refreshed = cache.refreshed
    arrive(moment - timedelta(days=5))
    cycle(5)
    assert cache.refreshed != refreshed


def same_transitions(first: list[Transition], second: list[Transition]) -> bool:
    """The same decisions, and figures equal but for the last bits: the cache sums the same rows in
    another order, and float addition is not associative."""

    def decision(transition: Transition) -> str:
        return repr(replace(transition, value=0.0, threshold=0.0, baseline=None))

    def figures(transition: Transition) -> list[float]:
        return [transition.value, transition.threshold, transition.baseline or 0.0]

    first, second = sorted(first, key=decision), sorted(second, key=decision)
    return [decision(t) for t in first] == [decision(t) for t in second] and all(
        figures(a) == pytest.approx(figures(b), rel=1e-9) for a, b in zip(first, second, strict=True)
    )


def test_live_cycles_make_the_same_transitions_with_the_cache_as_without(simulated_data: Path) -> None:
    """The demo scenario (cache collapse and p99 drift in its last 40 minutes), evaluated live minute by
    minute over its last 17 minutes by two engines: one with the cache, one reading everything every
    cycle. Through a refresh of the cache, every transition is the same."""
    store = Store.open(simulated_data)
    try:
        cached = Engine(build_detectors(), cache=HistoryCache())
        plain = Engine(build_detectors())
        # The scenario's last minute (the session's store may have been built a while ago).
        end = floor_minute(store.rows("SELECT max(time) FROM calls")[0][0].replace(tzinfo=UTC))
        transitions = []
        for offset in range(16, -1, -1):
            moment = end - timedelta(minutes=offset)
            with_cache, without = cached.run(store, [moment]), plain.run(store, [moment])
            assert same_transitions(with_cache, without), moment
            transitions += with_cache
        assert cached.cache is not None and cached.cache.held  # the cache held rows between cycles
    finally:
        store.close()
    assert "cache_hit_collapse" in {t.detector for t in transitions if t.status == "firing"}


def test_detectors_sharing_one_history_see_what_each_sees_alone(simulated_data: Path) -> None:
    """Detectors evaluated on one history share its grids (one per frame, scope and column): each
    detector's observations and coverage are what it makes on a history of its own, and the shared
    grids are fewer than the grids asked for."""
    store = Store.open(simulated_data)
    try:
        end = floor_minute(store.rows("SELECT max(time) FROM calls")[0][0].replace(tzinfo=UTC))
        engine = Engine(build_detectors())
        times = [end - timedelta(minutes=k) for k in range(20, -1, -5)]
        shared = engine.load(store, times)
    finally:
        store.close()
    together = {d.name: repr(d.assess(shared, times)) for d in engine.detectors}
    for detector in engine.detectors:
        alone = history.History(shared.start, shared.end, dict(shared.frames))
        assert repr(detector.assess(alone, times)) == together[detector.name], detector.name
    memo = shared.derived["grids"]
    assert isinstance(memo, GridMemo)
    assert len(memo.layouts) < memo.requests
    assert "Observation(" in together["cache_hit_collapse"]  # the scenario's collapse: not an empty match


def user_calls(
    user: str, usd_a_minute: str, first: datetime, count: int, duration_ms: float = 1000.0
) -> list:
    """``count`` calls of ``user``, one a minute from ``first``, each costing ``usd_a_minute``."""
    return [
        call_record(
            user=user,
            cost_usd=Decimal(usd_a_minute),
            duration_ms=duration_ms,
            time_unix_nano=int((first + timedelta(minutes=m)).timestamp()) * 10**9,
        )
        for m in range(count)
    ]


@pytest.mark.parametrize(
    ("spenders", "runs"),
    [
        # bob spends $0.30 in the scan: enough to be read ($0.25 over a range), not to page ($0.50)
        (["bob"], False),
        # alice spends $1.00 in it: her rows (and bob's) are read
        (["alice", "bob"], True),
        # carol's one call of $1 started 90 minutes before the scan and ended in it: it counts there
        (["carol", "bob"], True),
    ],
)
def test_the_users_query_runs_only_where_a_user_spent_enough_in_the_scan_to_page(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spenders: list[str], runs: bool
) -> None:
    """cost_spike's users query is skipped (its gate finds nobody) where no user's calls that ended in
    the scan reach the spend a page needs; the detector's observations and coverage are the same as
    with the query run, and where it runs its rows are those of the query without the gate."""
    moment = NOW - timedelta(minutes=5)
    scan_start = moment - SCAN
    records = {
        "bob": user_calls("bob", "0.03", scan_start + timedelta(minutes=30), 10),
        "alice": user_calls("alice", "0.10", scan_start + timedelta(minutes=40), 10),
        "carol": user_calls("carol", "1", scan_start - timedelta(minutes=90), 1, duration_ms=100 * 60_000.0),
    }
    store_records(store, tmp_path, [r for user in spenders for r in records[user]])
    detector = CostSpike()
    assert detector.users.gate is not None
    ungated = replace(detector.users, gate=None)
    ranges = [(moment - timedelta(days=1, hours=9), moment + timedelta(minutes=1))]
    read: list[str] = []

    def recorded(store: Store, query, ranges):
        read.append(query.name)
        return read_ranges(store, query, ranges)

    monkeypatch.setattr(history, "read_ranges", recorded)
    gated = history.load_history(store, [ROLLUP, detector.users], *ranges[0], ranges, first_time=moment)
    assert (detector.users.name in read) == runs
    full = read_ranges(store, ungated, ranges)
    assert set(full["user"]) == set(spenders)  # everyone's calls are over the reading floor
    pd.testing.assert_frame_equal(
        canonical(gated[detector.users]), canonical(full) if runs else pd.DataFrame()
    )
    plain = history.History(gated.start, gated.end, {**gated.frames, detector.users.name: full})
    assert repr(detector.assess(gated, [moment])) == repr(detector.assess(plain, [moment]))


def test_a_budget_user_is_read_whatever_the_scan_holds() -> None:
    """A user with a budget is read however little they spent: no gate."""
    budget = {"scope": {"service": "checkout", "user": "bob"}, "daily_usd": 1}
    assert CostSpike(CostSpikeSettings(budgets=(budget,))).users.gate is None


def test_a_gated_query_gives_what_it_gives_run_and_runs_only_when_its_gate_opens(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every gated query of the catalog, over ordinary calls (no prompt past the runaway floor, no
    provider report, nobody spending near a page): not run, and its frame is what it gives run. Then a
    session of long prompts opens the runaway sessions' gate: run, and its rows are the query's."""
    moment = NOW - timedelta(minutes=5)
    ordinary = calls_between(moment - timedelta(hours=3), moment, every=30)
    for record in ordinary:
        record["cost_usd"] = Decimal("0.0001")  # $0.02 over the scan: u1 is nowhere near a page
    store_records(store, tmp_path / "ordinary", ordinary)
    gated = {q.name: q for d in build_detectors() for q in d.queries() if q.gate is not None}
    assert len(gated) == 3  # cost_spike's users, prompt_growth's runaway sessions, coverage_gap's reports
    engine = Engine(build_detectors())
    read: list[str] = []

    def recorded(store: Store, query, ranges):
        read.append(query.name)
        return read_ranges(store, query, ranges)

    monkeypatch.setattr(history, "read_ranges", recorded)

    def check(runs: set[str]) -> None:
        read.clear()
        loaded = engine.load(store, [moment])
        assert set(read) & set(gated) == runs
        for query in gated.values():
            ranges = [(loaded.start, loaded.end)] if query.recent is None else None
            plain = history.load_history(store, [replace(query, gate=None)], loaded.start, loaded.end, ranges)
            pd.testing.assert_frame_equal(
                canonical(loaded[query]), canonical(plain[query]), check_dtype=False
            )

    check(set())
    long_prompts = [
        call_record(
            session="s-long",
            input_tokens=60_000 * (k + 1),
            time_unix_nano=int((moment - timedelta(minutes=30 - k)).timestamp()) * 10**9,
        )
        for k in range(12)
    ]
    store_records(store, tmp_path / "long", long_prompts)
    (runaway,) = [name for name in gated if name.startswith("runaway_sessions")]
    check({runaway})


def test_hourly_queries_read_complete_hours_only() -> None:
    """A range's cut hours are widened to whole ones; the evaluated hour, cut by the last range's end, is
    then left out (no baseline uses it; the live cycle would read it again every minute)."""
    hour = timedelta(hours=1)
    start = NOW.replace(minute=0) - 30 * hour
    ranges = [(start + timedelta(minutes=20), start + 2 * hour + timedelta(minutes=5)), (NOW - 3 * hour, NOW)]
    widened = history.whole_hours(ranges)
    last = (NOW.replace(minute=0) - 3 * hour, NOW)
    assert widened == [(start, start + 3 * hour), last]
    assert history.complete_hours(widened) == [(start, start + 3 * hour), (last[0], NOW.replace(minute=0))]
    assert history.complete_hours(history.whole_hours([(NOW.replace(minute=0), NOW)])) == []


def test_grids_kept_between_live_cycles_are_what_a_fresh_build_gives(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live cycle keeps its per-minute grids and sums only the minutes that are new or settling
    (``data.GridMemo``): cycle after cycle, across midnight, a second tenant, a route new to the
    range, a route whose only minute leaves it, a column asked for every other cycle, a late call in a
    settling minute and one in a held minute (everything is read again), every grid is the one a fresh
    build gives, to the bit."""
    midnight = datetime.combine(NOW.date(), datetime.min.time(), UTC)
    first = midnight - timedelta(minutes=6)  # the cycles cross midnight
    engine = Engine(build_detectors(), cache=HistoryCache())
    trailing = max(d.lookback() for d in engine.detectors)
    margin = max(d.same_hour_margin() for d in engine.detectors)
    opening = history.history_ranges([first], trailing, margin=margin)[0][0]
    calls = calls_between(first - timedelta(days=2, hours=3), first + timedelta(minutes=20), every=30)
    calls += calls_between(opening, opening + timedelta(seconds=30), "/leaving")  # leaves at the next cycle
    calls += calls_between(first + timedelta(minutes=3), first + timedelta(minutes=4), "/new", 10)
    store_records(store, tmp_path / "a", calls)
    other = calls_between(first - timedelta(hours=3), first + timedelta(minutes=20), "/other", 40)
    store_records(store, tmp_path / "b", other, tenant="tenant-b")

    updated: list[tuple[int, bool]] = []  # per update of kept grids: the cycle, and whether it could
    update = data._Kept.update
    cycle = 0

    def recorded(kept, *args):
        updated.append((cycle, update(kept, *args)))
        return updated[-1][1]

    monkeypatch.setattr(data._Kept, "update", recorded)
    late = {6: first + timedelta(minutes=4, seconds=50), 9: first - timedelta(hours=2)}  # settling, held
    for cycle in range(12):
        moment = first + timedelta(minutes=cycle)
        if cycle in late:
            store_records(store, tmp_path / f"late{cycle}", [call_record(
                time_unix_nano=int(late[cycle].timestamp()) * 10**9, route="/chat", duration_ms=1.0
            )])  # fmt: skip
        loaded = engine.load(store, [moment])
        kept = GridMemo.of(loaded)
        timeline = data.grid_timeline(loaded)
        for frame in (loaded[ROLLUP], loaded[ROLLUP]):  # the second time: the grids this cycle holds
            for dims in (("tenant", "service", "route"), ("tenant", "route"), ("route", "tenant")):
                # A column asked for every other cycle only: summed whole again when it is.
                columns = ("calls", "cost_usd", *(("errors",) if cycle % 2 else ()))
                args = (frame, dims, columns, loaded.start, loaded.end, timeline)
                scopes, grids = kept.grid_arrays(*args)
                fresh_scopes, fresh = GridMemo().grid_arrays(*args)
                assert list(scopes) == list(fresh_scopes), (cycle, dims)
                for column, grid in grids.items():
                    np.testing.assert_array_equal(grid, fresh[column], err_msg=f"{cycle} {dims} {column}")
                    assert not grid.flags.writeable
        routes = {dict(scope)["route"] for scope in scopes}
        assert ("/leaving" in routes) == (cycle == 0) and ("/new" in routes) == (cycle >= 3), cycle
        assert {dict(scope)["tenant"] for scope in scopes} == {"", "tenant-b"}
    # Laid out afresh: the first cycle, when the route left, when the new one came, and after the late
    # call in a held minute (the cache read everything again and let its grids go). Every other cycle,
    # the late call in a settling minute's included, moved the kept rows and summed only its new and
    # settling minutes.
    assert sorted({c for c, moved in updated if not moved}) == [1, 3]
    assert sorted({c for c, moved in updated if moved}) == [2, 4, 5, 6, 7, 8, 10, 11]
    assert 9 not in {c for c, _ in updated}


def test_lists_of_as_many_integers_are_held_as_fixed_size_lists_and_nothing_else_is() -> None:
    """The tails' histograms (lists of as many integers, as the store returns them) are held as
    fixed-size lists of their own integer type, read back as one array; lists of other lengths, with a
    null, of floats or of text are not converted."""
    as_read = pd.Series([[np.uint64(v), np.uint64(v + 1)] for v in (3, 5)], index=[4, 9])
    for column, dtype in (
        (as_read, np.uint64),
        (pd.Series([(-1, 2), (3, 4)]), np.int64),
        (pd.Series([np.array([1, 2], dtype=np.uint64), np.array([3, 4], dtype=np.uint64)]), np.uint64),
    ):
        held = history._fixed_size_lists(column)
        assert held is not None and held.index.equals(column.index)
        values = history.fixed_lists(held)
        assert values is not None and values.dtype == dtype
        np.testing.assert_array_equal(values, np.array([list(v) for v in column], dtype=dtype))
    for column in ([[1, 2], [3]], [[1, None], [3, 4]], [[1.5, 2], [3, 4]], [["a"], ["b"]]):
        assert history._fixed_size_lists(pd.Series(column)) is None
