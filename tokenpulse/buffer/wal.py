"""The durable buffer: an on-disk write-ahead log between the receivers and ClickHouse.

A request is acknowledged only after its frame is on disk (fsync). Appenders share fsyncs (group commit):
whoever finds no fsync running does one for everything written so far while the others wait for it.

Positions are global byte offsets that only grow; a segment file is named by the offset it starts at,
so a position never needs a (segment, offset) pair. Frame layout::

    magic u32 | payload length u32 | crc32(payload) u32 | payload
    payload = calls count u32 | tool spans count u32 | evaluations count u32 | calls bytes length u32
              | tool span bytes length u32 | request digest 16 bytes | calls rows | tool span rows
              | evaluation rows

A frame's magic says how its rows are encoded: "TPW3", one ClickHouse Native block per table
(``buffer.native``, what the collector writes); "TPW2", JSONCompactEachRow lines (``buffer.rows``),
written before the Native blocks. Frames of the first layout (magic "TPW1": JSON rows, no evaluations,
no evaluation count nor tool span length), written before evaluations were kept, are still read too: a
log left by an older daemon drains as it was.

A torn tail (power cut mid-write) fails its length or CRC check and is truncated on open; the frames
before it are intact because a request is acknowledged only after its whole frame was synced.

A segment is deleted once everything in it is stored; the request digests of its frames are kept first
(``released_digests``, the latest ``KEEP_RELEASED``), so a request sent again after its segment is gone
— an exporter's late retry, a file ingested again — is still recognized after a restart.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC_V1 = 0x54505731  # "TPW1": calls and tool spans, JSON rows
MAGIC_V2 = 0x54505732  # "TPW2": calls, tool spans and evaluations, JSON rows
MAGIC = 0x54505733  # "TPW3": calls, tool spans and evaluations, Native blocks
_HEADER = struct.Struct("<III")
_COUNTS_V1 = struct.Struct("<III16s")
_COUNTS = struct.Struct("<IIIII16s")
_MAGICS = (MAGIC, MAGIC_V2, MAGIC_V1)
# The ClickHouse input format of each magic's rows.
JSON_ROWS = "JSONCompactEachRow"
NATIVE = "Native"
_FORMATS = {MAGIC: NATIVE, MAGIC_V2: JSON_ROWS, MAGIC_V1: JSON_ROWS}
_MAGIC_OF = {NATIVE: MAGIC, JSON_ROWS: MAGIC_V2}
_SUFFIX = ".wal"
_DIGEST = 16
_RELEASED = "released-digests"
KEEP_RELEASED = 100_000  # digests of deleted segments' requests kept (1.6 MB), as many as a retry memory


class WalFull(RuntimeError):
    """The log holds more unwritten bytes than its cap: the caller should shed load (429)."""


class WalClosed(RuntimeError):
    """The log was closed (daemon shutting down)."""


@dataclass(frozen=True, slots=True)
class Frame:
    start: int  # global offset of the frame header
    end: int  # global offset just past the frame
    calls: bytes  # encoded rows of the calls table, in ``row_format``
    tool_spans: bytes  # encoded rows of the tool_spans table
    call_count: int
    tool_span_count: int
    request_digest: bytes  # identifies the OTLP request the rows came from (for retry deduplication)
    evaluations: bytes = b""  # encoded rows of the evaluations table
    evaluation_count: int = 0
    row_format: str = JSON_ROWS  # the ClickHouse format of the rows: NATIVE or JSON_ROWS

    @property
    def rows(self) -> int:
        """Rows of every table in the frame."""
        return self.call_count + self.tool_span_count + self.evaluation_count


def encode_frame(
    calls: bytes,
    tool_spans: bytes,
    call_count: int,
    tool_span_count: int,
    request_digest: bytes = b"",
    evaluations: bytes = b"",
    evaluation_count: int = 0,
    row_format: str = JSON_ROWS,
) -> bytes:
    """One request's frame: each table's rows, encoded in ``row_format`` (NATIVE: ``buffer.native``
    blocks; JSON_ROWS: ``buffer.rows`` lines), with their counts and the request's digest."""
    counts = _COUNTS.pack(
        call_count, tool_span_count, evaluation_count, len(calls), len(tool_spans), request_digest
    )
    payload = counts + calls + tool_spans + evaluations
    return _HEADER.pack(_MAGIC_OF[row_format], len(payload), zlib.crc32(payload)) + payload


def _decode_payload(magic: int, start: int, end: int, payload: bytes) -> Frame:
    # Each table's rows are copied once out of the payload (a memoryview's slices copy nothing).
    view = memoryview(payload)
    if magic == MAGIC_V1:
        call_count, tool_span_count, calls_length, digest = _COUNTS_V1.unpack_from(payload)
        body = view[_COUNTS_V1.size :]
        return Frame(
            start,
            end,
            bytes(body[:calls_length]),
            bytes(body[calls_length:]),
            call_count,
            tool_span_count,
            digest,
            row_format=JSON_ROWS,
        )
    call_count, tool_span_count, evaluation_count, calls_length, tools_length, digest = _COUNTS.unpack_from(
        payload
    )
    body = view[_COUNTS.size :]
    tools_end = calls_length + tools_length
    return Frame(
        start,
        end,
        bytes(body[:calls_length]),
        bytes(body[calls_length:tools_end]),
        call_count,
        tool_span_count,
        digest,
        bytes(body[tools_end:]),
        evaluation_count,
        _FORMATS[magic],
    )


def _segment_path(directory: Path, start: int) -> Path:
    return directory / f"{start:020d}{_SUFFIX}"


def _valid_prefix_length(path: Path) -> int:
    """Length of the longest prefix of ``path`` made of whole, checksummed frames."""
    valid = 0
    with path.open("rb") as f:
        while True:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return valid
            magic, length, crc = _HEADER.unpack(header)
            if magic not in _MAGICS:
                return valid
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return valid
            valid += _HEADER.size + length


class WriteAheadLog:
    """Append-only segmented log with group-commit fsync and a byte cap for backpressure."""

    def __init__(self, directory: Path, *, segment_bytes: int = 64 << 20, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.committed = 0  # everything before this offset is safely in ClickHouse (set by the writer)
        self._lock = threading.Lock()
        self._synced_cond = threading.Condition(self._lock)
        self._closed = False
        self._syncing = False
        self._deferred = False  # deferring_sync
        segments = self.segments()
        if segments:
            last = segments[-1]
            path = _segment_path(directory, last)
            valid = _valid_prefix_length(path)
            size = path.stat().st_size
            if valid < size:
                log.warning(
                    "write-ahead log %s has a torn tail: truncating %d bytes after offset %d "
                    "(an unacknowledged write cut short by a crash)",
                    path.name,
                    size - valid,
                    last + valid,
                )
                with path.open("r+b") as f:
                    f.truncate(valid)
                    os.fsync(f.fileno())
            self._segment_start = last
            self._written = last + valid
        else:
            self._segment_start = 0
            self._written = 0
        self._synced = self._written
        self._fd = os.open(
            _segment_path(directory, self._segment_start), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        self._fsync_directory()

    # -- appending -------------------------------------------------------------------------------------

    def append(self, frame: bytes | memoryview) -> int:
        """Write ``frame`` and return once it is durable; returns the offset just past it.

        Inside ``deferring_sync`` it returns once written, and durable only after the next ``sync``.
        """
        end = self.write(frame)
        self.wait_acknowledgeable(end)
        return end

    def write(self, frame: bytes | memoryview) -> int:
        """Write ``frame`` without waiting for it to be durable; the offset just past it, to pass to
        ``wait_durable`` before acknowledging it. Lets one thread read and write a stream of frames in
        order while others wait for the fsyncs (the daemon's log server)."""
        with self._lock:
            return self._write(frame)

    def wait_durable(self, end: int) -> int:
        """Return once everything before ``end`` is durable (sharing fsyncs); the durable end."""
        with self._lock:
            self._durable_through(end)
            return self._synced

    def wait_acknowledgeable(self, end: int) -> None:
        """Return once a frame written through ``end`` may be acknowledged: once it is durable, or at
        once inside ``deferring_sync``, where nothing is acknowledged."""
        with self._lock:
            if not self._deferred:
                self._durable_through(end)

    def _durable_through(self, end: int) -> None:
        if self._synced < end:
            if self._closed:
                raise WalClosed("write-ahead log is closed")
            self._sync_through(end)

    @property
    def written_end(self) -> int:
        """Offset just past the last frame written (durable or not)."""
        with self._lock:
            return self._written

    def _write(self, frame: bytes | memoryview) -> int:
        if self._closed:
            raise WalClosed("write-ahead log is closed")
        if self._written - self.committed + len(frame) > self.max_bytes:
            raise WalFull(f"write-ahead log holds {self._written - self.committed} unwritten bytes")
        if (
            self._written > self._segment_start
            and self._written - self._segment_start + len(frame) > self.segment_bytes
        ):
            self._rotate()
        try:
            written = os.write(self._fd, frame)
            while written < len(frame):  # a regular file takes a whole frame unless the disk fills up
                written += os.write(self._fd, memoryview(frame)[written:])
        except OSError:
            # No part of a frame may stay: the next one is written where this one started.
            os.ftruncate(self._fd, self._written - self._segment_start)
            raise
        self._written += len(frame)
        return self._written

    def sync(self) -> int:
        """Make everything written durable (the writer reads nothing past it); the durable end."""
        with self._lock:
            if not self._closed:
                self._sync_through(self._written)
            return self._synced

    @contextlib.contextmanager
    def deferring_sync(self) -> Iterator[None]:
        """Appends return once written; the caller calls ``sync`` (and it is called on leaving).

        For `tokenpulse ingest`, which acknowledges nothing: a line whose frame is lost with the
        machine before its sync was not stored either (the writer reads durable frames only), and
        ingesting the file again adds it; one fsync a line cost more than preparing a small line.
        """
        with self._lock:
            self._deferred = True
        try:
            yield
        finally:
            with self._lock:
                self._deferred = False
            self.sync()

    def _sync_through(self, end: int) -> None:
        """fsync until ``end`` is durable, sharing one fsync with every appender waiting (group commit).
        Called with the lock held; releases it during the fsync."""
        while self._synced < end:
            if self._syncing:
                self._synced_cond.wait()
                continue
            self._syncing = True
            target, fd = self._written, self._fd
            self._lock.release()
            try:
                os.fdatasync(fd)
            finally:
                self._lock.acquire()
                self._syncing = False
            self._synced = max(self._synced, target)
            self._synced_cond.notify_all()

    def _rotate(self) -> None:
        # Never close the fd under an fsync running outside the lock: its number could be reused.
        while self._syncing:
            self._synced_cond.wait()
        # The old segment is synced whole before any byte of the next one can be acknowledged.
        os.fsync(self._fd)
        os.close(self._fd)
        self._synced = self._written
        self._segment_start = self._written
        self._fd = os.open(
            _segment_path(self.directory, self._segment_start), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        self._fsync_directory()

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------------------------------

    @property
    def durable_end(self) -> int:
        """Offset up to which every frame is on disk (and acknowledged or about to be)."""
        with self._lock:
            return self._synced

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            return self._written - self.committed

    @property
    def oldest(self) -> int:
        """Offset of the oldest frame still on disk."""
        segments = self.segments()
        return segments[0] if segments else 0

    def segments(self) -> list[int]:
        return sorted(int(p.name[: -len(_SUFFIX)]) for p in self.directory.glob(f"*{_SUFFIX}"))

    def read(self, start: int, end: int) -> Iterator[Frame]:
        """Yield the frames in [start, end); ``start`` must be a frame boundary."""
        position = start
        while position < end:
            segment = max((s for s in self.segments() if s <= position), default=None)
            if segment is None:
                raise ValueError(f"offset {position} precedes the oldest write-ahead log segment")
            entered_at = position
            with _segment_path(self.directory, segment).open("rb") as f:
                f.seek(position - segment)
                while position < end:
                    header = f.read(_HEADER.size)
                    if len(header) < _HEADER.size:
                        break  # end of this segment: go on in the next
                    magic, length, crc = _HEADER.unpack(header)
                    payload = f.read(length)
                    if magic not in _MAGICS or len(payload) < length or zlib.crc32(payload) != crc:
                        raise ValueError(f"corrupt write-ahead log frame at offset {position}")
                    frame_end = position + _HEADER.size + length
                    yield _decode_payload(magic, position, frame_end, payload)
                    position = frame_end
            if position == entered_at:
                raise ValueError(f"write-ahead log ends at offset {position}, expected data up to {end}")

    def wait_for_data(self, position: int, timeout: float) -> int:
        """Block until durable data exists past ``position`` (or timeout); returns the durable end."""
        with self._lock:
            if self._synced <= position and not self._closed:
                self._synced_cond.wait(timeout)
            return self._synced

    def release_before(self, offset: int) -> None:
        """Mark everything before ``offset`` as stored and delete the segments that lie wholly before it,
        their requests' digests kept first (``released_digests``)."""
        with self._lock:
            self.committed = max(self.committed, offset)
            current = self._segment_start
        segments = self.segments()
        doomed = [
            (start, following)
            for start, following in itertools.pairwise(segments)
            if following <= offset and start < current
        ]
        if not doomed:
            return
        digests = [digest for start, _ in doomed for digest in self._request_digests(start) if any(digest)]
        self._keep_released(digests)
        for start, _ in doomed:
            _segment_path(self.directory, start).unlink(missing_ok=True)

    def _request_digests(self, segment: int) -> Iterator[bytes]:
        """The request digests of the frames of ``segment`` (a whole, stored one), from their headers:
        reading back every row to release a segment cost about as much as the writer's own read."""
        with _segment_path(self.directory, segment).open("rb") as f:
            while len(header := f.read(_HEADER.size)) == _HEADER.size:
                magic, length, _ = _HEADER.unpack(header)
                counts = _COUNTS_V1 if magic == MAGIC_V1 else _COUNTS
                if magic not in _MAGICS or length < counts.size:
                    raise ValueError(f"corrupt write-ahead log frame in segment {segment} at {f.tell()}")
                digest = counts.unpack(f.read(counts.size))[-1]
                f.seek(length - counts.size, os.SEEK_CUR)
                yield digest

    def released_digests(self) -> list[bytes]:
        """The request digests of the latest ``KEEP_RELEASED`` frames of deleted segments, oldest first."""
        path = self.directory / _RELEASED
        data = path.read_bytes() if path.exists() else b""
        # A crash mid-append leaves a partial digest at the end: it was never relied on (its segment was
        # not deleted yet).
        data = data[: len(data) // _DIGEST * _DIGEST][-KEEP_RELEASED * _DIGEST :]
        return [data[i : i + _DIGEST] for i in range(0, len(data), _DIGEST)]

    def _keep_released(self, digests: list[bytes]) -> None:
        """Append ``digests`` durably to the released digests (before their segments go), and rewrite the
        file with only the latest ``KEEP_RELEASED`` once it holds twice as many."""
        path = self.directory / _RELEASED
        with path.open("ab") as f:
            size = f.tell()
            if size % _DIGEST:
                f.truncate(size - size % _DIGEST)  # a partial digest left by a crash mid-append
            f.write(b"".join(digests))
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        if size > 2 * KEEP_RELEASED * _DIGEST:
            kept = path.with_name(_RELEASED + ".tmp")
            kept.write_bytes(b"".join(self.released_digests()))
            with kept.open("rb") as f:
                os.fsync(f.fileno())
            kept.replace(path)
        self._fsync_directory()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.fsync(self._fd)
            os.close(self._fd)
            self._synced_cond.notify_all()
