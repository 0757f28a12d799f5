"""Reading the providers' report pages (tokenpulse/reconcile/reports.py): shapes, units and refusals."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tokenpulse.config import effective_configuration, resolve_settings
from tokenpulse.reconcile.reports import ProviderRow, ReportError, merge, parse_document, read_files

OPENAI_USAGE = {
    "object": "page",
    "data": [
        {
            "object": "bucket",
            "start_time": 1730419200,  # 2024-11-01
            "end_time": 1730505600,
            "results": [
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": 1000,
                    "output_tokens": 500,
                    "input_cached_tokens": 800,
                    "num_model_requests": 5,
                    "project_id": "proj_abc",
                    "model": "gpt-4o-mini-2024-07-18",
                    "batch": False,
                    "service_tier": "default",
                }
            ],
        }
    ],
    "has_more": False,
    "next_page": None,
}
ANTHROPIC_COSTS = {
    "data": [
        {
            "starting_at": "2025-08-01T00:00:00Z",
            "ending_at": "2025-08-02T00:00:00Z",
            "results": [
                {"currency": "USD", "amount": "123.78912", "workspace_id": "wrkspc_1",
                 "model": "claude-sonnet-4-5", "service_tier": "standard", "token_type": "uncached_input"},
                {"currency": "USD", "amount": "0.21088", "workspace_id": "wrkspc_1",
                 "model": "claude-sonnet-4-5", "service_tier": "standard", "token_type": "output_tokens"},
            ],
        }
    ],
    "has_more": False,
    "next_page": None,
}  # fmt: skip


def test_openai_usage_page() -> None:
    (row,) = parse_document(OPENAI_USAGE, "page")
    assert row == ProviderRow(
        date(2024, 11, 1), "openai", "gpt-4o-mini-2024-07-18", "proj_abc", "standard", calls=5,
        input_tokens=1000, cache_read_tokens=800, output_tokens=500,
    )  # fmt: skip


def test_anthropic_cost_amounts_are_cents() -> None:
    rows = merge(parse_document(ANTHROPIC_COSTS, "page"))
    assert [(r.model, r.project, r.cost_usd, r.calls) for r in rows] == [
        ("claude-sonnet-4-5", "wrkspc_1", Decimal("1.24"), None)  # 124 cents; the report counts no calls
    ]


def test_saved_pages_are_read_and_bad_ones_named(tmp_path: Path) -> None:
    good = tmp_path / "usage.json"
    good.write_text(json.dumps([OPENAI_USAGE, OPENAI_USAGE]))  # a list of pages
    assert len(read_files([good])) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match=r"bad\.json: not JSON"):
        read_files([bad])
    euros = json.loads(json.dumps(ANTHROPIC_COSTS))
    euros["data"][0]["results"][0]["currency"] = "EUR"
    with pytest.raises(ReportError, match="not USD"):
        parse_document(euros, "costs")
    negative = json.loads(json.dumps(OPENAI_USAGE))
    negative["data"][0]["results"][0]["input_tokens"] = -1
    with pytest.raises(ReportError, match="input_tokens must be a count"):
        parse_document(negative, "usage")


def test_admin_keys_are_masked_in_config_check() -> None:
    settings, sources, problems = resolve_settings(environ={"TOKENPULSE_OPENAI_ADMIN_KEY": "sk-admin-secret"})
    assert not problems and settings.openai_admin_key == "sk-admin-secret"
    shown = {name: value for name, value, _ in effective_configuration(settings, sources)}
    assert shown["openai_admin_key"] == "(set)" and shown["anthropic_admin_key"] == "(none)"
    assert "sk-admin-secret" not in repr(settings)
