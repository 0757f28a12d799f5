"""coverage_gap, backtested over the fixture month (tests/reconcile/fixture_month.py): the providers'
reports stored beside the calls, the detector run by the engine as `tokenpulse backtest` runs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tests.factories import store_records
from tests.reconcile import fixture_month as fm
from tests.reconcile.fake_providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.catalog.coverage_gap import CoverageGap
from tokenpulse.detectors.engine import Engine, evaluation_times
from tokenpulse.reconcile.compare import store_report
from tokenpulse.reconcile.reports import fetch_anthropic, fetch_openai, read_files
from tokenpulse.storage.store import Store

END = fm.START + timedelta(days=fm.DAYS)
DAY_20 = datetime(2026, 10, 20, tzinfo=UTC)


def _backtest(store: Store, tmp_path: Path, calls: list[fm.Call], missing: float = 0.0) -> list:
    store_records(store, tmp_path, fm.records(calls, missing_share=missing, missing_service="reports"))
    with FakeProviders(fm.billed(calls)) as fake:
        report = fetch_openai(OPENAI_KEY, fm.START, END, base_url=fake.url)
        report += fetch_anthropic(ANTHROPIC_KEY, fm.START, END, base_url=fake.url)
    export = tmp_path / "gemini.json"
    export.write_text(json.dumps(fm.gemini_export(calls)))
    store_report(store, report + read_files([export]))
    times = evaluation_times(DAY_20, DAY_20 + timedelta(hours=3), timedelta(hours=1))
    return Engine([CoverageGap()]).run(store, times)


def test_clean_data_raises_nothing(store: Store, tmp_path: Path) -> None:
    assert _backtest(store, tmp_path, fm.month()) == []


def test_an_uninstrumented_service_fires_for_its_model(store: Store, tmp_path: Path) -> None:
    transitions = _backtest(store, tmp_path, fm.month(), missing=1.0)
    assert [(t.status, t.severity, dict(t.scope)) for t in transitions] == [
        ("firing", "warning", {"provider": "openai", "model": "gpt-5"})
    ]
    (firing,) = transitions
    assert 0.08 < firing.value < 0.12  # a tenth of gpt-5's requests never arrived
    assert firing.summary.startswith("openai counted 10.0% more requests, 11.8% more input tokens, ")
    assert "of gpt-5 on 2026-10-19 than tokenpulse received" in firing.summary


def test_a_price_drift_fires_for_the_drifted_model(store: Store, tmp_path: Path) -> None:
    calls = fm.month(drift=("claude-opus-4-6", fm.START + timedelta(days=15), Decimal("1.2")))
    transitions = _backtest(store, tmp_path, calls)
    assert [(t.status, t.severity, dict(t.scope)) for t in transitions] == [
        ("firing", "warning", {"provider": "anthropic", "model": "claude-opus-4-6"})
    ]
    assert "below anthropic's bill" in transitions[0].summary
    assert abs(transitions[0].value - 1 / 6) < 0.01  # billed 1.2x: tokenpulse is a sixth below


def test_it_is_in_the_catalog_with_its_settings() -> None:
    (detector,) = [
        d for d in build_detectors({"coverage_gap": {"min_missing_share": 0.1}}) if d.name == "coverage_gap"
    ]
    assert detector.settings.min_missing_share == 0.1
