import os
import threading
import tracemalloc
from collections import OrderedDict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.otlp_builders import export_request, llm_span, span_with
from tokenpulse.buffer.wal import WriteAheadLog, encode_frame
from tokenpulse.collector.limits import CALL_TEXTS, TOOL_SPAN_TEXTS
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import (
    LocalRequestLog,
    Pipeline,
    RecentRequests,
    limit_texts,
    request_digest,
)
from tokenpulse.collector.pricing import Pricer


def test_recent_requests_forget_the_oldest_first() -> None:
    recent = RecentRequests(capacity=2)
    for digest in (b"a", b"b", b"c"):
        recent.add(digest)
    assert b"a" not in recent and b"b" in recent and b"c" in recent


def test_limit_texts_cuts_in_place_and_collects_each_capped_dimension_over_every_table() -> None:
    call = {text: "" for text in CALL_TEXTS} | {"service": "checkout", "route": "/r/" + "x" * 10, "extra": {}}
    call["user"] = "u" * 10
    tool_span = {text: "" for text in TOOL_SPAN_TEXTS} | {"service": "search-api", "name": "lookup"}
    cut, values = limit_texts([call], [tool_span], [], 8)  # type: ignore[list-item]
    assert cut == 3  # the route, the user and the tool span's service
    assert (call["route"], call["user"], tool_span["service"]) == ("/r/xxxxx", "u" * 8, "search-a")
    assert values["service"] == {"checkout", "search-a"}  # one dimension, whichever table holds it
    assert values["route"] == {"/r/xxxxx"} and values["name"] == {"lookup"}
    assert "user" not in values  # cut, but no dimension: it is not capped


def test_pipeline_splits_calls_tool_spans_ignored_and_rejected(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    pipeline = Pipeline(wal, NormalizeConfig(), Pricer())
    request = export_request(
        llm_span(),
        llm_span(**{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        llm_span(**{"gen_ai.usage.input_tokens": -1}),
        span_with({"http.request.method": "GET", "http.response.status_code": 200}),
    )
    body = request.SerializeToString()
    result = pipeline.ingest(request, "test", request_digest(body))
    assert (result.calls, result.tool_spans, result.rejected, result.ignored) == (1, 1, 1, 1)
    assert "1 span(s) rejected" in result.message
    (frame,) = wal.read(0, wal.durable_end)
    assert frame.request_digest == request_digest(body)
    again = pipeline.ingest(request, "test", request_digest(body))
    assert again.duplicate and again.wal_end == 0
    wal.close()
    # After a restart the digests still in the log are remembered.
    reopened = Pipeline(WriteAheadLog(tmp_path), NormalizeConfig(), Pricer())
    assert reopened.ingest(request, "test", request_digest(body)).duplicate


def _log_with_frame(tmp_path: Path, digest: bytes) -> tuple[WriteAheadLog, LocalRequestLog, bytes]:
    """A log, the retry memory over it, and a request's frame."""
    wal = WriteAheadLog(tmp_path / "wal")
    return wal, LocalRequestLog(wal), encode_frame(b"rows", b"", 1, 0, digest)


def test_a_retry_during_the_first_copys_fsync_waits_for_it_and_is_not_stored_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without workers, as the daemon's log server does for them: "duplicate" acknowledges the request,
    # so it may be answered only once the first copy is on disk.
    digest = b"d" * 16
    wal, log, frame = _log_with_frame(tmp_path, digest)
    syncing, release = threading.Event(), threading.Event()
    fdatasync = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        syncing.set()
        release.wait(10)
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    answers: dict[str, object] = {}
    calls = {
        "first": lambda: log.append(frame, digest),
        "retry": lambda: log.append(frame, digest),
        "seen": lambda: log.seen(digest),  # the pipeline's early answer
    }
    threads = {n: threading.Thread(target=lambda n=n: answers.update({n: calls[n]()})) for n in calls}
    threads["first"].start()
    assert syncing.wait(10)
    threads["retry"].start()
    threads["seen"].start()
    threads["seen"].join(0.3)
    assert answers == {}  # neither answered while the first copy's fsync runs
    release.set()
    for thread in threads.values():
        thread.join(10)
    assert answers == {"first": len(frame), "retry": None, "seen": True}
    assert [f.request_digest for f in wal.read(0, wal.durable_end)] == [digest]
    wal.close()


def test_a_repeat_while_deferring_sync_is_dropped_without_an_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # File ingest acknowledges nothing: a line seen before is skipped at once, as its first copy was
    # written without waiting for the disk.
    digest = b"e" * 16
    wal, log, frame = _log_with_frame(tmp_path, digest)
    fsyncs: list[int] = []
    monkeypatch.setattr(os, "fdatasync", fsyncs.append)
    with wal.deferring_sync():
        assert log.append(frame, digest) == len(frame)
        assert log.append(frame, digest) is None and log.seen(digest)
        assert fsyncs == []
    assert len(fsyncs) == 1 and wal.durable_end == len(frame)
    wal.close()


# RecentRequests (the exporter-retry digests) against a plain ordered model, collisions included.
# A small pool of digests whose home slots collide often in a small table.
_POOL = [bytes([i % 4]) * 8 + bytes([i]) * 8 for i in range(24)]
_POOL += [request_digest(b"x%d" % i) for i in range(8)] + [b"short"]


@given(
    capacity=st.integers(1, 9),
    ops=st.lists(st.tuples(st.booleans(), st.sampled_from(_POOL)), max_size=200),
)
def test_recent_requests_behave_like_a_bounded_ordered_set(
    capacity: int, ops: list[tuple[bool, bytes]]
) -> None:
    recent = RecentRequests(capacity)
    model: OrderedDict[bytes, None] = OrderedDict()
    for is_add, digest in ops:
        if is_add:
            recent.add(digest)
            if digest not in model:
                model[digest] = None
                if len(model) > capacity:
                    model.popitem(last=False)
        assert (digest in recent) == (digest in model)
        assert len(recent) == len(model)
    assert all((digest in recent) == (digest in model) for digest in _POOL)


def test_recent_requests_take_no_more_memory_as_they_fill() -> None:
    recent = RecentRequests(capacity=20_000)
    digests = [request_digest(i.to_bytes(4, "big")) for i in range(30_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for digest in digests:
            recent.add(digest)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024  # an OrderedDict of 20k digests takes ~3 MiB
    assert digests[-1] in recent and digests[-20_000] in recent and digests[-20_001] not in recent
