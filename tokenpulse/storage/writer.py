"""Drains the write-ahead log into ClickHouse in large batches, exactly once.

Why replays never duplicate rows: a batch is a fixed range [start, end) of the log. Its range is
recorded in the checkpoint *before* it is inserted, and every insert carries the deduplication token
``<log id>-<start>-<end>-<table>``. After a crash the writer re-inserts exactly the recorded range with
the same token, and ClickHouse drops a block whose token it has already seen — in the table and, with
``deduplicate_blocks_in_dependent_materialized_views``, in the per-minute rollup too. Token-based insert
deduplication is chosen over ReplacingMergeTree alone because a replacing merge is eventual and never
reaches the rollup, which would count a replayed batch twice. The raw tables are still
ReplacingMergeTree on (trace id, span id) as a second line of defence against a span sent twice by an
exporter that retried a request whose response it lost.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tokenpulse import metrics
from tokenpulse.buffer.wal import Frame, WriteAheadLog
from tokenpulse.storage.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    committed: int = 0  # the log before this offset is in ClickHouse
    pending_end: int | None = None  # a batch [committed, pending_end) may or may not be in ClickHouse


class CheckpointFile:
    """The writer's progress, replaced atomically (write, fsync, rename, fsync directory)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "checkpoint.json"
        id_path = directory / "log-id"
        if not id_path.exists():
            _atomic_write(id_path, uuid.uuid4().hex.encode())
        # A fresh id per log directory: offsets restart at 0 in a new log, tokens must not repeat.
        self.log_id = id_path.read_text().strip()

    def load(self) -> Checkpoint:
        if not self.path.exists():
            return Checkpoint()
        data = json.loads(self.path.read_text())
        return Checkpoint(int(data["committed"]), data.get("pending_end"))

    def save(self, checkpoint: Checkpoint) -> None:
        payload = {"committed": checkpoint.committed, "pending_end": checkpoint.pending_end}
        _atomic_write(self.path, json.dumps(payload).encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LogWriter:
    """A background thread that moves batches of >= ``batch_rows`` rows, or every ``batch_seconds``."""

    def __init__(
        self,
        wal: WriteAheadLog,
        store: Store,
        *,
        batch_rows: int = 50_000,
        batch_seconds: float = 1.0,
        max_retry_seconds: float = 30.0,
    ) -> None:
        self.wal = wal
        self.store = store
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.max_retry_seconds = max_retry_seconds
        self.checkpoints = CheckpointFile(wal.directory)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokenpulse-writer", daemon=True)
        self.stored_end = 0  # offset up to which the log is in ClickHouse
        # The furthest offset a caller of ``wait_stored`` waits for: a batch that reaches it is written at
        # once, not left to grow (`ingest` waits for its last line; nothing more is coming).
        self._awaited = 0
        self.healthy = True  # False while inserts fail
        self._stored_cond = threading.Condition()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is durable, then stop."""
        self._stop.set()
        self._thread.join(timeout)

    def wait_stored(self, offset: int, timeout: float) -> bool:
        """Block until the log up to ``offset`` is in ClickHouse; used by tests and `ingest`."""
        deadline = time.monotonic() + timeout
        with self._stored_cond:
            self._awaited = max(self._awaited, offset)
            while self.stored_end < offset:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._stored_cond.wait(remaining)
        return True

    def _run(self) -> None:
        try:
            self._drain()
        except Exception:
            # The log cannot be read back (corruption before its tail is a disk fault, not a power cut):
            # nothing more reaches storage, and readiness must say so rather than stay green.
            self.healthy = False
            log.exception("the writer stopped; unwritten data stays in %s", self.wal.directory)

    def _drain(self) -> None:
        checkpoint = self.checkpoints.load()
        self.wal.release_before(checkpoint.committed)
        position = checkpoint.committed
        if checkpoint.pending_end is not None:
            log.info("replaying write-ahead log batch [%d, %d)", checkpoint.committed, checkpoint.pending_end)
            if not self._write_batch(checkpoint.committed, checkpoint.pending_end):
                return
            position = checkpoint.pending_end
        else:
            self._mark_stored(position)
        while True:
            stopping = self._stop.is_set()
            durable = self.wal.wait_for_data(position, timeout=0.2)
            if durable <= position:
                if stopping:
                    return
                continue
            frames = self._take(position, durable, self.batch_rows)
            rows = _rows(frames)
            # Let a small batch grow for up to batch_seconds: one insert per second beats many tiny parts;
            # unless it holds all that someone waits for.
            deadline = time.monotonic() + self.batch_seconds
            while (
                rows < self.batch_rows
                and not self._stop.is_set()
                and not position < self._awaited <= frames[-1].end
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                end = frames[-1].end
                durable = self.wal.wait_for_data(end, timeout=min(remaining, 0.05))
                if durable > end:
                    more = self._take(end, durable, self.batch_rows - rows, frames[0].row_format)
                    if not more:
                        break
                    frames += more
                    rows = _rows(frames)
            if not self._write_batch(position, frames[-1].end, frames):
                return
            position = frames[-1].end

    def _take(self, start: int, durable: int, rows: int, row_format: str | None = None) -> list[Frame]:
        """Whole frames from ``start`` holding about ``rows`` rows, all in one row format (``row_format``,
        else the first frame's): at least one frame, unless the frame at ``start`` is in another."""
        frames: list[Frame] = []
        for frame in self.wal.read(start, durable):
            if row_format is None:
                row_format = frame.row_format
            elif frame.row_format != row_format:
                # One insert reads one format: a batch ends where the format changes (once, at the
                # first frame an upgraded daemon wrote after an older one's).
                break
            frames.append(frame)
            rows -= frame.rows
            if rows <= 0:
                break
        return frames

    def _write_batch(self, start: int, end: int, frames: list[Frame] | None = None) -> bool:
        """Insert [start, end) until it succeeds; False if stopped first (the batch stays pending).

        ``frames`` are the batch's frames when the caller has them already (else they are read)."""
        self.checkpoints.save(Checkpoint(start, end))
        if frames is None:
            frames = list(self.wal.read(start, end))
        # Each table's rows frame by frame: the store writes them out as they are, so a batch is never
        # joined into one more copy of itself.
        calls = [frame.calls for frame in frames]
        tool_spans = [frame.tool_spans for frame in frames]
        evaluations = [frame.evaluations for frame in frames]
        call_count = sum(frame.call_count for frame in frames)
        tool_span_count = sum(frame.tool_span_count for frame in frames)
        evaluation_count = sum(frame.evaluation_count for frame in frames)
        row_format = frames[0].row_format
        token = f"{self.checkpoints.log_id}-{start}-{end}"
        delay = 0.5
        while True:
            try:
                started = time.perf_counter()
                if call_count:
                    self.store.insert_rows("calls", calls, f"{token}-calls", row_format)
                if tool_span_count:
                    self.store.insert_rows("tool_spans", tool_spans, f"{token}-tool_spans", row_format)
                if evaluation_count:
                    self.store.insert_rows("evaluations", evaluations, f"{token}-evaluations", row_format)
                metrics.INSERT_SECONDS.observe(time.perf_counter() - started)
                break
            except Exception as error:  # any storage fault: keep the batch in the log, retry forever
                self.healthy = False
                metrics.INSERT_FAILURES.inc()
                log.error(
                    "insert of log batch [%d, %d) failed, retrying in %.1fs: %s", start, end, delay, error
                )
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, self.max_retry_seconds)
        self.healthy = True
        metrics.ROWS_WRITTEN.labels("calls").inc(call_count)
        metrics.ROWS_WRITTEN.labels("tool_spans").inc(tool_span_count)
        metrics.ROWS_WRITTEN.labels("evaluations").inc(evaluation_count)
        self.checkpoints.save(Checkpoint(end))
        self._mark_stored(end)
        return True

    def _mark_stored(self, offset: int) -> None:
        self.wal.release_before(offset)
        with self._stored_cond:
            self.stored_end = offset
            self._stored_cond.notify_all()


def _rows(frames: list[Frame]) -> int:
    return sum(frame.rows for frame in frames)
