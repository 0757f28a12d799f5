from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, between, drawn, run
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.detectors.base import settings_from_mapping
from tokenpulse.detectors.catalog.cache_hit_collapse import CacheHitCollapse, Settings
from tokenpulse.detectors.history import ROLLUP, load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 60, DAY + 120  # the prompt edit and its rollback
SPAN = DAY + 240
PREFIX, SUFFIX = 6000, 2000  # tokens of a call's cached prefix, and after it


def scope(route: str) -> dict[str, str]:
    return {"service": "support", "route": route, "model": "claude-sonnet-4-5"}


def anthropic(
    route: str, hit: Callable[[int], float] | float, calls: float = 30, seed: int = 1, suffix: int = SUFFIX
):
    """Anthropic-shaped traffic: a call reads its prefix (a hit) or writes it; the suffix is neither."""
    return drawn(
        scope(route), calls, hit, part="hits", seed=seed, end=SPAN,
        extra={
            "input_tokens": lambda m, n, hits: n * (PREFIX + suffix),
            "cache_read_tokens": lambda m, n, hits: hits * PREFIX,
            "cache_write_tokens": lambda m, n, hits: (n - hits) * PREFIX,
            "cacheable_tokens": lambda m, n, hits: n * PREFIX,  # reads + writes
        },
    )  # fmt: skip


def openai(route: str, hit: Callable[[int], float] | float, calls: float = 30, seed: int = 1):
    """Reads only: a hit reads the prefix; no write is reported; cacheable tokens are the input."""
    return drawn(
        scope(route), calls, hit, part="hits", seed=seed, end=SPAN,
        extra={
            "input_tokens": lambda m, n, hits: n * (PREFIX + SUFFIX),
            "cache_read_tokens": lambda m, n, hits: hits * PREFIX,
            "cache_write_tokens": lambda m, n, hits: 0,
            "cacheable_tokens": lambda m, n, hits: n * (PREFIX + SUFFIX),
        },
    )  # fmt: skip


def evaluate(*series) -> list[tuple[int, str, str, dict[str, str]]]:
    return run(CacheHitCollapse(), Scenario().add(ROLLUP, *series), DAY, SPAN)


def test_a_collapse_fires_critical_and_resolves_while_confounders_stay_quiet() -> None:
    result = evaluate(
        anthropic("/collapse", between(ONSET, END, 0.05, 0.9)),
        anthropic("/surge", 0.9, calls=between(ONSET, END, 120, 30), seed=2),
        anthropic("/blip", between(DAY + 150, DAY + 153, 0.05, 0.9), seed=3),  # a 3-minute eviction
        anthropic("/thin", 0.9, calls=0.5, seed=4),
    )
    assert [(status, severity, s["route"]) for _, status, severity, s in result] == [
        ("firing", "critical", "/collapse"),
        ("resolved", "critical", "/collapse"),
    ]
    assert ONSET + 4 <= result[0][0] <= ONSET + 6 and END <= result[1][0] <= END + 10


def test_a_warm_cache_whose_windows_have_no_write_is_not_a_collapse() -> None:
    # 97% of calls hit: most 5-minute windows have no write at all. Reads over input would read them
    # as 6000 / 20000 = 0.3 (a critical collapse, twice in two days on a real route); reads over
    # cacheable tokens (reads + writes, Anthropic's shape) reads them as the 1.0 they are.
    assert evaluate(anthropic("/warm", 0.97, calls=10, suffix=14_000)) == []


def test_a_route_that_usually_hits_a_third_is_watched_relative_to_itself() -> None:
    # Real traffic: a cache that hits 30% of the time. 0.3 -> 0.05 is a collapse; 0.3 is not.
    result = evaluate(openai("/chat", between(ONSET, END, 0.05, 0.3)), openai("/steady", 0.3, seed=5))
    assert [(status, s["route"]) for _, status, _, s in result] == [
        ("firing", "/chat"),
        ("resolved", "/chat"),
    ]


def test_a_reads_only_route_that_stops_caching_entirely_is_a_collapse() -> None:
    # The miss: an OpenAI route that stops caching at all (no read, no write) for an hour.
    result = evaluate(openai("/auto", between(ONSET, END, 0.0, 0.86)))
    assert [status for _, status, _, _ in result] == ["firing", "resolved"]


def test_a_scope_that_never_cached_or_has_no_history_is_not_watched() -> None:
    never = openai("/never", 0.0)
    new = drawn(
        scope("/new"), 30, 0.05, part="hits", seed=6, start=DAY + 30, end=SPAN,
        extra={"input_tokens": lambda m, n, h: n * 8000, "cache_read_tokens": lambda m, n, h: h * 6000,
               "cache_write_tokens": lambda m, n, h: 0, "cacheable_tokens": lambda m, n, h: n * 8000},
    )  # fmt: skip
    assert evaluate(never, new) == []


def test_the_scope_is_a_setting() -> None:
    settings = settings_from_mapping(Settings, {"scope": ["service", "route"], "false_page_budget_days": 30})
    assert settings.scope == ("service", "route") and settings.false_page_budget_days == 30
    with pytest.raises(ValueError, match="scope"):
        settings_from_mapping(Settings, {"scope": ["user"]})
    with pytest.raises(ValueError, match="drops"):
        settings_from_mapping(Settings, {"drops": [1.5]})


def test_the_query_counts_cacheable_tokens_by_who_served_the_call(tmp_path: Path, store: Store) -> None:
    minute = datetime.fromtimestamp(BASE_TIME_NS // 1_000_000_000, UTC)
    claude = {
        "provider": "anthropic",
        "request_model": "claude-sonnet-4-5",
        "response_model": "claude-sonnet-4-5",
    }
    records = [call_record(input_tokens=8000, cache_read_tokens=6000, cache_write_tokens=0, **claude)]
    records += [call_record(input_tokens=8000, cache_read_tokens=0, cache_write_tokens=6000, **claude)]
    records += [call_record(input_tokens=1000, cache_read_tokens=600)]  # OpenAI: reads only
    store_records(store, tmp_path, records)
    history = load_history(store, [ROLLUP], minute - timedelta(hours=1), minute + timedelta(minutes=2))
    frame = history[ROLLUP].sort_values("model")
    assert frame[["model", "calls", "cache_read_tokens", "cacheable_tokens"]].values.tolist() == [
        ["claude-sonnet-4-5", 2, 6000, 12000],
        ["gpt-4o-2024-08-06", 1, 600, 1000],
    ]


def test_a_thin_reads_only_route_whose_calls_read_the_same_share_pages_within_minutes() -> None:
    # Two calls a minute, each reading its whole prefix (75% of its input: the suffix is never cached)
    # or nothing; 98% hit, then 55% for an hour. Counted as coins at 73.5%, two calls a minute hardly
    # differ from 41%: the alert came after 22-49 minutes. Each call's ratio varies far less than a
    # coin's, and the scope's history shows it.
    detected, after = [], []
    for seed in range(1, 7):
        result = evaluate(openai("/thin", between(ONSET, END, 0.55, 0.98), calls=2, seed=seed))
        fired = [m for m, status, _, _ in result if status == "firing"]
        detected.append(bool(fired) and fired[0] <= ONSET + 15)
        after.append(fired[0] - ONSET if fired else None)
    assert sum(detected) >= 5, after
    # The same route without a collapse stays quiet.
    assert all(evaluate(openai("/steady", 0.98, calls=2, seed=seed)) == [] for seed in range(11, 17))
