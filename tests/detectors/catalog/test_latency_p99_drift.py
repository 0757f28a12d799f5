from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, between, drawn_durations, run
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.detectors.base import settings_from_mapping
from tokenpulse.detectors.catalog.latency_p99_drift import LatencyP99Drift, Settings
from tokenpulse.detectors.history import TAIL_EDGES_MS, TAILS, load_history, tails_by_size
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 60, DAY + 120  # the slowdown and its recovery
SPAN = DAY + 240


def scope(route: str, model: str = "claude-sonnet-4-5") -> dict[str, str]:
    return {"service": "support", "route": route, "model": model, "router": ""}


def evaluate(detector: LatencyP99Drift, *scopes: tuple[str, float, object, float, int]):
    """Each scope: (route, calls a minute, median latency in ms or a function of the minute, spread, seed)."""
    scenario = Scenario()
    for route, calls, median, sigma, seed in scopes:
        drawn_durations(scope(route), calls, median, sigma=sigma, seed=seed, end=SPAN).add_to(
            scenario, detector
        )
    return run(detector, scenario, DAY, SPAN, defaults={"ttft_calls": 0})


def test_a_slowdown_pages_on_thin_and_busy_routes_and_resolves() -> None:
    slow = between(ONSET, END, 9000.0, 3000.0)  # every call 3x slower: the p99 triples
    result = evaluate(LatencyP99Drift(), ("/thin", 1.0, slow, 0.5, 1), ("/busy", 200.0, slow, 0.5, 2))
    for route in ("/thin", "/busy"):
        mine = [(m, status) for m, status, _, s in result if s["route"] == route]
        assert [status for _, status in mine[:1]] == ["firing"] and ONSET + 4 <= mine[0][0] <= ONSET + 15
        assert mine[-1][1] == "resolved" and mine[-1][0] >= END
        assert [status for _, status in mine].count("resolved") == 1  # no flapping


def test_a_fast_thin_route_whose_calls_all_get_6x_slower_pages_from_their_durations() -> None:
    """A route of one call a minute with a p99 of about 800 ms: the 2 s floor sets its level (2.5x the
    usual p99). Every call 6x slower takes the p99 to about 5 s: the durations' shape shows it (the 8x and
    44x shifts say the p99 passed the floor; 2x and 4x do not) well before the share of calls past 2 s
    alone would, on a call a minute."""
    found = []
    for seed in range(31, 35):
        detector = LatencyP99Drift()
        slow = between(ONSET, END, 2400.0, 400.0)
        drawn = drawn_durations(scope("/fast-thin"), 1.0, slow, sigma=0.3, seed=seed, end=SPAN)
        result = run(detector, drawn.add_to(Scenario(), detector), DAY, SPAN, defaults={"ttft_calls": 0})
        found.append(next((m - ONSET for m, status, _, _ in result if status == "firing"), None))
    assert all(at is not None and 4 <= at <= 15 for at in found), found


def test_one_call_in_fifty_twelve_times_slower_pages_on_a_route_of_ten_calls_a_minute() -> None:
    """A retry storm inside a few calls: one in fifty takes 12x longer, the p99 moves about 6x, and a
    minute holds a slow call one time in five. Over six draws of such a route, it pages within 45
    minutes in five (each call far past the trailing day weighs up to ln 99 nats)."""
    detected = []
    for seed in range(11, 17):
        detector = LatencyP99Drift()
        slow = lambda m: (0.02, 12.0) if ONSET <= m < END else (0.0, 1.0)  # noqa: E731
        scenario = drawn_durations(
            scope("/retries"), 10.0, 1000.0, sigma=0.3, seed=seed, end=SPAN, slow=slow
        ).add_to(Scenario(), detector)
        result = run(detector, scenario, DAY, SPAN, defaults={"ttft_calls": 0})
        detected.append(bool(result) and result[0][1] == "firing" and result[0][0] <= ONSET + 45)
    assert sum(detected) >= 5, detected


def test_a_slowdown_of_hours_stays_firing_once_it_is_in_the_trailing_day() -> None:
    """Every call 7x slower for 200 minutes on a busy route: after an hour, the slow calls are in the
    trailing day the durations' shape is compared with, but more than 1% of the calls are past the
    level all along, so it fires once and resolves only after the slowdown ends."""
    end, span = ONSET + 200, ONSET + 260
    detector = LatencyP99Drift()
    slow = between(ONSET, end, 21_000.0, 3000.0)
    scenario = drawn_durations(scope("/long"), 140.0, slow, sigma=0.3, seed=12, end=span).add_to(
        Scenario(), detector
    )
    result = run(detector, scenario, DAY, span, defaults={"ttft_calls": 0})
    assert [status for _, status, _, _ in result] == ["firing", "resolved"], result
    assert result[0][0] <= ONSET + 10 and result[1][0] >= end


@pytest.mark.parametrize(("calls", "share", "seed"), [(12.6, 0.02, 3), (25.0, 0.02, 17), (50.0, 0.015, 19)])
def test_a_few_calls_far_slower_page_once_and_resolve_once_it_is_over(
    calls: float, share: float, seed: int
) -> None:
    """2% (1.5%) of the calls 8x slower for 100 minutes, on a route of 12.6 or 25 (50) calls a minute:
    the p99 moves about 4x, about as many calls are past twice the usual p99 (the page level is 1%), and
    most minutes of the thinner routes hold no slow call. Bursty first minutes paged it as 5% of calls
    slower; a lull without a slow call resolved it against halfway to that (2.5%) and it paged again
    9-24 minutes later (each draw here did; at 12.6 calls a minute, 2 draws in 40). Where the lull must
    also outweigh the 2% its minutes since the page showed by ``clear``, it pages once and resolves
    within 30 minutes of the end. (A lull that does, 28 minutes at 12.6 calls a minute, one start in a
    thousand, still resolves it: draw 28.)"""
    end, span = ONSET + 100, ONSET + 220
    detector = LatencyP99Drift()
    slow = lambda m: (share, 8.0) if ONSET <= m < end else (0.0, 1.0)  # noqa: E731
    scenario = drawn_durations(
        scope("/rare"), calls, 1000.0, sigma=0.3, seed=seed, end=span, slow=slow
    ).add_to(Scenario(), detector)
    result = run(detector, scenario, DAY, span, defaults={"ttft_calls": 0})
    changes = [(m, status) for m, status, _, _ in result if status in ("firing", "resolved")]
    firing = [m for m, status in changes if status == "firing"]
    assert firing and firing[0] <= ONSET + 20 and all(m < end for m in firing), result
    assert [status for _, status in changes if status == "resolved"] == ["resolved"], result
    assert end <= changes[-1][0] <= end + 30 and changes[-1][1] == "resolved", result


def test_confounders_stay_quiet() -> None:
    single = lambda m: 120_000.0 if m == ONSET else 3000.0  # noqa: E731  one minute of very slow calls
    blip = between(ONSET, ONSET + 2, 20_000.0, 3000.0)  # a 2-minute provider hiccup
    result = evaluate(
        LatencyP99Drift(),
        ("/steady", 50.0, 3000.0, 0.5, 3),
        ("/heavy-tail", 20.0, 3000.0, 1.5, 4),  # a long-generation route: a p99 30x its median
        ("/single", 5.0, single, 0.5, 5),
        ("/blip", 50.0, blip, 0.5, 6),
        ("/fast", 50.0, between(ONSET, END, 600.0, 200.0), 0.5, 7),  # 3x, but under the 2 s floor
        ("/rare", 0.2, 3000.0, 0.5, 8),
    )
    assert result == []


def test_a_scope_without_history_is_not_watched() -> None:
    detector = LatencyP99Drift()
    drawn = drawn_durations(scope("/new"), 20.0, 30_000.0, seed=9, start=ONSET, end=SPAN)
    assert run(detector, drawn.add_to(Scenario(), detector), DAY, SPAN) == []


def test_settings_are_validated() -> None:
    settings = settings_from_mapping(Settings, {"warning_ratio": 1.5, "floor_ms": 500, "scope": ["service"]})
    assert (settings.warning_ratio, settings.floor_ms, settings.scope) == (1.5, 500.0, ("service",))
    with pytest.raises(ValueError, match="warning_ratio"):
        Settings(warning_ratio=1.0)


def test_the_histogram_counts_calls_past_each_edge_by_the_minute_they_ended(
    tmp_path: Path, store: Store
) -> None:
    first = BASE_TIME_NS - 10 * 60 * 1_000_000_000
    records = [
        call_record(time_unix_nano=first + i, duration_ms=duration, ttft_ms=ttft)
        for i, (duration, ttft) in enumerate(
            [(150.0, 50.0), (1000.0, None), (1000.0, 300.0), (90_000.0, 900.0)]
        )
    ]
    store_records(store, tmp_path, records)
    start = datetime.fromtimestamp(first // 1_000_000_000, UTC).replace(second=0)
    history = load_history(store, [TAILS], start - timedelta(minutes=5), start + timedelta(minutes=5))
    rows = history[TAILS].sort_values("minute").reset_index(drop=True)
    # The 90 s call counts in the minute it ended, a minute or two after the others.
    assert rows["calls"].tolist() == [3, 1] and rows["ttft_calls"].tolist() == [2, 1]
    assert rows["minute"].iloc[1] - rows["minute"].iloc[0] >= timedelta(minutes=1)
    edges = list(TAIL_EDGES_MS)
    latency = [list(r) for r in rows["latency_over"]]
    assert latency[0][edges.index(125.0)] == 3 and latency[0][edges.index(156.2)] == 2
    assert latency[0][edges.index(931.3)] == 2 and latency[0][edges.index(1164.2)] == 0
    assert latency[1][edges.index(80779.4)] == 1 and latency[1][edges.index(100974.2)] == 0
    ttft = [list(r) for r in rows["ttft_over"]]
    assert ttft[0][0] == 1 and ttft[0][edges.index(305.2)] == 0  # the call without a TTFT is not a zero


def test_calls_that_take_longer_because_they_are_longer_are_compared_with_their_size() -> None:
    # Decoding takes ~20 ms a token. A prompt edit makes the answers of /verbose 3x longer: its calls take
    # ~2.9x longer, and its p99 with them - what its sizes usually take, not a slower provider. /slow's
    # calls take 30 s longer at the usual answer length: that pages.
    def sized(route: str, size, median, seed: int):
        return drawn_durations(
            scope(route), 30.0, median, sigma=0.3, seed=seed, end=SPAN, size=size, per_token_ms=20.0
        )

    scenario = Scenario()
    detector = LatencyP99Drift()
    for route, size, median, seed in (
        ("/verbose", between(ONSET, END, 600.0, 200.0), 300.0, 21),
        ("/slow", 200.0, between(ONSET, END, 30_000.0, 300.0), 22),
    ):
        sized(route, size, median, seed).add_to(scenario, detector)
    result = run(detector, scenario, DAY, SPAN, defaults={"ttft_calls": 0})
    assert {s["route"] for _, status, _, s in result if status == "firing"} == {"/slow"}


def test_a_slow_call_is_compared_with_calls_of_its_size() -> None:
    # Decoding takes ~20 ms a token and answers range from ~40 to ~1000 tokens: the route's calls take
    # 1-20 s by their size alone. One call in twenty becomes 6x slower: the p99 moves 2-3x, but a short
    # answer that took 6x longer is still within what a long answer takes. Against calls of its own size
    # it is far out. Compared with every call of the day, 2 of these 6 draws paged within 30 minutes.
    detector = LatencyP99Drift()
    slow = between(ONSET, END, 0.05, 0.0)
    found = []
    for seed in range(6):
        drawn = drawn_durations(
            scope("/sized"), 10.0, 300.0, sigma=0.3, seed=40 + seed, end=SPAN, size=200.0, per_token_ms=20.0,
            slow=lambda m: (slow(m), 6.0),
        )  # fmt: skip
        result = run(detector, drawn.add_to(Scenario(), detector), DAY, SPAN, defaults={"ttft_calls": 0})
        found.append(next((m - ONSET for m, status, _, _ in result if status == "firing"), None))
    assert sum(at is not None and 0 <= at <= 30 for at in found) >= 5, found


def test_the_histograms_by_size_class_count_each_call_in_the_class_of_its_size(
    tmp_path: Path, store: Store
) -> None:
    first = BASE_TIME_NS - 10 * 60 * 1_000_000_000
    calls = [(100, 2000, 800.0, 200.0), (120, 3000, 1500.0, None), (1000, 2000, 9000.0, 250.0)]
    records = [
        call_record(
            time_unix_nano=first + i, output_tokens=out, input_tokens=prompt, duration_ms=ms, ttft_ms=ttft
        )
        for i, (out, prompt, ms, ttft) in enumerate(calls)
    ]
    store_records(store, tmp_path, records)
    start = datetime.fromtimestamp(first // 1_000_000_000, UTC).replace(second=0)
    span = (start - timedelta(hours=2), start + timedelta(hours=2))
    edges = list(TAIL_EDGES_MS)
    for duration, expected in (
        ("latency", {6: (2, 1, 0), 9: (1, 1, 1)}),  # output tokens 100 and 120 (2^6-2^7), 1000 (2^9-2^10)
        ("ttft", {10: (2, 0, 0)}),  # prompts of 2000 tokens with a TTFT; the call without one is left out
    ):
        for query in tails_by_size(duration):
            frame = load_history(store, [query], *span)[query].sort_values("size_class")
            got = {
                int(c): (int(n), int(over[edges.index(1164.2)]), int(over[edges.index(6938.9)]))
                for c, n, over in zip(
                    frame["size_class"], frame["calls"], frame[f"{duration}_over"], strict=True
                )
            }
            assert got == expected, (duration, query.name, got)


def test_a_lone_slow_call_in_a_thin_routes_hour_yesterday_does_not_hold_its_page_back() -> None:
    """A route of one call a minute: the same hour yesterday held a call or two 20x slower than usual,
    which set that hour's "p99" (its slowest of 60 calls). The usual p99 is the trailing day's calls
    pooled, so every call 3x slower pages within 15 minutes."""
    lone = ONSET - DAY + 20  # yesterday, within the hour of the slowdown: two minutes of slow calls
    median = lambda m: 60_000.0 if m in (lone, lone + 1) else (9000.0 if ONSET <= m < END else 3000.0)  # noqa: E731
    result = evaluate(LatencyP99Drift(), ("/thin", 1.0, median, 0.5, 5))
    assert result and result[0][1] == "firing" and result[0][0] <= ONSET + 15, result
