import threading
from pathlib import Path

import pytest

from tokenpulse.collector.wal import WalClosed, WalFull, WriteAheadLog, encode_frame


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
