"""`tokenpulse reconcile` (files and the configured admin APIs) and GET /api/v1/reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api_app import api_over
from tests.factories import store_records
from tests.reconcile import fixture_month as fm
from tests.reconcile.fake_providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders
from tokenpulse.auth import ApiKeys, RequireApiKey
from tokenpulse.cli import main
from tokenpulse.reconcile.compare import store_report
from tokenpulse.reconcile.reports import read_files
from tokenpulse.storage.store import Store

WINDOW = ["--start", "2026-10-01", "--end", "2026-11-01"]


def _store_month(data: Path, tmp_path: Path, calls: list[fm.Call], missing: float = 0.0) -> None:
    store = Store.open(data)
    try:
        store.migrate()
        store_records(store, tmp_path, fm.records(calls, missing_share=missing, missing_service="reports"))
    finally:
        store.close()


@pytest.mark.parametrize(("missing", "status", "says"), [(0.0, 0, "155 of 155"), (1.0, 1, "missing calls")])
def test_reconcile_reads_files_and_the_admin_apis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], missing: float,
    status: int, says: str,
) -> None:  # fmt: skip
    calls = fm.month()
    _store_month(tmp_path / "data", tmp_path, calls, missing)
    export = tmp_path / "gemini.json"
    export.write_text(json.dumps(fm.gemini_export(calls)))
    with FakeProviders(fm.billed(calls)) as fake:
        monkeypatch.setenv("TOKENPULSE_OPENAI_ADMIN_KEY", OPENAI_KEY)
        monkeypatch.setenv("TOKENPULSE_OPENAI_ADMIN_URL", fake.url)
        monkeypatch.setenv("TOKENPULSE_ANTHROPIC_ADMIN_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("TOKENPULSE_ANTHROPIC_ADMIN_URL", fake.url)
        assert main(["reconcile", "--data", str(tmp_path / "data"), *WINDOW, str(export)]) == status
    out = capsys.readouterr().out
    assert says in out
    assert "2026-10-31  openai      gpt-5-mini" in out  # a row per day x model, the last day included


def test_reconcile_without_any_report_says_what_to_configure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TOKENPULSE_OPENAI_ADMIN_KEY", "TOKENPULSE_ANTHROPIC_ADMIN_KEY", "TOKENPULSE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert main(["reconcile", "--data", str(tmp_path / "data"), *WINDOW]) == 2
    assert "TOKENPULSE_OPENAI_ADMIN_KEY" in capsys.readouterr().err


def test_the_api_compares_the_stored_reports(tmp_path: Path) -> None:
    calls = fm.month()
    export = tmp_path / "gemini.json"
    export.write_text(json.dumps(fm.gemini_export(calls)))
    with api_over(tmp_path, fm.records(calls)) as (app, store):
        store_report(store, read_files([export]))
        client = TestClient(app)
        answer = client.get("/api/v1/reconcile", params={"start": "2026-10-01", "end": "2026-11-01"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["ok"] == len(body["rows"]) == fm.DAYS  # Gemini's rows: the providers reported
        assert body["rows"][0]["provider_report"]["cost_usd"] is not None
        assert (
            client.get("/api/v1/reconcile", params={"start": "2026-11-01", "end": "2026-10-01"}).status_code
            == 400
        )


def test_a_tenants_key_cannot_read_the_organizations_bill(tmp_path: Path) -> None:
    with api_over(tmp_path, []) as (app, _):
        app.add_middleware(RequireApiKey, keys=ApiKeys.of({"tp-acme-4f9c2e8a61d7": "acme"}))
        keyed = TestClient(app).get(
            "/api/v1/reconcile", headers={"Authorization": "Bearer tp-acme-4f9c2e8a61d7"}
        )
        assert keyed.status_code == 403
