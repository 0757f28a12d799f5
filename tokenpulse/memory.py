"""Keeps the daemon's resident memory flat under steady load: glibc settings and the store's memory gauge.

Python and its extensions allocate with glibc malloc. Under steady ingest its arenas grew from 52 to
136 MiB in 10 minutes while the bytes in use stayed at 35 to 49 MiB (bench/soak.py, mallinfo2): after
the writer frees a multi-MiB batch glibc raises its mmap threshold, so later large buffers (request
bodies, encoded rows, batches) land in the arenas and leave holes; and each thread may get an arena of
its own. With two arenas and a fixed threshold the arenas stayed at 42 to 54 MiB.

Embedded chDB allocates with a jemalloc of its own, which is published here (its accounting, its
caches, allocated and resident bytes) so a soak can tell its share from ours.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tokenpulse.storage.store import Store

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENA_MAX = 2
# A fixed threshold also turns off glibc's dynamic one: buffers of 128 KiB and more are mmapped and
# unmapped whole instead of fragmenting the heap.
MMAP_THRESHOLD = 128 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc has it; musl and macOS do not
    except (OSError, AttributeError):
        return None
    return libc


# Container allocations between two young-generation collections (Python's default: 700). Decoding one
# request allocates tens of thousands of dicts and lists that live until it is stored; at 700 each was
# walked by several collections. 20,000 took ~13% off file ingest's CPU (2.40-2.60 s against 2.84-2.97
# s per 30k spans, alternated); what stays uncollected in between is a few MiB at most.
YOUNG_GC_THRESHOLD = 20_000


def freeze_heap() -> None:
    """Exempt every object alive now (modules, settings, clients) from garbage collection, and collect
    the young generation less often; call once a process has started, before it takes traffic.

    Older-generation collections walked the whole heap of imported modules again and again (about a
    sixth to a third of file ingest's CPU, alternated runs; ``gc.freeze``); new objects are collected as
    before.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


def tune_allocator() -> bool:
    """Bound glibc's arenas and fix its mmap threshold; call before the daemon starts its threads
    (a thread keeps the arena it got). False where the C library is not glibc: nothing to tune."""
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_ARENA_MAX, ARENA_MAX) == 1 and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not ok:
        log.warning("glibc refused an allocator setting; resident memory may creep under load")
    global _tuned
    _tuned = ok
    return ok


_tuned = False  # tune_allocator's settings hold in this process

# A worker of ``serve --workers`` allocates the same large buffers request after request (the body and
# its chunks, the protobuf parses' arenas, the frame and its pickle: 0.1-5 MiB each for a request of 512
# spans). Mapped fresh under the 128 KiB threshold, each was faulted in page by page: ~1,100 page faults a
# request of 5,120 spans (1 in 10 an LLM call); from the heap ~500, and the worker's system CPU fell from
# 3.1-3.5 to 1.7-1.9 ms a request (of ~28 ms in all; a worker-like server, 100 requests, 3 pairs). What a
# worker keeps is its requests' peak, bounded by the trim threshold above it.
WORKER_MMAP_THRESHOLD = 32 * 1024 * 1024
WORKER_TRIM_THRESHOLD = 64 * 1024 * 1024


def reuse_request_buffers() -> bool:
    """In a worker process, after ``tune_allocator``: buffers below 32 MiB come from the heap, and up to
    64 MiB of freed heap is kept for the next requests. False where ``tune_allocator``'s settings do not
    hold (not glibc)."""
    libc = _libc() if _tuned else None
    if libc is None:
        return False
    return (
        libc.mallopt(_M_TRIM_THRESHOLD, WORKER_TRIM_THRESHOLD) == 1
        and libc.mallopt(_M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD) == 1
    )


# While a detector cycle runs: blocks up to this size come from the arenas, and freed memory stays there.
CYCLE_MMAP_THRESHOLD = 256 * 1024 * 1024
CYCLE_TRIM_THRESHOLD = 4 * 1024 * 1024 * 1024
GLIBC_TRIM_THRESHOLD = 128 * 1024  # glibc's default, which tune_allocator leaves as it is


@contextmanager
def large_buffers_reused() -> Iterator[None]:
    """Within the block, reuse freed large blocks instead of mapping fresh ones; then give the freed
    memory back and restore ``tune_allocator``'s settings (nothing to do where they do not hold).

    A detector cycle allocates and frees hundreds of arrays of 0.1 to 50 MiB (week-long grids of every
    scope). Under the fixed 128 KiB mmap threshold each one was mapped fresh and faulted in page by page:
    at 10 tenants over 10M calls, 3.8-4.6 system CPU seconds of a cycle's ~8.5 (run in a thread as
    serve runs it, on a loaded 2-core machine); with the blocks reused, 2.5-3.2: what is left is
    faulting in the cycle's peak once. (Keeping that memory between cycles took it to 0.2-0.6, but
    would hold the cycle's peak resident all the time.) The cycle's peak is unchanged; ``malloc_trim``
    returns what it freed, so the resident memory between cycles stays what ``tune_allocator`` keeps
    it at. Other threads' large buffers allocated meanwhile come from the arenas too, and are given
    back the same way once freed.
    """
    libc = _libc() if _tuned else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, CYCLE_TRIM_THRESHOLD)
    libc.mallopt(_M_MMAP_THRESHOLD, CYCLE_MMAP_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)
        libc.malloc_trim(0)


class StoreMemoryCollector(Collector):
    """``tokenpulse_embedded_store_memory_bytes{kind}``, read from the store at each scrape."""

    NAME = "tokenpulse_embedded_store_memory_bytes"
    HELP = (
        "Memory of the embedded chDB store by kind: tracked (its own accounting), caches, and its "
        "allocator's allocated and resident bytes."
    )

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["kind"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["kind"])
        try:
            usage = self.store.memory_usage()
        except Exception as error:  # storage busy or down: /metrics must still answer
            log.debug("embedded store memory unavailable: %s", error)
            usage = {}
        for kind, value in usage.items():
            family.add_metric([kind], value)
        yield family
