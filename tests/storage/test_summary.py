from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.factories import (
    BASE_TIME_NS,
    call_record,
    evaluation_record,
    migrate_to,
    store_records,
    tool_span_record,
)
from tokenpulse.storage.calls import CallsQuery, list_calls
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import SummaryQuery, build_summary_sql, summarize
from tokenpulse.storage.timeseries import SeriesQuery, series

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
    # The model asked for, with the names it was answered as beside it.
    assert chat["key"] == {"route": "/chat", "model": "gpt-4o"}
    assert chat["response_models"] == ["gpt-4o-2024-08-06"]
    assert search["key"] == {"route": "/search", "model": "gpt-4o"}
    assert search["response_models"] == ["claude-sonnet-4-5"]
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


ASKED, DATED = "gpt-4o-mini", "gpt-4o-mini-2024-07-18"


def _one_model_calls(seconds: int = 0) -> list:
    """Three calls answered as the dated name, and one that failed before any answer: stored, as the
    collector stores it, under the name it asked for (``normalize``: no response model -> the request's)."""
    at = BASE_TIME_NS + seconds * 10**9
    return [
        *(call_record(request_model=ASKED, response_model=DATED, cost_usd=Decimal("0.001"),
                      time_unix_nano=at) for _ in range(3)),
        call_record(request_model=ASKED, response_model=ASKED, status="error", error_type="RateLimitError",
                    output_tokens=0, cost_usd=Decimal("0.0005"), ttft_ms=None, time_unix_nano=at),
        call_record(request_model="claude-haiku-4-5", response_model="claude-haiku-4-5-20251001",
                    provider="anthropic", cost_usd=Decimal("0.002"), time_unix_nano=at),
    ]  # fmt: skip


def _calls_table_totals(store: Store) -> tuple[int, int, Decimal]:
    ((calls, errors, cost),) = store.rows(
        "SELECT count(), countIf(status = 'error'), sum(toDecimal128(cost_usd, 12)) FROM calls FINAL"
    )
    return calls, errors, cost


@pytest.mark.parametrize("seconds", [0, 1], ids=["rollup", "raw"])
def test_a_failed_and_a_successful_call_of_one_model_are_one_row(
    store: Store, tmp_path: Path, seconds: int
) -> None:
    """Issue 17: a failed call has no response model; it counted under the asked name while the
    successful ones counted under the dated name, one model in two rows. Now one row per model asked
    for, the dated name beside it, and the rows still add up to the calls table."""
    store_records(store, tmp_path, _one_model_calls())
    end = BASE + timedelta(minutes=5, seconds=seconds)
    groups = summarize(store, SummaryQuery(BASE, end, ("service", "model")))
    rows = {g["key"]["model"]: g for g in groups}
    assert sorted(rows) == ["claude-haiku-4-5", ASKED]
    mini = rows[ASKED]
    assert (mini["calls"], mini["errors"], mini["cost_usd"]) == (4, 1, "0.0035")
    assert mini["response_models"] == [DATED]
    assert rows["claude-haiku-4-5"]["response_models"] == ["claude-haiku-4-5-20251001"]
    calls, errors, cost = _calls_table_totals(store)
    assert (sum(g["calls"] for g in groups), sum(g["errors"] for g in groups)) == (calls, errors) == (5, 1)
    assert sum(Decimal(g["cost_usd"]) for g in groups) == cost
    # Either name finds the model's calls: the asked one all of them, the dated one those answered as it.
    by_name = {
        name: summarize(store, SummaryQuery(BASE, end, ("model",), {"model": name}))
        for name in (ASKED, DATED)
    }
    assert [(g["key"], g["calls"]) for g in by_name[ASKED]] == [({"model": ASKED}, 4)]
    assert [(g["key"], g["calls"]) for g in by_name[DATED]] == [({"model": ASKED}, 3)]


def test_evaluations_of_the_dated_name_are_the_quality_of_the_model_asked_for(
    store: Store, tmp_path: Path
) -> None:
    """Evaluations name the evaluated call's stored (response) model; the row of the model asked for
    gets them, whether the summary groups or filters by model."""
    evaluations = [evaluation_record(model=DATED, passed=passed) for passed in (True, True, False)]
    store_records(store, tmp_path, _one_model_calls(), evaluations=evaluations)
    end = BASE + timedelta(minutes=5)
    rows = {g["key"]["model"]: g["quality"] for g in summarize(store, SummaryQuery(BASE, end, ("model",)))}
    assert rows[ASKED]["judge_pass"]["evaluations"] == 3
    assert rows[ASKED]["judge_pass"]["pass_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows["claude-haiku-4-5"] == {}
    (filtered,) = summarize(store, SummaryQuery(BASE, end, (), {"model": ASKED}))
    assert filtered["quality"]["judge_pass"]["evaluations"] == 3


def test_migration_6_upgrades_a_store_with_data(tmp_path: Path) -> None:
    """A version-5 store with rolled-up calls: migration 6 keeps every old row (under its stored model,
    as before: a key column cannot be backfilled), and new calls group by the model asked for."""
    store = Store.open(tmp_path / "data")
    try:
        migrate_to(store, 5)
        store_records(store, tmp_path / "old", _one_model_calls())
        assert store.migrate() == [6]
        store_records(store, tmp_path / "new", _one_model_calls(seconds=60))
        assert store.migrate() == []
        assert store.rows("SELECT request_model, sum(calls) FROM calls_1m GROUP BY 1 ORDER BY 1") == [
            ("", 5), ("claude-haiku-4-5", 1), (ASKED, 4),
        ]  # fmt: skip
        groups = summarize(store, SummaryQuery(BASE, BASE + timedelta(minutes=5), ("model",)))
        assert {g["key"]["model"]: g["calls"] for g in groups} == {
            ASKED: 4 + 1,  # the new calls, and the old failed call (stored under the asked name)
            DATED: 3,  # the old successful calls, under the name they were answered as
            "claude-haiku-4-5": 1,
            "claude-haiku-4-5-20251001": 1,
        }
        calls, _, cost = _calls_table_totals(store)
        assert sum(g["calls"] for g in groups) == calls == 10
        assert sum(Decimal(g["cost_usd"]) for g in groups) == cost
    finally:
        store.close()


def test_the_calls_and_the_chart_of_a_model_row_are_its_calls(store: Store, tmp_path: Path) -> None:
    """A summary row's model, as a filter of the calls view and of the overview's series, finds the
    row's calls: the failed one too (it was only under the asked name), not only the answered ones."""
    store_records(store, tmp_path, _one_model_calls())
    end = BASE + timedelta(minutes=5)
    page = list_calls(store, CallsQuery(BASE, end, filters={"model": ASKED}))
    assert sorted(c["status"] for c in page["calls"]) == ["error", "ok", "ok", "ok"]
    points = series(store, SeriesQuery(BASE, end, timedelta(minutes=5), {"model": ASKED}))
    assert (points[0]["calls"], points[0]["errors"]) == (4, 1)
