import json
import time
from pathlib import Path

from tests.factories import call_record, evaluation_record, tool_span_record
from tokenpulse import metrics
from tokenpulse.buffer.native import TABLES as NATIVE_TABLES
from tokenpulse.buffer.native import encode_block
from tokenpulse.buffer.rows import CALL_FIELDS, EVALUATION_FIELDS, TOOL_SPAN_FIELDS, encode_rows
from tokenpulse.buffer.wal import JSON_ROWS, NATIVE, WriteAheadLog, encode_frame
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


def test_a_batch_that_holds_what_a_caller_waits_for_is_written_without_waiting_to_grow(
    tmp_path: Path, store: Store
) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    end = append_calls(wal, 10)
    writer = LogWriter(wal, store, batch_rows=10_000, batch_seconds=60.0)  # a small batch waits a minute
    writer.start()
    try:
        assert writer.wait_stored(end, timeout=20)  # ... but not when someone waits for it
        assert counts(store) == (10, 10)
        more = append_calls(wal, 5)
        time.sleep(0.5)
        assert writer.stored_end == end  # nobody waits for it: the batch grows (for up to a minute)
        assert writer.wait_stored(more, timeout=20)
    finally:
        writer.stop()


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
    """A store whose first inserts (into ``table``, or any) fail, like a ClickHouse server that is down
    for a while."""

    def __init__(self, store: Store, failures: int, table: str | None = None) -> None:
        self.store = store
        self.failures = failures
        self.table = table
        self.attempts = 0

    def insert_rows(self, table: str, rows: bytes, dedup_token: str, row_format: str) -> None:
        self.attempts += 1
        if self.failures and self.table in (None, table):
            self.failures -= 1
            raise ConnectionError("connection refused")
        self.store.insert_rows(table, rows, dedup_token, row_format)


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


def append_calls_and_tools(wal: WriteAheadLog, calls: int, tools: int) -> int:
    call_rows = encode_rows([call_record() for _ in range(calls)], CALL_FIELDS)
    tool_rows = encode_rows([tool_span_record() for _ in range(tools)], TOOL_SPAN_FIELDS)
    return wal.append(encode_frame(call_rows, tool_rows, calls, tools))


def test_a_batch_half_inserted_when_storage_failed_is_retried_without_duplicates(
    tmp_path: Path, store: Store
) -> None:
    """The calls of a batch went in, then its tool spans failed: the retry inserts the calls again with
    the same token, and ClickHouse drops them, in the table and in the rollup."""
    wal = WriteAheadLog(tmp_path / "wal")
    end = append_calls_and_tools(wal, 25, 5)
    flaky = FlakyStore(store, failures=3, table="tool_spans")
    writer = LogWriter(wal, flaky, batch_rows=100, batch_seconds=0.05, max_retry_seconds=0.1)  # type: ignore[arg-type]
    writer.start()
    assert writer.wait_stored(end, timeout=30)
    writer.stop()
    assert flaky.attempts == 2 * 4  # calls then tool spans, four times
    assert counts(store) == (25, 25)
    assert store.rows("SELECT count(), uniqExact(span_id) FROM tool_spans")[0] == (5, 5)


def test_data_arriving_during_an_outage_waits_in_the_log_and_drains_once(
    tmp_path: Path, store: Store
) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    flaky = FlakyStore(store, failures=1_000_000)
    writer = LogWriter(wal, flaky, batch_rows=30, batch_seconds=0.05, max_retry_seconds=0.05)  # type: ignore[arg-type]
    writer.start()
    ends = [append_calls(wal, 10) for _ in range(12)]
    assert not writer.wait_stored(ends[0], timeout=1) and not writer.healthy
    assert wal.pending_bytes == ends[-1] and counts(store) == (0, 0)
    flaky.failures = 0  # storage is back
    assert writer.wait_stored(ends[-1], timeout=30)
    writer.stop()
    assert writer.healthy and wal.pending_bytes == 0
    assert counts(store) == (120, 120)
    assert store.rows("SELECT uniqExact(span_id) FROM calls")[0][0] == 120


def test_after_a_power_cut_the_torn_tail_is_dropped_and_the_rest_replayed_once(
    tmp_path: Path, store: Store, caplog
) -> None:
    wal_dir = tmp_path / "wal"
    wal = WriteAheadLog(wal_dir, segment_bytes=4096)
    stored = append_calls(wal, 10)
    writer = LogWriter(wal, store, batch_rows=10, batch_seconds=0.01)
    writer.start()
    assert writer.wait_stored(stored, timeout=30)
    writer.stop()
    # More acknowledged while the writer was busy with a batch it never checkpointed as done...
    ends = [append_calls(wal, 10) for _ in range(5)]
    (wal_dir / "checkpoint.json").write_text(json.dumps({"committed": stored, "pending_end": ends[1]}))
    wal.close()
    # ...then the power went out in the middle of the next write.
    last = wal_dir / f"{wal.segments()[-1]:020d}.wal"
    torn = encode_frame(encode_rows([call_record()], CALL_FIELDS), b"", 1, 0)
    with last.open("ab") as f:
        f.write(torn[: len(torn) // 2])
    reopened = WriteAheadLog(wal_dir, segment_bytes=4096)
    assert "torn tail" in caplog.text and reopened.durable_end == ends[-1]
    replaying = LogWriter(reopened, store, batch_rows=20, batch_seconds=0.01)
    replaying.start()
    assert replaying.wait_stored(ends[-1], timeout=30)
    replaying.stop()
    assert counts(store) == (60, 60)
    assert store.rows("SELECT uniqExact(span_id) FROM calls")[0][0] == 60


def test_a_log_corrupt_before_its_tail_stops_the_writer_visibly(tmp_path: Path, store: Store, caplog) -> None:
    wal_dir = tmp_path / "wal"
    wal = WriteAheadLog(wal_dir, segment_bytes=4096)
    ends = [append_calls(wal, 10) for _ in range(6)]
    wal.close()
    first = wal_dir / f"{wal.segments()[0]:020d}.wal"
    data = bytearray(first.read_bytes())
    data[100] ^= 0xFF  # a disk fault inside an older segment: not a torn tail, nothing to truncate
    first.write_bytes(bytes(data))
    reopened = WriteAheadLog(wal_dir, segment_bytes=4096)
    writer = LogWriter(reopened, store, batch_rows=10, batch_seconds=0.01)
    writer.start()
    assert not writer.wait_stored(ends[-1], timeout=2)
    assert not writer.healthy
    assert "the writer stopped" in caplog.text and "corrupt write-ahead log frame" in caplog.text


def test_evaluations_replayed_after_a_crash_or_half_inserted_are_stored_once(
    tmp_path: Path, store: Store
) -> None:
    """A frame of calls and evaluations: the evaluations' insert fails twice after the calls went in,
    then the whole batch is replayed after a crash; the evaluations and their rollup count once."""
    wal_dir = tmp_path / "wal"
    wal = WriteAheadLog(wal_dir)
    calls = [call_record() for _ in range(4)]
    evaluations = [evaluation_record(span_id=c["span_id"], trace_id=c["trace_id"]) for c in calls]
    frame = encode_frame(
        encode_rows(calls, CALL_FIELDS), b"", 4, 0, b"", encode_rows(evaluations, EVALUATION_FIELDS), 4
    )
    end = wal.append(frame)
    flaky = FlakyStore(store, failures=2, table="evaluations")
    writer = LogWriter(wal, flaky, batch_rows=100, batch_seconds=0.05, max_retry_seconds=0.1)  # type: ignore[arg-type]
    writer.start()
    assert writer.wait_stored(end, timeout=30)
    writer.stop()
    wal.close()
    (wal_dir / "checkpoint.json").write_text(json.dumps({"committed": 0, "pending_end": end}))
    wal = WriteAheadLog(wal_dir)
    replaying = LogWriter(wal, store, batch_rows=100, batch_seconds=0.05)
    replaying.start()
    assert replaying.wait_stored(end, timeout=30)
    replaying.stop()
    assert counts(store) == (4, 4)
    assert store.rows("SELECT count(), uniqExact(span_id) FROM evaluations")[0] == (4, 4)
    assert store.rows("SELECT sum(evaluations), sum(passes) FROM evaluations_1m")[0] == (4, 4)


class RecordingStore:
    """A store that notes each insert's table and row format."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.inserts: list[tuple[str, str, int]] = []

    def insert_rows(self, table: str, rows: list[bytes], dedup_token: str, row_format: str) -> None:
        self.inserts.append((table, row_format, len(rows)))
        self.store.insert_rows(table, rows, dedup_token, row_format)


def test_a_log_that_an_older_version_began_drains_then_its_native_frames(
    tmp_path: Path, store: Store
) -> None:
    """JSON frames left by an older daemon, then Native frames: all stored once, no insert mixing the two
    formats (a batch ends where the format changes), and a replay of the Native batch is dropped."""
    wal_dir = tmp_path / "wal"
    wal = WriteAheadLog(wal_dir)
    for _ in range(3):
        append_calls_and_tools(wal, 4, 1)
    start = wal.durable_end
    for _ in range(3):
        calls = [call_record() for _ in range(4)]
        evaluations = [evaluation_record(span_id=c["span_id"], trace_id=c["trace_id"]) for c in calls]
        end = wal.append(
            encode_frame(
                encode_block(calls, NATIVE_TABLES["calls"], "acme"),
                encode_block([tool_span_record()], NATIVE_TABLES["tool_spans"], "acme"),
                4,
                1,
                b"",
                encode_block(evaluations, NATIVE_TABLES["evaluations"], "acme"),
                4,
                NATIVE,
            )
        )
    recording = RecordingStore(store)
    writer = LogWriter(wal, recording, batch_rows=1000, batch_seconds=0.2)  # type: ignore[arg-type]
    writer.start()
    assert writer.wait_stored(end, timeout=30)
    writer.stop()
    assert recording.inserts == [
        ("calls", JSON_ROWS, 3), ("tool_spans", JSON_ROWS, 3),
        ("calls", NATIVE, 3), ("tool_spans", NATIVE, 3), ("evaluations", NATIVE, 3),
    ]  # fmt: skip
    assert counts(store) == (24, 24)
    assert store.rows("SELECT count(), countIf(tenant = 'acme') FROM tool_spans")[0] == (6, 3)
    wal.close()
    # A crash after the Native batch went in, before its checkpoint: the replay is dropped.
    (wal_dir / "checkpoint.json").write_text(json.dumps({"committed": start, "pending_end": end}))
    replaying = LogWriter(WriteAheadLog(wal_dir), store, batch_rows=1000, batch_seconds=0.05)
    replaying.start()
    assert replaying.wait_stored(end, timeout=30)
    replaying.stop()
    assert counts(store) == (24, 24)
    assert store.rows("SELECT count(), sum(passed) FROM evaluations")[0] == (12, 12)
    assert store.rows("SELECT sum(evaluations) FROM evaluations_1m")[0] == (12,)
