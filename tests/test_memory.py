"""The daemon's memory settings and the embedded store's memory gauge."""

import ctypes.util

import pytest
from prometheus_client import CollectorRegistry

from tokenpulse.memory import StoreMemoryCollector, tune_allocator
from tokenpulse.storage.store import Store


@pytest.mark.skipif("libc.so" not in (ctypes.util.find_library("c") or ""), reason="glibc only")
def test_glibc_takes_the_allocator_settings() -> None:
    assert tune_allocator()


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
