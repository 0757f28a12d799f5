"""A small embedded store filled by the simulator, with the alert state and history a daemon would have.

Three hours of the demo scenario (~30k calls ending now, cache collapse, cost spike and p99 drift in
the last 40 minutes) are simulated to OTLP JSON lines and ingested through `tokenpulse ingest`; then
the detectors replay the last 45 minutes minute by minute (one engine run, as a backtest), leaving
``alerts.json`` and ``alert_events`` as a daemon running over that traffic would.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.engine import evaluation_times, floor_minute
from tokenpulse.detectors.service import INGEST_DELAY, DetectorService
from tokenpulse.storage.store import Store

RUNBOOKS = "http://127.0.0.1:8000/runbooks"
REPLAYED = timedelta(minutes=45)


def build(directory: Path) -> Path:
    """Fill ``directory``/data; returns the data directory."""
    traffic = directory / "demo.jsonl.gz"
    data = directory / "data"
    tokenpulse = [sys.executable, "-m", "tokenpulse.cli"]
    # Three hours, not the demo's default four (the p99 detector's history): the tests on this store need
    # the cache collapse only, and the session's every run builds it.
    subprocess.run([*tokenpulse, "simulate", "--scenario", "demo", "--duration", "3h", "--seed", "1",
                    "--output", str(traffic)], check=True, capture_output=True, timeout=300)  # fmt: skip
    subprocess.run([*tokenpulse, "ingest", "--data", str(data), str(traffic)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    store = Store.open(data)
    try:
        service = DetectorService(store, build_detectors(), data / "alerts.json", RUNBOOKS)
        end = floor_minute(datetime.now(UTC) - INGEST_DELAY)
        transitions = service.engine.run(
            store, evaluation_times(end - REPLAYED, end, timedelta(minutes=1)), RUNBOOKS
        )
        # What cycle() does after evaluating, for all the minutes at once (46 live cycles take a minute).
        service._record(transitions)
        service._save_state()
    finally:
        store.close()
    return data
