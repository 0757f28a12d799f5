import os
import struct
import tempfile
import threading
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenpulse.buffer import wal as wal_module
from tokenpulse.buffer.wal import (
    JSON_ROWS,
    MAGIC,
    MAGIC_V1,
    NATIVE,
    WalClosed,
    WalFull,
    WriteAheadLog,
    encode_frame,
)


def frame(i: int, size: int = 10) -> bytes:
    calls = b"".join(b'{"n":%d}\n' % (i * 100 + k) for k in range(size))
    return encode_frame(calls, b'{"tool":%d}\n' % i, size, 1)


def test_frames_round_trip_across_segments(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, segment_bytes=500)
    ends = [wal.append(frame(i)) for i in range(20)]
    assert ends == sorted(ends) and len(wal.segments()) > 3
    frames = list(wal.read(0, ends[-1]))
    assert [f.end for f in frames] == ends
    assert frames[7].calls.startswith(b'{"n":700}') and frames[7].tool_spans == b'{"tool":7}\n'
    assert (frames[7].call_count, frames[7].tool_span_count) == (10, 1)
    # reading from a frame boundary in the middle of the log
    assert [f.end for f in wal.read(ends[9], ends[12])] == ends[10:13]


def test_torn_tail_is_truncated_and_earlier_frames_survive(tmp_path: Path, caplog) -> None:
    wal = WriteAheadLog(tmp_path)
    ends = [wal.append(frame(i)) for i in range(3)]
    wal.close()
    segment = tmp_path / f"{0:020d}.wal"
    whole = frame(3)
    with segment.open("ab") as f:
        f.write(whole[: len(whole) // 2])  # a power cut in the middle of a write
    reopened = WriteAheadLog(tmp_path)
    assert "torn tail" in caplog.text
    assert segment.stat().st_size == ends[-1]
    assert len(list(reopened.read(0, reopened.durable_end))) == 3
    assert reopened.append(frame(4)) == ends[-1] + len(frame(4))


def test_corrupt_byte_in_tail_frame_is_truncated(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    first = wal.append(frame(0))
    wal.append(frame(1))
    wal.close()
    segment = tmp_path / f"{0:020d}.wal"
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert WriteAheadLog(tmp_path).durable_end == first


def test_cap_sheds_load_until_the_writer_catches_up(tmp_path: Path) -> None:
    frames = [frame(i) for i in range(4)]
    wal = WriteAheadLog(tmp_path, max_bytes=sum(len(f) for f in frames[:3]))
    ends = [wal.append(f) for f in frames[:3]]
    with pytest.raises(WalFull):
        wal.append(frames[3])
    wal.release_before(ends[1])
    assert wal.append(frames[3]) == ends[-1] + len(frames[3])


def test_release_deletes_only_segments_wholly_stored(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, segment_bytes=300)
    ends = [wal.append(frame(i)) for i in range(10)]
    before = wal.segments()
    wal.release_before(ends[5])
    after = wal.segments()
    assert after[0] <= ends[5] and len(after) < len(before)
    assert len(list(wal.read(ends[5], ends[-1]))) == 4


def digest(i: int) -> bytes:
    return (i + 1).to_bytes(4, "little") * 4


def test_a_deleted_segments_request_digests_are_kept_across_a_restart(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, segment_bytes=300)
    frames = [encode_frame(b'{"n":1}\n', b"", 1, 0, digest(i) if i != 2 else b"") for i in range(12)]
    ends = [wal.append(f) for f in frames]
    wal.release_before(ends[6])
    with pytest.raises(ValueError, match="precedes the oldest"):
        list(wal.read(0, ends[6]))  # its frames are gone
    kept = wal.released_digests()
    # The frames of every deleted segment, in order; a frame without a digest (no request) is not kept.
    assert kept == [digest(i) for i in range(12) if i != 2 and ends[i] <= wal.oldest]
    wal.close()
    assert WriteAheadLog(tmp_path, segment_bytes=300).released_digests() == kept


def test_released_digests_survive_a_torn_append_and_keep_only_the_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal_module, "KEEP_RELEASED", 5)
    wal = WriteAheadLog(tmp_path, segment_bytes=200)
    ends = [wal.append(encode_frame(b'{"n":1}\n', b"", 1, 0, digest(i))) for i in range(4)]
    wal.release_before(ends[-1])
    before = wal.released_digests()
    assert before
    with (tmp_path / "released-digests").open("ab") as f:
        f.write(b"\x07" * 9)  # a crash in the middle of an append
    assert wal.released_digests() == before
    ends += [wal.append(encode_frame(b'{"n":1}\n', b"", 1, 0, digest(i))) for i in range(4, 30)]
    wal.release_before(ends[-1])
    kept = wal.released_digests()
    assert len(kept) == 5 and kept[-1] == digest(max(i for i in range(30) if ends[i] <= wal.oldest))
    assert (tmp_path / "released-digests").stat().st_size <= 2 * 5 * 16


def test_concurrent_appends_share_fsyncs_and_lose_nothing(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, segment_bytes=4096)
    results: list[int] = []
    lock = threading.Lock()

    def worker(base: int) -> None:
        for i in range(50):
            end = wal.append(frame(base + i, size=3))
            with lock:
                results.append(end)

    threads = [threading.Thread(target=worker, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    frames = list(wal.read(0, wal.durable_end))
    assert len(frames) == 200 == len(results)
    assert sorted(results) == [f.end for f in frames]


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    wal.close()
    with pytest.raises(WalClosed):
        wal.append(frame(0))


# What a power cut can leave after the last acknowledged frame: part of a frame, a frame with a bad
# checksum, zeros (a file extended before its data reached the disk), a header whose length is garbage.
def _torn(whole: bytes, cut: int) -> bytes:
    return whole[: max(1, min(cut, len(whole) - 1))]


corrupt_tails = (
    st.binary(min_size=1, max_size=200)
    | st.builds(_torn, st.just(frame(99)), st.integers(1, 400))
    | st.builds(lambda n: frame(98)[:-1] + bytes([frame(98)[-1] ^ n]), st.integers(1, 255))
    | st.integers(1, 4096).map(bytes)
    | st.integers(13, 2**32 - 1).map(lambda length: struct.pack("<III", MAGIC, length, 0) + b"\x01" * 12)
)


@settings(max_examples=60)
@given(acknowledged=st.integers(0, 6), tail=corrupt_tails, segment_bytes=st.sampled_from([300, 64 << 20]))
def test_any_corrupt_tail_is_truncated_and_every_acknowledged_frame_survives(
    acknowledged: int, tail: bytes, segment_bytes: int
) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        wal = WriteAheadLog(directory, segment_bytes=segment_bytes)
        ends = [wal.append(frame(i)) for i in range(acknowledged)]
        wal.close()
        last = directory / f"{wal.segments()[-1]:020d}.wal"
        with last.open("ab") as f:
            f.write(tail)
        reopened = WriteAheadLog(directory, segment_bytes=segment_bytes)
        end = ends[-1] if ends else 0
        assert reopened.durable_end == end
        assert [f.end for f in reopened.read(0, end)] == ends
        assert reopened.append(frame(7)) == end + len(frame(7))
        reopened.close()


def test_a_segment_cut_right_after_rotation_is_emptied_and_the_rest_read(tmp_path: Path, caplog) -> None:
    wal = WriteAheadLog(tmp_path, segment_bytes=300)
    ends = [wal.append(frame(i)) for i in range(6)]
    wal.close()
    # The power cut came as the next segment was created: its header half written.
    (tmp_path / f"{ends[-1]:020d}.wal").write_bytes(frame(6)[:5])
    reopened = WriteAheadLog(tmp_path, segment_bytes=300)
    assert "torn tail" in caplog.text
    assert [f.end for f in reopened.read(0, reopened.durable_end)] == ends


def test_frames_of_the_first_layout_are_still_read_beside_frames_with_evaluations(tmp_path: Path) -> None:
    # A log written before evaluations were kept (magic TPW1) drains after the upgrade.
    payload = struct.pack("<III16s", 2, 1, 6, b"d" * 16) + b"calls\n" + b"tool\n"
    old = struct.pack("<III", MAGIC_V1, len(payload), zlib.crc32(payload)) + payload
    (tmp_path / f"{0:020d}.wal").write_bytes(old)
    wal = WriteAheadLog(tmp_path)
    end = wal.append(encode_frame(b"c\n", b"", 1, 0, b"e" * 16, b'["eval"]\n', 1))
    first, second = wal.read(0, end)
    assert (first.calls, first.tool_spans, first.evaluations, first.rows) == (b"calls\n", b"tool\n", b"", 3)
    assert (second.calls, second.tool_spans, second.evaluations) == (b"c\n", b"", b'["eval"]\n')
    assert (second.evaluation_count, second.request_digest) == (1, b"e" * 16)
    assert first.row_format == second.row_format == JSON_ROWS
    wal.close()


def test_each_frame_reads_back_in_the_row_format_it_was_written_in(tmp_path: Path) -> None:
    # A log an older daemon left (JSON rows) continues with Native blocks after the upgrade.
    wal = WriteAheadLog(tmp_path, segment_bytes=40)  # a segment a frame
    wal.append(encode_frame(b'["old"]\n', b"", 1, 0, b"o" * 16))
    end = wal.append(encode_frame(b"block", b"", 1, 0, b"n" * 16, row_format=NATIVE))
    old, new = wal.read(0, end)
    assert (old.row_format, old.calls, new.row_format, new.calls) == (
        JSON_ROWS,
        b'["old"]\n',
        NATIVE,
        b"block",
    )
    wal.close()
    reopened = WriteAheadLog(tmp_path, segment_bytes=40)
    assert [f.row_format for f in reopened.read(0, end)] == [JSON_ROWS, NATIVE]
    reopened.append(encode_frame(b"next", b"", 1, 0, b"x" * 16, row_format=NATIVE))
    reopened.release_before(end)  # both frames are stored: their segments go, their digests are kept
    assert reopened.released_digests() == [b"o" * 16, b"n" * 16]
    reopened.close()


def test_deferred_appends_are_durable_at_the_next_sync_and_on_leaving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tokenpulse ingest` appends a line's frame without an fsync each; the writer reads (waits for)
    durable frames only, so nothing is stored that a power cut could take back."""
    syncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd))[1])
    wal = WriteAheadLog(tmp_path, segment_bytes=1 << 20)
    with wal.deferring_sync():
        ends = [wal.append(frame(i)) for i in range(5)]
        assert syncs == [] and wal.durable_end == 0
        assert wal.wait_for_data(0, timeout=0.01) == 0  # the writer sees nothing yet
        assert wal.sync() == ends[-1] == wal.durable_end and len(syncs) == 1
        later = wal.append(frame(5))
        assert wal.durable_end == ends[-1]
    assert wal.durable_end == later and len(syncs) == 2  # leaving syncs the rest
    assert wal.append(frame(6)) == wal.durable_end and len(syncs) == 3  # and appends sync again
    assert [f.end for f in wal.read(0, wal.durable_end)] == [*ends, later, wal.durable_end]
    wal.close()


def test_a_written_frame_is_durable_only_once_waited_for(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    end = wal.write(frame(0))
    assert wal.written_end == end and wal.durable_end == 0  # the writer reads nothing past durable_end
    assert wal.wait_durable(end) == end == wal.durable_end
    assert [f.end for f in wal.read(0, wal.durable_end)] == [end]
    wal.close()
