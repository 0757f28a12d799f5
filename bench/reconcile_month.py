"""The fixture month reconciled: tokenpulse's dollars per day x model against the providers' bills.

    python bench/reconcile_month.py [--missing-share 0.0] [--drift-model claude-opus-4-6] [--by-tier]

A month of OpenAI, Anthropic and Gemini traffic (flex, priority, batch, fast mode, 1-hour cache writes,
long context; ``tests/reconcile/fixture_month.py``) is normalized and priced by tokenpulse into an
embedded store in a temporary directory; the bill is computed on its own from the providers' published
prices and served by local fake Usage/Costs and Admin API servers (Gemini as a flat export). The script
prints the reconciliation table, then how many rows match to the cent. ``--missing-share`` drops that
share of the "reports" service's calls (an uninstrumented service: a tenth of gpt-5's requests);
``--drift-model`` bills that model at 1.2x from the 16th.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

sys.path.insert(0, os.getcwd())

from tests.factories import store_records
from tests.reconcile import fixture_month as fm
from tests.reconcile.fake_providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders
from tokenpulse.collector.pricing import Pricer
from tokenpulse.reconcile.compare import format_table, reconcile
from tokenpulse.reconcile.reports import fetch_anthropic, fetch_openai, read_files
from tokenpulse.storage.store import Store

CENT = Decimal("0.01")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--missing-share", type=float, default=0.0)
    parser.add_argument("--drift-model", default=None)
    parser.add_argument("--by-tier", action="store_true")
    args = parser.parse_args()
    end = fm.START + timedelta(days=fm.DAYS)
    drift = (args.drift_model, fm.START + timedelta(days=15), Decimal("1.2")) if args.drift_model else None
    calls = fm.month(drift=drift)
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        store = Store.open(tmp / "data")
        try:
            store.migrate()
            began = time.perf_counter()
            records = fm.records(calls, missing_share=args.missing_share, missing_service="reports")
            store_records(store, tmp, records)
            stored = time.perf_counter() - began
            with FakeProviders(fm.billed(calls)) as fake:
                report = fetch_openai(OPENAI_KEY, fm.START, end, base_url=fake.url)
                report += fetch_anthropic(ANTHROPIC_KEY, fm.START, end, base_url=fake.url)
            export = tmp / "gemini.json"
            export.write_text(json.dumps(fm.gemini_export(calls)))
            report += read_files([export])
            began = time.perf_counter()
            rows = reconcile(store, report, fm.START, end, by_tier=args.by_tier)
            compared = time.perf_counter() - began
        finally:
            store.close()
    print(format_table(rows))
    exact: dict[tuple[object, ...], Decimal] = {}
    for r in fm.provider_rows(calls):
        key = (r.day, r.provider, r.model)
        exact[key] = exact.get(key, Decimal(0)) + (r.cost_usd or 0)
    to_the_cent = sum(
        1
        for r in rows
        if r.ours is not None
        and r.ours.cost_usd is not None
        and r.ours.cost_usd.quantize(CENT, ROUND_HALF_EVEN)
        == exact.get((r.day, r.provider, r.model), Decimal(-1)).quantize(CENT, ROUND_HALF_EVEN)
    )
    ok = sum(1 for r in rows if r.verdict == "ok")
    total_ours = sum((r.ours.cost_usd for r in rows if r.ours and r.ours.cost_usd), Decimal(0))
    total_bill = sum(exact.values(), Decimal(0))
    # What the same calls cost at the standard list with every cache write at the 5-minute rate: how
    # tokenpulse priced them before it read the served tier and the TTL split.
    pricer = Pricer()
    standard = sum(
        (pricer.price(r["provider"], r["response_model"], input_tokens=r["input_tokens"],
                      output_tokens=r["output_tokens"], cache_read_tokens=r["cache_read_tokens"],
                      cache_write_tokens=r["cache_write_tokens"], reasoning_tokens=r["reasoning_tokens"])
         or (Decimal(0), ""))[0]
        for r in records
    )  # fmt: skip
    print(
        f"\n{len(calls)} calls billed, {len(records)} received; {len(rows)} day x model rows: {ok} ok, "
        f"{to_the_cent} equal to the bill to the cent (not meaningful with --by-tier); month: tokenpulse "
        f"${total_ours.quantize(CENT)}, bill ${total_bill.quantize(CENT)}, standard rates alone "
        f"${Decimal(standard).quantize(CENT)}; stored in {stored:.1f} s, "
        f"compared in {compared:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
