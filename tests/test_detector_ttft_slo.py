from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, Series, between, run, windowed
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.detectors.catalog.ttft_slo import Settings, TtftSlo
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

ONSET, END = 30, 60  # the breach and its recovery
USUAL = 600.0  # ms: every scope's TTFT p99 outside its incident
DETECTOR = TtftSlo(Settings(route_slo_ms={"/autocomplete": 300.0, "/reasoning": 5000.0}))
WINDOW = 5  # the default window, in minutes


def scope(route: str) -> dict[str, str]:
    return {"service": "assistant", "route": route}


def add(
    scenario: Scenario,
    route: str,
    level: Callable[[int], float] | float = USUAL,
    ttft_calls: Callable[[int], float] | float = 30,
    *,
    late: Callable[[int], float] | None = None,
    start: int = 0,
    end: int = 130,
) -> Scenario:
    """A route's calls with a TTFT and the p99 frame the quantile query would return (rows from start + 1).

    A minute whose p99 ``level`` is past the route's SLO (its critical bound) has a fifth of its calls
    past it, as in a real breach, unless ``late`` gives the calls past the SLO (and the bound) per minute.
    """
    per_minute = level if callable(level) else (lambda _m: level)
    calls = ttft_calls if callable(ttft_calls) else (lambda _m: ttft_calls)
    slo = DETECTOR.settings.route_slo_ms.get(route, DETECTOR.settings.slo_ms)

    def over(bound: float) -> Callable[[int], float]:
        return late or (lambda m: 0.2 * calls(m) if per_minute(m) > bound else 0.0)

    counts = {"ttft_calls": calls, "over_slo": over(slo), "over_critical": over(2 * slo)}
    scenario.add(DETECTOR.ttft_calls_query, Series(scope(route), counts, start, end))
    return scenario.add(
        DETECTOR.p99_query, Series(scope(route), {"value": windowed(per_minute, WINDOW)}, start + 1, end)
    )


def test_breaches_fire_against_the_default_or_the_route_slo() -> None:
    scenario = Scenario()
    add(scenario, "/chat", between(ONSET, END, 1800, USUAL))  # above 1 s: warning
    add(scenario, "/stall", between(ONSET, END, 2500, USUAL))  # above 2 s: critical
    add(scenario, "/autocomplete", between(ONSET, END, 450, 200))  # its own SLO is 300 ms
    add(scenario, "/reasoning", 3000)  # its own SLO is 5 s: always within
    result = run(DETECTOR, scenario, 10, 130)
    # Slow first tokens in [ONSET, END) are in the windows ending at ONSET + 1 ... END + 4: pending at
    # ONSET + 1, firing 10 min later; resolved 5 min after the last slow window.
    assert result == [
        (ONSET + 11, "firing", "warning", scope("/autocomplete")),
        (ONSET + 11, "firing", "warning", scope("/chat")),
        (ONSET + 11, "firing", "critical", scope("/stall")),
        (END + 9, "resolved", "warning", scope("/autocomplete")),
        (END + 9, "resolved", "warning", scope("/chat")),
        (END + 9, "resolved", "critical", scope("/stall")),
    ]


def test_benign_confounders_never_fire() -> None:
    scenario = Scenario()
    add(scenario, "/steady")
    add(scenario, "/surge", ttft_calls=between(ONSET, END, 90, 30))  # 3x traffic, same TTFT
    add(scenario, "/slow-call", between(40, 41, 30_000, USUAL), late=between(40, 41, 1, 0))  # 5 windows
    # The p99 over the SLO for half an hour, from 2 slow first tokens in a window of 150: 1.3% late, by
    # chance alone for a route whose calls are late 0.5% of the time (Wilson bound 0.2% < 1%).
    add(scenario, "/noisy", between(ONSET, END, 1200, USUAL), late=between(ONSET, END, 0.4, 0))
    add(scenario, "/blip", between(80, 83, 4000, USUAL))  # 3 slow minutes: 7 windows
    rollout = {70: 12, 71: 12, 72: 48, 73: 48}  # a deploy that changes nothing: traffic dips, catches up
    add(scenario, "/deploy", ttft_calls=lambda m: rollout.get(m, 30))
    add(scenario, "/trough", ttft_calls=lambda m: 8 if 30 <= m < 90 else 40)  # 80% fewer calls at night
    add(scenario, "/new", 4000, ttft_calls=3, start=50)  # a new route (or model) with little traffic
    add(scenario, "/batch", 4000, ttft_calls=4)  # mostly not streamed: 20 calls with a TTFT a window
    assert run(DETECTOR, scenario, 10, 130) == []


def test_a_breach_must_outlast_for_minus_window_plus_one_minutes() -> None:
    # A b-minute breach holds window + b - 1 evaluations: 6 minutes hold 10 (9 min after the first),
    # short of for = 10; 7 minutes hold 11 and fire at the 11th.
    scenario = Scenario()
    add(scenario, "/six", between(90, 96, 1500, USUAL))
    add(scenario, "/seven", between(90, 97, 1500, USUAL))
    assert run(DETECTOR, scenario, 10, 130) == [
        (101, "firing", "warning", scope("/seven")),  # holds 91 ... 101
        (106, "resolved", "warning", scope("/seven")),
    ]


def test_for_shorter_than_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="one slow call"):
        Settings(window=timedelta(minutes=5), for_=timedelta(minutes=4))


def test_queries_run_on_the_store(tmp_path: Path, store: Store) -> None:
    # Two minutes of 4 streamed calls (200 ms, then 3 s to the first token) and 2 not streamed.
    first = BASE_TIME_NS - 10 * 60 * 1_000_000_000
    records = [
        call_record(time_unix_nano=first + m * 60_000_000_000 + i, ttft_ms=ttft)
        for m, ttft in ((0, 200.0), (1, 3000.0))
        for i, ttft in enumerate([ttft] * 4 + [None] * 2)
    ]
    store_records(store, tmp_path, records)

    detector = TtftSlo(Settings(window=timedelta(minutes=2), for_=timedelta(minutes=2), min_calls=8))
    start = datetime.fromtimestamp(first // 1_000_000_000, UTC)
    history = load_history(store, detector.queries(), start, start + timedelta(minutes=5))
    counts = history[detector.ttft_calls_query].sort_values("minute")
    assert list(counts.columns) == [
        "minute", "tenant", "service", "route", "ttft_calls", "over_slo", "over_critical"
    ]  # fmt: skip
    assert counts[["ttft_calls", "over_slo", "over_critical"]].values.tolist() == [[4, 0, 0], [4, 4, 4]]
    p99 = history[detector.p99_query].sort_values("minute")
    assert list(p99.columns) == ["minute", "tenant", "service", "route", "value"]
    assert p99["minute"].iloc[0] == start + timedelta(minutes=1)
    # Calls without a TTFT are not zeros. Minute 3's window [1, 3) still holds minute 1's calls.
    assert p99["value"].round().tolist() == [200, 3000, 3000]

    times = [start + timedelta(minutes=m) for m in (1, 2, 3)]
    observations = detector.evaluate(history, times)
    assert [(o.at, o.severity, round(o.value), o.threshold, o.samples) for o in observations] == [
        (times[1], "critical", 3000, 2000.0, 8)  # minute 1 alone has 4 calls with a TTFT: too few
    ]
    assert dict(observations[0].scope) == {"service": "checkout", "route": "/chat"}
