"""A simulated incident in storage: a prompt edit (v8) collapses the prompt cache of one scope, and its
revert brings it back. Shared by the in-process and the daemon end-to-end alert tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.factories import call_record, store_records
from tokenpulse.collector.records import CallRecord
from tokenpulse.storage.store import Store

SCOPE = {"service": "checkout", "route": "/support", "model": "claude-sonnet-4-5"}


def calls_for(minute: datetime, collapsed: bool) -> list[CallRecord]:
    base_ns = int(minute.timestamp()) * 10**9
    return [
        call_record(
            time_unix_nano=base_ns + i * 6 * 10**9,
            provider="anthropic",
            response_model="claude-sonnet-4-5",
            route="/support",
            input_tokens=5000,
            cache_read_tokens=300 if collapsed else 4000,
            cache_write_tokens=4000 if collapsed else 500,
            prompt_version="v8" if collapsed else "v7",
        )
        for i in range(10)
    ]


def store_incident(store: Store, directory: Path, onset: datetime, reverted: datetime, end: datetime) -> None:
    """Two healthy hours, the collapse from ``onset`` until ``reverted``, healthy again until ``end``."""
    records = []
    minute = onset - timedelta(hours=2)
    while minute < end:
        records += calls_for(minute, collapsed=onset <= minute < reverted)
        minute += timedelta(minutes=1)
    store_records(store, directory, records)
