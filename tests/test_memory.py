"""The daemon's memory settings and the embedded store's memory gauge."""

import ctypes
import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tokenpulse import memory
from tokenpulse.memory import StoreMemoryCollector, large_buffers_reused, tune_allocator
from tokenpulse.storage.store import Store


@pytest.mark.skipif("libc.so" not in (ctypes.util.find_library("c") or ""), reason="glibc only")
def test_glibc_takes_the_allocator_settings() -> None:
    assert tune_allocator()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
    ]  # fmt: skip


def _mapped_bytes() -> int:
    """Bytes glibc holds in blocks mapped on their own (not in its arenas)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


@pytest.mark.skipif("libc.so" not in (ctypes.util.find_library("c") or ""), reason="glibc only")
def test_a_detector_cycle_reuses_large_blocks_then_the_daemons_settings_hold_again() -> None:
    """In a process of its own: the allocator's settings are the whole process's, and a test worker may
    have another test's detector cycle running in a thread (inside ``large_buffers_reused``)."""
    child = subprocess.run(
        [sys.executable, "-c", "from tests.test_memory import cycle_reuses_large_blocks as t; t()"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr


def cycle_reuses_large_blocks() -> None:
    """Run by the test above in a fresh interpreter."""
    assert tune_allocator()
    size = 8 * 1024 * 1024
    before = _mapped_bytes()
    block = bytearray(size)
    assert _mapped_bytes() >= before + size  # the daemon maps a large block on its own
    del block
    with large_buffers_reused():
        block = bytearray(size)
        assert _mapped_bytes() < before + size  # from the arena: memory freed earlier is reused
        del block
    block = bytearray(size)
    assert _mapped_bytes() >= before + size  # mapped on its own again
    del block


def test_large_buffers_are_left_alone_where_the_daemons_settings_do_not_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "_tuned", False)
    monkeypatch.setattr(memory, "_libc", lambda: pytest.fail("the allocator must not be touched"))
    with large_buffers_reused():
        pass


def test_the_embedded_store_publishes_its_memory(store: Store) -> None:
    registry = CollectorRegistry()
    registry.register(StoreMemoryCollector(store))
    kinds = {kind: registry.get_sample_value("tokenpulse_embedded_store_memory_bytes", {"kind": kind})
             for kind in ("tracked", "caches", "allocated", "resident")}  # fmt: skip
    assert all(value is not None and value >= 0 for value in kinds.values()), kinds
    assert kinds["resident"] >= kinds["allocated"] > 0


class _DownStore(Store):
    def __init__(self) -> None:
        super().__init__(client=None, embedded=True)  # type: ignore[arg-type]

    def rows(self, sql, parameters=None):  # type: ignore[no-untyped-def]
        raise ConnectionError("storage is down")


def test_a_store_that_fails_leaves_the_gauge_empty_not_the_scrape_broken() -> None:
    registry = CollectorRegistry()
    registry.register(StoreMemoryCollector(_DownStore()))
    assert registry.get_sample_value("tokenpulse_embedded_store_memory_bytes", {"kind": "tracked"}) is None
