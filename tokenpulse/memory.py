"""Keeps the daemon's resident memory flat under steady load: allocator settings and periodic reclaim.

Two allocators share the process. Python and its extensions use glibc malloc; under steady ingest its
free lists grew by ~80 MiB in 10 minutes while the bytes in use stayed at ~40 MiB (bench/soak.py with
mallinfo2): the dynamic mmap threshold rises after the writer's multi-MiB batches are freed, so later
large buffers land in the arenas and leave holes, and each thread that allocates may get an arena of its
own. Embedded chDB has its own jemalloc, which keeps pages freed by inserts and merges resident
(hundreds of MiB right after a merge) instead of handing them back. Both are reclaimed here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

from tokenpulse import metrics
from tokenpulse.storage.store import Store

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENA_MAX = 2
# A fixed threshold also turns off glibc's dynamic one: request bodies, encoded rows and batches
# (hundreds of KiB to MiB) are mmapped and unmapped whole instead of fragmenting the heap.
MMAP_THRESHOLD = 128 * 1024
TRIM_THRESHOLD = 8 * 1024 * 1024
RECLAIM_SECONDS = 30.0


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc only (musl and macOS have no mallopt/malloc_trim)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def tune_allocator() -> bool:
    """Bound glibc's arenas and fix its mmap threshold; call before the daemon starts its threads.

    Returns False where the C library is not glibc (nothing to tune)."""
    if _LIBC is None:
        return False
    ok = all(
        _LIBC.mallopt(param, value) == 1
        for param, value in (
            (_M_ARENA_MAX, ARENA_MAX),
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        )
    )
    if not ok:
        log.warning("mallopt refused an allocator setting; resident memory may creep under load")
    return ok


def trim_allocator() -> None:
    """Give glibc's free pages back to the system (all arenas, not only the top of the heap)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class MemoryReclaimer:
    """A background thread that every ``interval`` seconds trims glibc and purges the embedded store's
    allocator, publishing the store's memory first; a failure is logged, never raised."""

    def __init__(self, store: Store | None = None, interval: float = RECLAIM_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokenpulse-memory", daemon=True)

    def start(self) -> MemoryReclaimer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def reclaim(self) -> None:
        if self.store is not None:
            try:
                for kind, value in self.store.memory_usage().items():
                    metrics.EMBEDDED_STORE_MEMORY.labels(kind).set(value)
                self.store.release_memory()
            except Exception as error:  # storage busy or gone: try again next interval
                log.debug("storage memory purge failed: %s", error)
        trim_allocator()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.reclaim()
