from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, Series, between, run, windowed
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.detectors.catalog.latency_p99_drift import ROLLUP, LatencyP99Drift, Settings
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 30, DAY + 60  # the slowdown and its recovery
USUAL = 1500.0  # ms: every scope's p99 on day 0 and outside its incident
DETECTOR = LatencyP99Drift()
WINDOW = 10  # the default window, in minutes


def scope(route: str, model: str = "claude-sonnet-4-5") -> dict[str, str]:
    return {"service": "support", "route": route, "model": model}


def add(
    scenario: Scenario,
    route: str,
    level: Callable[[int], float] | float = USUAL,
    calls: Callable[[int], float] | float = 20,
    *,
    model: str = "claude-sonnet-4-5",
    start: int = 0,
    end: int = DAY + 120,
) -> Scenario:
    """A scope's rollup calls, and the frames its quantile queries would return: the windowed p99 (rows
    from start + 1) and the hourly p99 with the hour's calls."""
    per_minute = level if callable(level) else (lambda _m: level)
    per_call = calls if callable(calls) else (lambda _m: calls)
    hourly = {
        "value": lambda h: max(per_minute(m) for m in range(h, h + 60)),
        "calls": lambda h: sum(per_call(m) for m in range(max(h, start), min(h + 60, end))),
    }
    first_hour = start - start % 60
    return (
        scenario.add(ROLLUP, Series(scope(route, model), {"calls": calls}, start, end))
        .add(
            DETECTOR.p99_query,
            Series(scope(route, model), {"value": windowed(per_minute, WINDOW)}, start + 1, end),
        )
        .add(DETECTOR.hourly_query, Series(scope(route, model), hourly, first_hour, end, "hour", 60))
    )


def test_drift_fires_escalates_and_resolves() -> None:
    scenario = Scenario()
    add(scenario, "/drift", between(ONSET, END, 4000, USUAL))  # 2.7x: warning
    meltdown = lambda m: 4000 if ONSET <= m < ONSET + 20 else 6000 if ONSET + 20 <= m < END else USUAL  # noqa: E731
    add(scenario, "/meltdown", meltdown)  # 2.7x, then 4x: critical
    result = run(DETECTOR, scenario, DAY, DAY + 120)
    # Slow calls in [ONSET, END) are in the windows ending at ONSET + 1 ... END + 9: pending at ONSET + 1,
    # firing 15 min later; the last slow window is END + 9, resolved 5 min after it.
    assert result == [
        (ONSET + 16, "firing", "warning", scope("/drift")),
        (ONSET + 16, "firing", "warning", scope("/meltdown")),
        (ONSET + 21, "firing", "critical", scope("/meltdown")),  # first window holding a 6 s minute
        (END + 14, "resolved", "warning", scope("/drift")),
        (END + 14, "resolved", "critical", scope("/meltdown")),
    ]


def test_benign_confounders_never_fire() -> None:
    scenario = Scenario()
    add(scenario, "/steady")
    add(scenario, "/surge", calls=between(ONSET, END, 60, 20))  # 3x traffic, same per-call latency
    add(scenario, "/slow-call", between(DAY + 40, DAY + 41, 60_000, USUAL))  # one 60 s call: 10 windows
    add(scenario, "/blip", between(DAY + 80, DAY + 83, 8000, USUAL))  # 3 slow minutes: 12 windows
    # A rolling deploy that changes nothing: traffic dips while pods restart, then catches up.
    add(
        scenario, "/deploy", calls=lambda m: {DAY + 70: 8, DAY + 71: 8, DAY + 72: 32, DAY + 73: 32}.get(m, 20)
    )
    # The overnight trough: 50 calls a minute by day, 80% fewer from 00:30 to 01:30, every day.
    add(scenario, "/trough", calls=lambda m: 10 if 30 <= m % DAY < 90 else 50)
    add(scenario, "/thin", between(ONSET, END, 6000, USUAL), calls=5)  # 50 calls a window: no p99
    add(scenario, "/fast", between(ONSET, END, 900, 300))  # 3x, but under the 2 s floor
    # A brand-new model: thin and slow, then busy and slow from its start (no baseline, then its own).
    add(scenario, "/new", 9000, calls=3, model="new-model", start=DAY + 20)
    add(scenario, "/new-busy", 5000, calls=20, model="new-model", start=DAY + 20)
    assert run(DETECTOR, scenario, DAY, DAY + 120) == []


def test_a_slowdown_must_outlast_for_minus_window_plus_one_minutes() -> None:
    # A b-minute slowdown holds window + b - 1 evaluations: 6 minutes hold 15 (14 min after the first),
    # short of for = 15; 7 minutes hold 16 and fire at the 16th.
    scenario = Scenario()
    add(scenario, "/six", between(DAY + 20, DAY + 26, 5000, USUAL))
    add(scenario, "/seven", between(DAY + 20, DAY + 27, 5000, USUAL))
    assert run(DETECTOR, scenario, DAY, DAY + 120) == [
        (DAY + 36, "firing", "critical", scope("/seven")),  # holds DAY + 21 ... DAY + 36
        (DAY + 41, "resolved", "critical", scope("/seven")),
    ]


def test_for_shorter_than_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="one slow call"):
        Settings(window=timedelta(minutes=10), for_=timedelta(minutes=5))


def test_queries_run_on_the_store(tmp_path: Path, store: Store) -> None:
    # 4 hours of 2 calls a minute at 1 s (3 complete hours make the trailing baseline), then 5 s.
    first = BASE_TIME_NS - 300 * 60 * 1_000_000_000
    first -= first % (3600 * 1_000_000_000)  # start on a whole hour
    records = [
        call_record(time_unix_nano=first + m * 60_000_000_000 + i, duration_ms=1000.0 if m < 240 else 5000.0)
        for m in range(245)
        for i in range(2)
    ]
    store_records(store, tmp_path, records)

    detector = LatencyP99Drift(
        Settings(window=timedelta(minutes=2), for_=timedelta(minutes=2), min_calls=4, floor_ms=0)
    )
    start = datetime.fromtimestamp(first // 1_000_000_000, UTC)
    history = load_history(store, detector.queries(), start, start + timedelta(minutes=245))
    p99 = history[detector.p99_query].sort_values("minute").reset_index(drop=True)
    assert list(p99.columns) == ["minute", "tenant", "service", "route", "model", "value"]
    assert p99["minute"].iloc[0] == start + timedelta(minutes=1)  # the window ending there
    assert p99["value"].iloc[[0, 239, 240, 241]].round().tolist() == [1000, 1000, 5000, 5000]
    assert history[ROLLUP]["calls"].sum() == 490
    hourly = history[detector.hourly_query].sort_values("hour")
    assert hourly["calls"].tolist() == [120, 120, 120, 120, 10]
    assert hourly["value"].round().tolist() == [1000, 1000, 1000, 1000, 5000]

    times = [start + timedelta(minutes=m) for m in (240, 241, 242)]
    observations = detector.evaluate(history, times)
    assert [(o.at, o.severity, round(o.value), o.baseline, o.samples) for o in observations] == [
        (times[1], "critical", 5000, 1000.0, 4),
        (times[2], "critical", 5000, 1000.0, 4),
    ]
    assert dict(observations[0].scope) == {
        "service": "checkout", "route": "/chat", "model": "gpt-4o-2024-08-06"
    }  # fmt: skip
