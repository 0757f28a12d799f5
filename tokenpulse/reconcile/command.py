"""``tokenpulse reconcile`` and the daily import in ``serve``: read the providers' reports, store, compare.

    tokenpulse reconcile [--start 2026-10-01] [--end 2026-11-01] [--by-tier] [--json] [report.json ...]

Reports come from the files given (the API answers saved as JSON, or the flat export shape) and, for each
admin key configured (``openai_admin_key`` / ``anthropic_admin_key``, env ``TOKENPULSE_OPENAI_ADMIN_KEY``
/ ``TOKENPULSE_ANTHROPIC_ADMIN_KEY``), from the provider's API. They are stored in ``provider_usage``
(where ``coverage_gap`` reads them), then every stored report row of the range is compared with the
calls. Exit status: 0 when every row is ok, 1 when a row is not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tokenpulse.config import Settings
from tokenpulse.errors import UserError
from tokenpulse.reconcile.compare import (
    Reconciled,
    compare,
    format_table,
    our_rows,
    store_report,
    stored_report,
)
from tokenpulse.reconcile.reports import (
    ANTHROPIC_BASE,
    OPENAI_BASE,
    ProviderRow,
    ReportError,
    fetch_anthropic,
    fetch_openai,
    read_files,
)
from tokenpulse.storage.store import Store

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``reconcile`` command's arguments (storage ones included)."""
    parser.add_argument(
        "--data", type=Path, help="data directory: embedded store, write-ahead log (env TOKENPULSE_DATA)"
    )
    parser.add_argument("--clickhouse", help="ClickHouse server URL (env TOKENPULSE_CLICKHOUSE_URL)")
    parser.add_argument("--config", type=Path, help="TOML config file (env TOKENPULSE_CONFIG)")
    parser.add_argument("--start", help="first day, YYYY-MM-DD (default: --end minus reconcile_days)")
    parser.add_argument("--end", help="the day after the last, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--by-tier", action="store_true", help="one row per service tier too")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument(
        "reports", nargs="*", type=Path, help="report pages saved as JSON (OpenAI, Anthropic or flat shape)"
    )


def _day(value: str | None, flag: str, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{flag} {value!r}: expected a day, YYYY-MM-DD") from None


def window(settings: Settings, start: str | None = None, end: str | None = None) -> tuple[date, date]:
    """The days to reconcile: ``start`` <= day < ``end``."""
    last = _day(end, "--end", datetime.now(UTC).date())
    first = _day(start, "--start", last - timedelta(days=settings.reconcile_days))
    if first >= last:
        raise UserError(f"--start {first} must be before --end {last}")
    return first, last


def fetch_configured(settings: Settings, start: date, end: date) -> list[ProviderRow]:
    """The report rows of every provider whose admin key is configured (none: an empty list)."""
    rows: list[ProviderRow] = []
    if settings.openai_admin_key:
        base = settings.openai_admin_url or OPENAI_BASE
        rows += fetch_openai(settings.openai_admin_key, start, end, base_url=base)
    if settings.anthropic_admin_key:
        base = settings.anthropic_admin_url or ANTHROPIC_BASE
        rows += fetch_anthropic(settings.anthropic_admin_key, start, end, base_url=base)
    return rows


def compare_stored(store: Store, start: date, end: date, by_tier: bool = False) -> list[Reconciled]:
    """Every stored report row of the range against the calls tokenpulse stored."""
    theirs = stored_report(store, start, end)
    providers = sorted({r.provider for r in theirs})
    return compare(our_rows(store, start, end, providers), theirs, by_tier)


def daily_import(store: Store, settings: Settings) -> int:
    """The job ``serve`` runs once a day when an admin key is configured: import the last
    ``reconcile_days`` days (providers revise recent days). Returns the rows stored; a failure is logged
    and retried the next day, the detectors keep the previous import."""
    start, end = window(settings)
    try:
        rows = fetch_configured(settings, start, end)
    except ReportError as error:
        log.warning("reconcile: the providers' reports could not be read: %s", error)
        return 0
    stored = store_report(store, rows)
    ok = sum(1 for r in compare_stored(store, start, end) if r.verdict == "ok")
    log.info("reconcile: %d report rows of %s..%s stored; %d day x model rows match", stored, start, end, ok)
    return stored


def run(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    """``tokenpulse reconcile`` on an open, migrated store."""
    start, end = window(settings, args.start, args.end)
    try:
        rows = read_files(args.reports) + fetch_configured(settings, start, end)
    except ReportError as error:
        raise UserError(str(error)) from None
    if not rows and not stored_report(store, start, end):
        raise UserError(
            "no provider report: pass report files, or set openai_admin_key / anthropic_admin_key "
            "(env TOKENPULSE_OPENAI_ADMIN_KEY / TOKENPULSE_ANTHROPIC_ADMIN_KEY)"
        )
    store_report(store, rows)
    result = compare_stored(store, start, end, args.by_tier)
    if args.json:
        print(json.dumps([r.as_dict() for r in result], indent=2))
    else:
        print(format_table(result))
        bad = [r for r in result if r.verdict != "ok"]
        print(f"\n{len(result) - len(bad)} of {len(result)} day x model rows match the providers' reports")
    return 0 if all(r.verdict == "ok" for r in result) else 1
