"""The API app over an embedded store holding given calls, served in-process (ASGI) for API tests: the
same routes as the daemon's (the core API and the alerts router: silences, runbooks)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from tests.factories import store_records
from tokenpulse.alerts.api import alerts_router
from tokenpulse.alerts.store import AlertStore
from tokenpulse.api import create_api_app
from tokenpulse.buffer.records import CallRecord
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.detectors.state import AlertStates
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter


@contextmanager
def api_over(
    directory: Path, calls: Sequence[CallRecord], states: AlertStates | None = None
) -> Iterator[tuple[FastAPI, Store]]:
    """The app and its store, with ``calls`` stored the way the daemon stores them, and the live alerts
    ``states``; closed after."""
    store = Store.open(directory / "data")
    try:
        store.migrate()
        store_records(store, directory, calls)
        wal = WriteAheadLog(directory / "api-wal")
        alert_store = AlertStore(directory / "alerts.sqlite")
        try:
            states = states or AlertStates()
            app = create_api_app(store, wal, LogWriter(wal, store), states)
            app.include_router(alerts_router(store, states, alert_store))
            yield app, store
        finally:
            alert_store.close()
            wal.close()
    finally:
        store.close()
