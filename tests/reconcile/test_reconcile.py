"""tokenpulse reconcile: the providers' usage and cost reports (local fake servers answering the documented
shapes) against a month of stored calls, to the cent."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from tests.factories import store_records
from tests.reconcile import fixture_month as fm
from tests.reconcile.fake_providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders
from tokenpulse.reconcile.compare import format_table, reconcile, store_report, stored_report
from tokenpulse.reconcile.reports import ReportError, fetch_anthropic, fetch_openai, merge, read_files
from tokenpulse.storage.store import Store

CENT = Decimal("0.01")
END = fm.START + timedelta(days=fm.DAYS)


def _report(calls: list[fm.Call], tmp_path: Path) -> list:
    with FakeProviders(fm.billed(calls)) as fake:
        rows = fetch_openai(OPENAI_KEY, fm.START, END, base_url=fake.url)
        rows += fetch_anthropic(ANTHROPIC_KEY, fm.START, END, base_url=fake.url)
    export = tmp_path / "gemini.json"
    export.write_text(json.dumps(fm.gemini_export(calls)))
    return rows + read_files([export])


def test_fetch_follows_pages_and_asks_for_the_groups(tmp_path: Path) -> None:
    calls = fm.month()
    with FakeProviders(fm.billed(calls), page_size=4) as fake:
        openai = fetch_openai(OPENAI_KEY, fm.START, END, base_url=fake.url)
        anthropic = fetch_anthropic(ANTHROPIC_KEY, fm.START, END, base_url=fake.url)
        requests = fake.requests
    usage = [q for path, q in requests if path == "/v1/organization/usage/completions"]
    assert len(usage) == 8  # 31 days, 4 buckets a page
    assert ("page", "page_4") in usage[1] and not any(k == "page" for k, _ in usage[0])
    assert {v for k, v in usage[0] if k == "group_by"} == {"model", "project_id", "batch", "service_tier"}
    assert ("bucket_width", "1d") in usage[0]
    reports = [q for path, q in requests if path == "/v1/organizations/usage_report/messages"]
    assert ("group_by[]", "model") in reports[0] and len(reports) == 8
    # Every billed request and token came through, split as the reports split them.
    billed = fm.billed(calls)
    assert sum(r.calls or 0 for r in openai) == sum(b.calls for b in billed if b.provider == "openai")
    assert {r.service_tier for r in openai if r.calls} == {"standard", "flex", "priority", "batch"}
    writes = sum(r.cache_write_tokens for r in anthropic)
    assert writes == sum(b.cache_write_5m + b.cache_write_1h for b in billed if b.provider == "anthropic")
    dollars = sum((r.cost_usd for r in anthropic if r.cost_usd is not None), Decimal(0))
    assert dollars == sum(
        (b.input_cost + b.output_cost for b in billed if b.provider == "anthropic"), Decimal(0)
    )


def test_a_wrong_admin_key_is_named(tmp_path: Path) -> None:
    with FakeProviders([]) as fake, pytest.raises(ReportError, match="HTTP 401"):
        fetch_openai("sk-wrong", fm.START, END, base_url=fake.url)


def test_the_fixture_month_matches_the_bill_to_the_cent(store: Store, tmp_path: Path) -> None:
    calls = fm.month()
    store_records(store, tmp_path, fm.records(calls))
    report = _report(calls, tmp_path)
    rows = reconcile(store, report, fm.START, END)
    exact: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in fm.provider_rows(calls):
        exact[(r.day, r.provider, r.model)] += r.cost_usd or 0
    assert len(rows) == len(exact) == fm.DAYS * 5  # day x model, every one on both sides
    for row in rows:
        assert row.verdict == "ok", (row, format_table([row]))
        assert row.ours is not None and row.ours.cost_usd is not None
        bill = exact[(row.day, row.provider, row.model)].quantize(CENT, rounding=ROUND_HALF_EVEN)
        assert row.ours.cost_usd.quantize(CENT, rounding=ROUND_HALF_EVEN) == bill, row
    # What the month holds: every tier, fast mode, 1-hour writes and long context.
    assert {c.traffic.tier for c in calls} == {"standard", "flex", "priority", "batch"}
    assert any(c.traffic.speed == "fast" for c in calls) and any(c.cache_write_1h for c in calls)
    assert any(c.input_tokens > 200_000 for c in calls if c.traffic.provider == "anthropic")
    assert any(c.input_tokens > 200_000 for c in calls if c.traffic.provider == "gcp.gemini")


def test_an_uninstrumented_service_is_missing_calls(store: Store, tmp_path: Path) -> None:
    calls = fm.month()
    store_records(store, tmp_path, fm.records(calls, missing_share=1.0, missing_service="reports"))
    rows = reconcile(store, _report(calls, tmp_path), fm.START, END)
    flagged = {(r.model, r.verdict) for r in rows if r.verdict != "ok"}
    assert flagged == {("gpt-5", "missing calls")}
    gpt5 = [r for r in rows if r.model == "gpt-5"]
    assert len(gpt5) == fm.DAYS and all("requests" in r.detail for r in gpt5)


def test_a_price_drift_is_found_from_its_day(store: Store, tmp_path: Path) -> None:
    since = fm.START + timedelta(days=15)
    calls = fm.month(drift=("claude-opus-4-6", since, Decimal("1.2")))
    store_records(store, tmp_path, fm.records(calls))
    rows = reconcile(store, _report(calls, tmp_path), fm.START, END)
    drifted = {r.day for r in rows if r.verdict == "price drift"}
    assert drifted == {since + timedelta(days=n) for n in range(fm.DAYS - 15)}
    assert {r.model for r in rows if r.verdict != "ok"} == {"claude-opus-4-6"}
    assert "below the bill" in next(r.detail for r in rows if r.verdict == "price drift")


def test_report_rows_are_stored_and_a_later_import_replaces_them(store: Store, tmp_path: Path) -> None:
    calls = fm.month()
    report = _report(calls, tmp_path)
    first = store_report(store, report)
    assert first == len(merge(report))
    assert store_report(store, report) == first  # the same import again
    stored = stored_report(store, fm.START, END)
    assert len(stored) == first
    assert sum((r.cost_usd or 0 for r in stored), Decimal(0)) == sum(
        (r.cost_usd or 0 for r in report), Decimal(0)
    )
