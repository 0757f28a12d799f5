"""Dashboard query benchmark: every panel query of dashboards/json over the last 30 days of N stored calls.

    python bench/dashboards.py [--calls 10000000] [--days 30] [--runs 3]

The calls are generated inside ClickHouse like bench/detectors.py does. Each panel query is expanded as
Grafana and the ClickHouse plugin expand it (dashboards/plugin.py), with every variable at All and the
interval Grafana picks for a 30-day range on a dashboard panel (1 h), and run ``--runs`` times. Reports
the median duration of each query, the slowest, and per dashboard the sum (what one refresh costs
ClickHouse when panels run one after another).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from detectors import filled_store, store_arguments  # noqa: E402  (bench/detectors.py)

from dashboards.clickhouse import DIMENSIONS  # noqa: E402
from dashboards.generate import OUTPUT  # noqa: E402
from dashboards.plugin import ALL, expand  # noqa: E402

INTERVAL_SECONDS = 3600


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    store_arguments(parser)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    data_dir = args.data or Path(tempfile.mkdtemp(prefix="tokenpulse-dashboard-bench-"))
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    store, fill_seconds = filled_store(data_dir, args.calls, args.days, end)

    start = end - timedelta(days=args.days)
    variables = {d: ALL for d in DIMENSIONS} | {"daily_budget_usd": "100"}
    queries: dict[str, dict[str, float]] = {}
    for path in sorted(OUTPUT.glob("*.json")):
        board = json.loads(path.read_text())
        timings = {}
        for panel in board["panels"]:
            for target in panel["targets"]:
                sql = expand(target["rawSql"], start, end + timedelta(minutes=1), INTERVAL_SECONDS, variables)
                runs = []
                for _ in range(args.runs):
                    began = time.perf_counter()
                    store.client.query(sql)
                    runs.append(time.perf_counter() - began)
                timings[f"{panel['title']}/{target['refId']}"] = round(statistics.median(runs), 3)
        queries[path.stem] = timings
    stored = store.rows("SELECT count() FROM calls")[0][0]
    rollup_rows = store.rows("SELECT count() FROM calls_1m")[0][0]
    store.close()
    every = [
        (f"{board}: {name}", seconds)
        for board, timings in queries.items()
        for name, seconds in timings.items()
    ]
    print(
        json.dumps(
            {
                "stored_calls": stored,
                "days": args.days,
                "rollup_rows": rollup_rows,
                "fill_seconds": round(fill_seconds, 1),
                "queries": len(every),
                "slowest": sorted(every, key=lambda pair: -pair[1])[:5],
                "median_query_seconds": round(statistics.median(s for _, s in every), 3),
                "dashboard_refresh_seconds": {b: round(sum(t.values()), 2) for b, t in queries.items()},
                "per_query_seconds": queries,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
