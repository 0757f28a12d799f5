from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.factories import BASE_TIME_NS, call_record, store_records, tool_span_record
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import SummaryQuery, build_summary_sql, summarize

BASE = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)


def fill(store: Store, tmp_path: Path) -> None:
    records = [
        *(call_record(duration_ms=100.0 * (i + 1), cost_usd=Decimal("0.001")) for i in range(10)),
        call_record(route="/search", response_model="claude-sonnet-4-5", provider="anthropic",
                    input_tokens=5000, cache_read_tokens=3000, cache_write_tokens=1000, output_tokens=50,
                    cost_usd=Decimal("0.0123456789"), status="error", ttft_ms=None,
                    time_unix_nano=BASE_TIME_NS + 90 * 10**9),
        call_record(user="mallory", time_unix_nano=BASE_TIME_NS + 30 * 10**9, cost_usd=Decimal("2")),
    ]  # fmt: skip
    store_records(store, tmp_path, records)


def test_rollup_and_raw_paths_agree(store: Store, tmp_path: Path) -> None:
    fill(store, tmp_path)
    minute_aligned = SummaryQuery(BASE, BASE + timedelta(minutes=5), ("route", "model"))
    assert "FROM calls_1m" in build_summary_sql(minute_aligned)[0]
    unaligned = SummaryQuery(BASE, BASE + timedelta(minutes=5, seconds=1), ("route", "model"))
    assert "FROM calls FINAL" in build_summary_sql(unaligned)[0]
    rolled, raw = summarize(store, minute_aligned), summarize(store, unaligned)
    strip = [{k: v for k, v in g.items() if k not in ("latency_ms", "ttft_ms")} for g in rolled]
    assert strip == [{k: v for k, v in g.items() if k not in ("latency_ms", "ttft_ms")} for g in raw]
    chat, search = rolled
    assert chat["key"] == {"route": "/chat", "model": "gpt-4o-2024-08-06"}
    assert (chat["calls"], chat["cost_usd"], chat["errors"]) == (11, "2.01", 0)
    assert search["cost_usd"] == "0.0123456789" and search["errors"] == 1
    assert search["cache_hit_ratio"] == 0.75  # 3000 read / (3000 read + 1000 written)
    assert search["ttft_ms"] == {"p50": None, "p95": None, "p99": None}
    assert chat["latency_ms"]["p50"] == pytest.approx(raw[0]["latency_ms"]["p50"], rel=0.25)


def test_user_filter_reads_the_raw_table(store: Store, tmp_path: Path) -> None:
    fill(store, tmp_path)
    query = SummaryQuery(BASE, BASE + timedelta(minutes=5), (), {"user": "mallory"})
    sql, parameters = build_summary_sql(query)
    assert "FROM calls FINAL" in sql and "mallory" not in sql and parameters["f0"] == "mallory"
    (group,) = summarize(store, query)
    assert group["key"] == {} and group["calls"] == 1 and group["cost_usd"] == "2"


def test_empty_range_gives_one_empty_group(store: Store) -> None:
    (group,) = summarize(store, SummaryQuery(BASE, BASE + timedelta(minutes=1)))
    assert group["calls"] == 0 and group["cost_usd"] == "0" and group["cache_hit_ratio"] is None
    assert group["latency_ms"]["p99"] is None


def test_unknown_dimension_and_reversed_range_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown dimension"):
        SummaryQuery(BASE, BASE + timedelta(minutes=1), ("service; DROP TABLE calls",))
    with pytest.raises(ValueError, match="end must be after start"):
        SummaryQuery(BASE, BASE)


def _cache_calls(provider: str, model: str, n: int, read: int, write: int, **overrides) -> list:
    return [
        call_record(provider=provider, request_model=model, response_model=model, input_tokens=30_000,
                    cache_read_tokens=read, cache_write_tokens=write, **overrides)
        for _ in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("seconds", [0, 1], ids=["rollup", "raw"])
def test_hit_ratio_by_provider_shape_never_by_window(store: Store, tmp_path: Path, seconds: int) -> None:
    """A warm Anthropic route whose window has no cache write reads ~1.0 (every cacheable token was read),
    not reads / input; a reads-only provider is reads / input; a mixed group adds the two up."""
    store_records(store, tmp_path, [
        *_cache_calls("anthropic", "claude-sonnet-4-5", 4, 19_000, 0, route="/warm"),
        *_cache_calls("openai", "gpt-4.1", 2, 6_000, 0, route="/openai"),
        *_cache_calls("anthropic", "claude-sonnet-4-5", 1, 0, 19_000, route="/mixed"),
        *_cache_calls("anthropic", "claude-sonnet-4-5", 1, 19_000, 0, route="/mixed"),
        *_cache_calls("openai", "gpt-4.1", 2, 6_000, 0, route="/mixed"),
    ])  # fmt: skip
    query = SummaryQuery(BASE, BASE + timedelta(minutes=5, seconds=seconds), ("route",))
    ratios = {g["key"]["route"]: g["cache_hit_ratio"] for g in summarize(store, query)}
    assert ratios["/warm"] == 1.0  # was 19,000 / 30,000 = 0.63
    assert ratios["/openai"] == 0.2  # 6,000 / 30,000
    # (19,000 + 2 x 6,000) read of (19,000 + 19,000 + 2 x 30,000) cacheable; not 31,000 / 50,000
    assert ratios["/mixed"] == pytest.approx(31_000 / 98_000)


def test_tool_dimension_charges_each_call_to_its_nearest_tool(store: Store, tmp_path: Path) -> None:
    """group_by=tool: a call under ai.generateText under the tool is the tool's; '' outside any tool."""
    tool = tool_span_record(trace_id="a" * 32, span_id="1" * 16, name="web_search")
    link = tool_span_record(trace_id="a" * 32, span_id="2" * 16, parent_span_id="1" * 16, kind="link")
    inside = [
        call_record(trace_id="a" * 32, parent_span_id=parent, cost_usd=Decimal("0.5"))
        for parent in ("1" * 16, "2" * 16)
    ]
    store_records(store, tmp_path, [*inside, call_record(cost_usd=Decimal("0.25"))], [link, tool])
    end = BASE + timedelta(minutes=5)
    groups = summarize(store, SummaryQuery(BASE, end, ("tool", "model")))
    assert [(g["key"]["tool"], g["calls"], g["cost_usd"]) for g in groups] == [
        ("web_search", 2, "1"),
        ("", 1, "0.25"),
    ]
    (only,) = summarize(store, SummaryQuery(BASE, end, (), {"tool": "web_search"}))
    assert (only["calls"], only["cost_usd"], only["cache_hit_ratio"]) == (2, "1", 0.6)
