from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, Series, between, run, transitions_only
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.buffer.records import CallRecord
from tokenpulse.detectors.base import settings_from_mapping
from tokenpulse.detectors.catalog.cache_not_applied import ROLLUP, CacheNotApplied, Settings
from tokenpulse.detectors.data import load_history
from tokenpulse.storage.store import Store

DAY = 1440
# The prompt edit that dropped the cacheable prefix under the provider's minimum, and its rollback.
ONSET, END = DAY + 30, DAY + 60

Value = float | Callable[[int], float]


def scope(route: str) -> dict[str, str]:
    return {"service": "support", "route": route, "model": "claude-sonnet-4-5"}


def at(m: int, value: Value) -> float:
    return value(m) if callable(value) else value


def series(route: str, calls: Value = 50.0, share: Value = 0.02, start: int = 0) -> Series:
    """A scope whose ``share`` of calls (normally 2%) neither read nor write the prompt cache."""
    values = {"calls": calls, "uncached_calls": lambda m: at(m, calls) * at(m, share)}
    return Series(scope(route), values, start, DAY + 120)


def test_caching_stops_fires_critical_and_resolves_while_confounders_stay_quiet() -> None:
    night = lambda m: 10.0 if 60 <= m % DAY < 600 else 50.0  # noqa: E731  traffic falls 80% at 01:00
    deploy = lambda m: {DAY + 40: 10.0, DAY + 41: 10.0, DAY + 42: 10.0, DAY + 43: 90.0}.get(m, 50.0)  # noqa: E731
    scenario = Scenario().add(
        ROLLUP,
        series("/broken", share=between(ONSET, END, 1.0, 0.02)),
        series("/surge", calls=between(ONSET, END, 150.0, 50.0)),
        series("/blip", share=between(DAY + 80, DAY + 83, 1.0, 0.02)),  # 3 minutes without caching
        series("/extreme-call", calls=between(DAY + 90, DAY + 91, 51.0, 50.0),
               share=between(DAY + 90, DAY + 91, 2 / 51, 0.02)),  # one more call, and it is uncached
        series("/deploy", calls=deploy),  # a rolling restart: a dip, a catch-up, per-call mix unchanged
        series("/overnight", calls=night),
        series("/new", calls=8.0, share=1.0, start=ONSET),  # a new route that never cached: no baseline
        series("/never-cached-well", share=between(ONSET, END, 1.0, 0.40)),  # not a scope that caches
        # A thin route, one uncached call a minute: 14% in every minute and the window, by chance alone
        # for a route uncached 6% of the time (the Wilson bound of 5 in 35 is 4%).
        series("/thin-noisy", calls=7.0, share=between(ONSET, END, 1 / 7, 0.02)),
    )  # fmt: skip
    result = run(CacheNotApplied(), scenario, DAY, DAY + 120)
    assert result == [
        # The per-minute share exceeded 10% in 4 of the window's 5 minutes from ONSET+4, where the window's
        # share is (4 + 0.02) / 5 = 80% (Wilson bound 72%) > 50%: critical, fired at once.
        (ONSET + 4, "firing", "critical", scope("/broken")),
        # Minutes ONSET..END-1 are bad: at END+1 the window [END-4, END+1) still holds 4 bad minutes, at END+2
        # only 3: last active at END+1, kept firing 5 minutes.
        (END + 6, "resolved", "critical", scope("/broken")),
    ]


def test_a_third_of_calls_losing_the_cache_is_a_warning() -> None:
    # One prompt variant in three fell under the cache minimum: the per-minute share is 30% from ONSET.
    # At ONSET+4, 4 sustained minutes and a window share of (4 x 0.3 + 0.02) / 5 = 24% of 250 calls (Wilson
    # bound 17%): a warning, fired at once.
    scenario = Scenario().add(ROLLUP, series("/variant", share=between(ONSET, END, 0.3, 0.02)))
    assert transitions_only(run(CacheNotApplied(), scenario, DAY, DAY + 120)) == [
        (ONSET + 4, "firing", "warning"),
        (END + 6, "resolved", "warning"),  # last window with 4 bad minutes ends at END+1
    ]


def test_an_outage_of_three_minutes_does_not_fire_and_one_of_four_does() -> None:
    # k bad minutes from B hold the condition (4 of the window's 5 minutes bad) from B+4 to B+k+1.
    scenario = Scenario().add(
        ROLLUP,
        series("/three", share=between(ONSET, ONSET + 3, 1.0, 0.02)),
        series("/four", share=between(ONSET, ONSET + 4, 1.0, 0.02)),
    )
    assert run(CacheNotApplied(), scenario, DAY, DAY + 120) == [
        (ONSET + 4, "firing", "critical", scope("/four")),
        (ONSET + 10, "resolved", "critical", scope("/four")),
    ]


def test_settings_read_from_config_and_are_validated() -> None:
    config = {"warning_above": 0.2, "window_minutes": 10, "sustained_minutes": 6}
    assert settings_from_mapping(Settings, config) == Settings(
        warning_above=0.2, window=timedelta(minutes=10), sustained=timedelta(minutes=6)
    )
    with pytest.raises(ValueError, match="between 1 minute and the window"):
        settings_from_mapping(Settings, {"sustained_minutes": 6})  # longer than the 5-minute window


def store_calls(tmp_path: Path, store: Store, records: list[CallRecord]) -> None:
    """Put ``records`` into the store the way the collector does: write-ahead log, then the LogWriter."""
    store_records(store, tmp_path, records)


def test_the_query_reads_uncached_calls_from_the_rollup(tmp_path: Path, store: Store) -> None:
    minute = datetime.fromtimestamp(BASE_TIME_NS // 1_000_000_000, UTC)
    records = [call_record(cache_read_tokens=600) for _ in range(3)]  # OpenAI-style cache reads
    records += [call_record(cache_read_tokens=0, cache_write_tokens=800)]  # a cache write is caching
    records += [call_record(cache_read_tokens=0, cache_write_tokens=0) for _ in range(2)]
    records += [call_record(route="/other", cache_read_tokens=0, time_unix_nano=BASE_TIME_NS + 60 * 10**9)]
    store_calls(tmp_path, store, records)
    history = load_history(
        store, CacheNotApplied().queries(), minute - timedelta(hours=1), minute + timedelta(minutes=2)
    )
    frame = history[ROLLUP].sort_values("route")
    assert list(frame[["route", "model", "calls", "uncached_calls"]].itertuples(index=False, name=None)) == [
        ("/chat", "gpt-4o-2024-08-06", 6, 2),
        ("/other", "gpt-4o-2024-08-06", 1, 1),
    ]
    assert list(frame["minute"]) == [minute, minute + timedelta(minutes=1)]
    assert CacheNotApplied().evaluate(history, [minute + timedelta(minutes=2)]) == []  # no baseline yet
