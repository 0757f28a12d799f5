"""Say what is watched: every scope of every evidence detector is watched, learning or not applicable."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.detector_harness import Scenario, Series, drawn, minute
from tokenpulse.detectors.api import coverage_router
from tokenpulse.detectors.base import LEARNING, NOT_APPLICABLE, WATCHED, Coverage
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.engine import Engine
from tokenpulse.detectors.history import ROLLUP

DAY = 1440
NOW = DAY + 120


def cache(route: str, hit: float, start: int = 0) -> Series:
    return drawn(
        {"service": "s", "route": route, "model": "m", "router": ""}, 10, hit, part="hits", start=start,
        end=NOW,
        extra={"input_tokens": lambda m, n, h: n * 1000, "cache_read_tokens": lambda m, n, h: h * 800,
               "cache_write_tokens": lambda m, n, h: 0, "cacheable_tokens": lambda m, n, h: n * 1000,
               "uncached_calls": lambda m, n, h: n - h, "timeouts": lambda m, n, h: 0,
               "escalated_calls": lambda m, n, h: 0},
    )  # fmt: skip


def coverage_at(*series: Series) -> dict[tuple[str, str], str]:
    history = Scenario().add(ROLLUP, *series).history(0, NOW, {})
    for detector in build_detectors():
        for query in detector.queries():
            history.frames.setdefault(query.name, history[ROLLUP].iloc[0:0])
    engine = Engine(build_detectors())
    evidence = [d for d in engine.detectors if not d.splits_tenants]  # the others report no coverage
    rows = [row for d in evidence for row in d.assess(history, [minute(NOW)])[1]]
    return {(r.detector, dict(r.scope).get("route", "")): r.status for r in rows}


def test_each_scope_is_watched_learning_or_not_applicable() -> None:
    status = coverage_at(cache("/caches", 0.8), cache("/never", 0.0), cache("/new", 0.8, start=NOW - 20))
    assert status[("cache_hit_collapse", "/caches")] == WATCHED
    assert status[("cache_hit_collapse", "/never")] == NOT_APPLICABLE
    assert status[("cache_hit_collapse", "/new")] == LEARNING
    assert status[("cache_not_applied", "/never")] == NOT_APPLICABLE
    assert status[("timeout_surge", "/new")] == LEARNING  # held to the documented 5% meanwhile
    assert status[("timeout_surge", "/caches")] == WATCHED
    assert status[("traffic_drop", "/caches")] == WATCHED  # a day of history: yesterday's rate is known
    assert status[("traffic_drop", "/new")] == LEARNING


def test_the_api_lists_coverage_with_totals_and_filters() -> None:
    engine = Engine([])
    engine.coverage = [
        Coverage("cache_hit_collapse", (("service", "s"), ("route", "/a")), WATCHED, "compared with itself"),
        Coverage("cache_hit_collapse", (("service", "s"), ("route", "/b")), NOT_APPLICABLE, "never cached"),
        Coverage("timeout_surge", (("service", "s"), ("route", "/b")), LEARNING, "held to 5%"),
    ]
    app = FastAPI()
    app.include_router(coverage_router(engine))
    client = TestClient(app)
    body = client.get("/api/v1/coverage").json()
    assert body["totals"] == {
        "cache_hit_collapse": {NOT_APPLICABLE: 1, WATCHED: 1},
        "timeout_surge": {LEARNING: 1},
    }
    assert client.get("/api/v1/coverage", params={"status": LEARNING}).json()["scopes"] == [
        {"detector": "timeout_surge", "scope": {"service": "s", "route": "/b"}, "status": LEARNING,
         "note": "held to 5%"}
    ]  # fmt: skip
