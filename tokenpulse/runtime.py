"""Wiring of the collector path: data directory lock, store, write-ahead log, writer and pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector.pipeline import Pipeline, pipeline_for
from tokenpulse.config import Settings
from tokenpulse.storage.store import DataDirLock, Store
from tokenpulse.storage.writer import LogWriter

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    lock: DataDirLock
    store: Store
    wal: WriteAheadLog
    writer: LogWriter
    pipeline: Pipeline

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Lock the data directory, migrate storage, open the log and start the writer (replaying the log)."""
        lock = DataDirLock(settings.data_dir)
        try:
            store = Store.open(settings.data_dir, settings.clickhouse_url)
            store.migrate()
            store.set_retention(settings.retention_days)
            wal = WriteAheadLog(
                settings.data_dir / "wal",
                segment_bytes=settings.wal_segment_bytes,
                max_bytes=settings.wal_max_bytes,
            )
        except Exception:
            lock.release()
            raise
        writer = LogWriter(wal, store, batch_rows=settings.batch_rows, batch_seconds=settings.batch_seconds)
        writer.start()
        return cls(settings, lock, store, wal, writer, pipeline_for(settings, wal))

    def close(self) -> None:
        """Refuse new data, write everything acknowledged, then release storage and the lock."""
        self.wal.close()
        self.writer.stop()
        self.store.close()
        self.lock.release()
