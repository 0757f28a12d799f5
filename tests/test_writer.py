import json
from pathlib import Path

from tests.factories import call_record
from tokenpulse import metrics
from tokenpulse.collector.wal import WriteAheadLog, encode_frame
from tokenpulse.storage.rows import CALL_FIELDS, encode_rows
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter


def append_calls(wal: WriteAheadLog, count: int, **overrides) -> int:
    records = [call_record(**overrides) for _ in range(count)]
    return wal.append(encode_frame(encode_rows(records, CALL_FIELDS), b"", len(records), 0))


def counts(store: Store) -> tuple[int, int]:
    raw = store.rows("SELECT count() FROM calls")[0][0]
    rolled = store.rows("SELECT sum(calls) FROM calls_1m")[0][0]
    return raw, rolled


def test_writer_moves_the_log_into_both_tables(tmp_path: Path, store: Store) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    end = [append_calls(wal, 40) for _ in range(5)][-1]
    writer = LogWriter(wal, store, batch_rows=100, batch_seconds=0.05)
    writer.start()
    assert writer.wait_stored(end, timeout=30)
    writer.stop()
    assert counts(store) == (200, 200)
    row = store.rows("SELECT sum(cost_usd), sum(cache_read_tokens), any(model) FROM calls")[0]
    assert str(row[0]) == "0.850000000000" and row[1] == 120_000 and row[2] == "gpt-4o-2024-08-06"


def test_replaying_a_batch_after_a_crash_stores_it_once(tmp_path: Path, store: Store) -> None:
    wal_dir = tmp_path / "wal"
    wal = WriteAheadLog(wal_dir)
    append_calls(wal, 30)
    end = append_calls(wal, 30)
    writer = LogWriter(wal, store, batch_rows=1000, batch_seconds=0.05)
    writer.start()
    assert writer.wait_stored(end, timeout=30)
    writer.stop()
    wal.close()
    assert counts(store) == (60, 60)
    # A crash after the insert but before the checkpoint commit leaves the batch pending.
    (wal_dir / "checkpoint.json").write_text(json.dumps({"committed": 0, "pending_end": end}))
    wal = WriteAheadLog(wal_dir)
    more = append_calls(wal, 5)
    replaying = LogWriter(wal, store, batch_rows=1000, batch_seconds=0.05)
    replaying.start()
    assert replaying.wait_stored(more, timeout=30)
    replaying.stop()
    assert counts(store) == (65, 65)


class FlakyStore:
    """A store whose first inserts fail, like a ClickHouse server that is down for a while."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store = store
        self.failures = failures

    def insert_rows(self, table: str, rows: bytes, dedup_token: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection refused")
        self.store.insert_rows(table, rows, dedup_token)


def test_storage_outage_keeps_data_in_the_log_until_recovery(tmp_path: Path, store: Store) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    end = append_calls(wal, 10)
    failures_before = metrics.INSERT_FAILURES._value.get()
    flaky = FlakyStore(store, failures=2)
    writer = LogWriter(wal, flaky, batch_rows=10, batch_seconds=0.05, max_retry_seconds=0.2)  # type: ignore[arg-type]
    writer.start()
    assert writer.wait_stored(end, timeout=30)
    writer.stop()
    assert metrics.INSERT_FAILURES._value.get() - failures_before == 2
    assert writer.healthy
    assert counts(store) == (10, 10)
