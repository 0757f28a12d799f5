import math
import zlib

import pytest

from tests.detector_harness import Scenario, Series, between, run
from tokenpulse.detectors.catalog.timeout_surge import TimeoutSurge
from tokenpulse.detectors.catalog.traffic_drop import TrafficDrop
from tokenpulse.detectors.history import ROLLUP

DAY = 1440
START = 7 * DAY  # a week of history, then the day under test
ONSET, END = START + 600, START + 660
SPAN = START + 780


def route(name: str, calls, start: int = 0, seed: int = 0) -> Series:
    """Poisson calls a minute around ``calls`` (a function of the minute), drawn reproducibly (``hash``
    of a string is not: it changes with every interpreter)."""
    import numpy as np

    rng = np.random.default_rng([zlib.crc32(name.encode()), seed])
    drawn = {m: float(rng.poisson(max(calls(m), 0.0))) for m in range(start, SPAN)}
    return Series({"service": "support", "route": name}, {"calls": lambda m: drawn[m]}, start, SPAN)


def diurnal(peak: float, weekends: float = 0.5):
    """A day with 10x between the afternoon peak and the night trough; weekends (days 5, 6) at
    ``weekends`` of it."""

    def calls(m: int) -> float:
        hour = (m % DAY) / 60
        weekend = weekends if (m // DAY) % 7 in (5, 6) else 1.0
        return weekend * peak * (0.1 + 0.9 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)))

    return calls


def evaluate(*series: Series) -> list[tuple[int, str, str, dict[str, str]]]:
    return run(TrafficDrop(), Scenario().add(ROLLUP, *series), START, SPAN, history_from=0)


def test_a_route_that_stops_sending_pages_and_resolves_when_it_is_back() -> None:
    stopped = diurnal(200)
    result = evaluate(route("/chat", lambda m: 0 if ONSET <= m < END else stopped(m)))
    assert [(status, severity) for _, status, severity, _ in result] == [
        ("firing", "critical"),
        ("resolved", "critical"),
    ]
    assert ONSET + 4 <= result[0][0] <= ONSET + 6 and END <= result[1][0] <= END + 10


def test_a_thin_route_that_stops_pages_once_the_silence_is_evidence() -> None:
    result = evaluate(route("/thin", between(ONSET - 120, END, 0, 2)))
    firing = [m for m, status, _, _ in result if status == "firing"]
    assert firing and ONSET - 120 + 4 <= firing[0] <= ONSET - 60


def test_nights_weekends_and_surges_are_not_drops() -> None:
    surge = diurnal(50)
    assert (
        evaluate(
            route("/diurnal", diurnal(300)),  # day 7 is a weekday after a weekend: a week ago is the usual
            route("/surge", lambda m: 4 * surge(m) if ONSET <= m < END else surge(m)),
            route("/new", lambda m: 30, start=START - 300),  # no yesterday: learning
        )
        == []
    )


def test_other_alerts_of_a_scope_that_stopped_sending_do_not_resolve() -> None:
    # Timeouts surge, then the route stops sending for two hours: no traffic is no evidence of recovery,
    # so the alert resolves only once calls come back healthy.
    def timeouts(m: int) -> float:
        return 20 if ONSET - 60 <= m < ONSET else 0.2

    calls = Series(
        {"service": "support", "route": "/chat"},
        {
            "calls": lambda m: 0 if ONSET <= m < END + 60 else 20,
            "timeouts": lambda m: timeouts(m) if m < ONSET else 0,
        },
        0,
        SPAN,
    )
    scenario = Scenario().add(ROLLUP, calls)
    scenario.series.setdefault(TimeoutSurge().queries()[1], [])
    result = run(TimeoutSurge(), scenario, START, SPAN, history_from=0)
    assert [status for _, status, _, _ in result] == ["firing", "resolved"]
    assert result[0][0] < ONSET and result[1][0] > END + 60


def test_a_route_that_loses_half_its_calls_pages() -> None:
    # A sampler that starts dropping half the spans of a route making ~25 calls a minute.
    usual = diurnal(40, weekends=1.0)
    result = evaluate(route("/half", lambda m: usual(m) / 2 if ONSET <= m < END else usual(m)))
    firing = [m for m, status, _, _ in result if status == "firing"]
    assert firing and ONSET + 4 <= firing[0] <= ONSET + 20


def test_a_quieter_day_is_not_a_drop() -> None:
    # The whole day runs 30% under yesterday's (and a week ago's) traffic: today's level lowers the
    # baseline, so the quieter afternoon is not a drop.
    usual = diurnal(200, weekends=1.0)
    assert evaluate(route("/quiet", lambda m: 0.7 * usual(m) if m >= START else usual(m))) == []


def test_a_drop_that_lasts_hours_does_not_resolve_while_it_lasts() -> None:
    # Half the calls lost for two hours: today's level falls with them, but the bar to resolve is
    # yesterday's own rate, so the alert stays on until the calls come back.
    usual = diurnal(200, weekends=1.0)
    lost_until = ONSET + 120
    result = run(
        TrafficDrop(),
        Scenario().add(
            ROLLUP, route("/long", lambda m: usual(m) / 2 if ONSET <= m < lost_until else usual(m))
        ),
        START,
        SPAN,
        history_from=0,
    )
    assert [status for _, status, _, _ in result] == ["firing", "resolved"]
    assert result[1][0] >= lost_until


def test_the_same_time_yesterday_leaves_a_surge_out_and_keeps_a_course() -> None:
    # Two hours of yesterday: a load test quadrupled half an hour of a route's 20 calls a minute (the
    # window's mean: 35 a minute); a course that climbs from 10 to 30 through the window keeps its mean.
    import numpy as np

    from tokenpulse.detectors import stats
    from tokenpulse.detectors.evidence import _same_time

    def rate_of(calls: np.ndarray) -> float:
        cumulative = stats.cumulative(calls[:, None])

        def totals(end: np.ndarray, start: np.ndarray) -> np.ndarray:
            return stats.window_sums(cumulative, end, start)

        total, rate = _same_time(totals, np.array([[60]]))
        assert total[0, 0] == calls.sum()
        return float(rate[0, 0])

    surged = np.full(120, 20.0)
    surged[30:60] = 80.0
    assert rate_of(surged) == 20.0
    assert rate_of(np.linspace(10.0, 30.0, 120)) == pytest.approx(20.0, rel=0.01)


def test_a_drop_whose_first_minutes_were_deeper_pages_on_the_drop_that_goes_on() -> None:
    # 20 and 40 calls where 100 are usual fire "80% fewer"; the next minutes keep 55: they speak for the
    # 50% drop the run makes likeliest and page it, where they denied 80% and the alarm was dropped as a
    # blip, its evidence started again (paged at +12).
    def calls(m: int) -> float:
        return 100.0 if m < ONSET else {ONSET: 20.0, ONSET + 1: 40.0}.get(m, 55.0)

    result = evaluate(route("/deeper-first", calls))
    firing = [m for m, status, _, _ in result if status == "firing"]
    assert firing and firing[0] <= ONSET + 6


def test_a_thin_drop_that_lasted_pages_on_a_minute_that_still_speaks_for_it() -> None:
    # 2.2 calls a minute where 4.5 are usual, for an hour: the drop fires late, and the minutes after
    # the firing, pooled, deny it by chance; no blip explains its run, so a minute that still speaks for
    # it pages it (+21), where the pooled minutes kept it from paging until +34.
    result = evaluate(route("/thin-drop", lambda m: 2.25 if ONSET <= m < END else 4.5, seed=2))
    firing = [m for m, status, _, _ in result if status == "firing"]
    assert firing and firing[0] <= ONSET + 25
