"""Calls API benchmark: one page of the latest, slowest and most expensive calls over N stored calls.

    python bench/calls.py [--calls 10000000] [--days 30] [--runs 3]

The store is filled as bench/detectors.py fills it (generated inside ClickHouse). Reports the median
seconds of one page (50 calls, with their tool spans) per order, range and filter.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.detectors import filled_store, store_arguments
from tokenpulse.storage.calls import ORDERS, CallsQuery, list_calls

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
FILTERS = {"none": {}, "route": {"service": "service-1", "route": "/route-2"}, "user": {"user": "user-42"}}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    store_arguments(parser)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    data_dir = args.data or Path(tempfile.mkdtemp(prefix="tokenpulse-calls-bench-"))
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    store, fill_seconds = filled_store(data_dir, args.calls, args.days, end, args.tenants)
    results = {}
    for range_name, length in RANGES.items():
        for filter_name, filters in FILTERS.items():
            for order in ORDERS:
                query = CallsQuery(end - length, end + timedelta(minutes=1), order, filters)
                seconds = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    page = list_calls(store, query)
                    seconds.append(time.perf_counter() - started)
                key = f"{range_name} {filter_name} {order}"
                results[key] = {"seconds": round(statistics.median(seconds), 3), "calls": len(page["calls"])}
                print(key, results[key], file=sys.stderr, flush=True)  # progress: a run takes minutes
    stored = store.rows("SELECT count() FROM calls")[0][0]
    store.close()
    print(
        json.dumps(
            {"stored_calls": stored, "fill_seconds": round(fill_seconds, 1), "pages": results}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
