"""The overview's series reads the hit ratio by provider shape, like the summary and the detectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.storage.store import Store
from tokenpulse.storage.timeseries import SeriesQuery, series

BASE = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)
MINUTE_NS = 60 * 10**9


def _call(minute: int, provider: str, model: str, read: int, write: int):
    return call_record(
        time_unix_nano=BASE_TIME_NS + minute * MINUTE_NS, duration_ms=100.0, provider=provider,
        request_model=model, response_model=model, input_tokens=30_000, cache_read_tokens=read,
        cache_write_tokens=write,
    )  # fmt: skip


def test_a_warm_write_free_minute_reads_as_hits_and_providers_add_up(store: Store, tmp_path: Path) -> None:
    store_records(store, tmp_path, [
        _call(0, "anthropic", "claude-sonnet-4-5", 0, 19_000),  # cold: the prefix is written
        _call(1, "anthropic", "claude-sonnet-4-5", 19_000, 0),  # warm: read, nothing written
        _call(2, "openai", "gpt-4.1", 6_000, 0),  # reads only: over all input
        _call(3, "anthropic", "claude-sonnet-4-5", 19_000, 0),
        _call(3, "openai", "gpt-4.1", 6_000, 0),
    ])  # fmt: skip
    points = series(store, SeriesQuery(BASE, BASE + timedelta(minutes=4), timedelta(minutes=1)))
    ratios = [p["cache_hit_ratio"] for p in points]
    assert ratios == [0.0, 1.0, 0.2, pytest.approx(25_000 / 49_000)]  # was [0, 0.63, 0.2, 0.42]
