"""The hit ratio's definition: by provider shape, additive, and the same in Python and in ClickHouse."""

from __future__ import annotations

import chdb
import pytest

from tokenpulse.storage.cache_ratio import (
    cacheable_tokens,
    cacheable_tokens_sql,
    hit_ratio,
    hit_ratio_sql,
    reports_cache_writes,
)

ROWS = [
    # provider, model, input, reads, writes
    ("anthropic", "claude-sonnet-4-5", 30_000, 19_000, 0),  # warm cache: every call hit, no write
    ("anthropic", "claude-sonnet-4-5", 30_000, 0, 19_000),
    ("openai", "gpt-4.1", 10_000, 6_000, 0),
    ("gcp.vertex_ai", "claude-opus-4-1", 5_000, 1_000, 3_000),
    ("gcp.vertex_ai", "gemini-2.5-pro", 5_000, 1_000, 0),
    ("aws.bedrock", "amazon.nova-pro-v1:0", 2_000, 0, 0),
]


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("anthropic", "claude-haiku-4-5", True),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet", True),
        ("gcp.vertex_ai", "Claude-Sonnet-4", True),
        ("gcp.vertex_ai", "gemini-2.5-flash", False),
        ("openai", "gpt-4o", False),
        ("openai", "claude-sonnet-4-5", False),  # through an OpenAI-compatible gateway: reads only
        ("deepseek", "deepseek-chat", False),
    ],
)
def test_shape_is_decided_by_who_served_the_call(provider: str, model: str, expected: bool) -> None:
    assert reports_cache_writes(provider, model) is expected


def test_a_warm_write_free_window_reads_as_a_full_hit_not_reads_over_input() -> None:
    cacheable = cacheable_tokens("anthropic", "claude-sonnet-4-5", 30_000, 19_000, 0)
    assert hit_ratio(19_000, cacheable) == 1.0


def test_a_reads_only_provider_is_measured_on_reads_over_input() -> None:
    assert hit_ratio(6_000, cacheable_tokens("openai", "gpt-4.1", 10_000, 6_000, 0)) == 0.6


def test_nothing_cacheable_is_no_ratio() -> None:
    assert hit_ratio(0, cacheable_tokens("anthropic", "claude-haiku-4-5", 900, 0, 0)) is None


def test_the_sql_definition_is_the_python_one() -> None:
    values = ", ".join(f"('{p}', '{m}', {i}, {r}, {w})" for p, m, i, r, w in ROWS)
    table = (
        "(SELECT * FROM values('provider String, model String, input_tokens UInt64, "
        f"cache_read_tokens UInt64, cache_write_tokens UInt64', {values}))"
    )
    per_row = chdb.query(f"SELECT {cacheable_tokens_sql()} FROM {table}", "CSV").data().split()
    assert [int(v) for v in per_row] == [cacheable_tokens(*row) for row in ROWS]
    overall = float(chdb.query(f"SELECT {hit_ratio_sql()} FROM {table}", "CSV").data())
    reads = sum(row[3] for row in ROWS)
    assert overall == pytest.approx(hit_ratio(reads, sum(cacheable_tokens(*row) for row in ROWS)))
