"""A simulated incident in storage: a prompt edit (v8) collapses the prompt cache of one scope, and its
revert brings it back. Shared by the in-process and the daemon end-to-end alert tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.detectors.test_service import calls_for  # the cache collapse of the detector service's test
from tests.factories import store_records
from tokenpulse.storage.store import Store

SCOPE = {"service": "checkout", "route": "/support", "model": "claude-sonnet-4-5"}


def store_incident(store: Store, directory: Path, onset: datetime, reverted: datetime, end: datetime) -> None:
    """Two healthy hours, the collapse from ``onset`` until ``reverted``, healthy again until ``end``."""
    records = []
    minute = onset - timedelta(hours=2)
    while minute < end:
        records += calls_for(minute, collapsed=onset <= minute < reverted)
        minute += timedelta(minutes=1)
    store_records(store, directory, records)
