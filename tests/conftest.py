from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.daemon import Daemon
from tokenpulse.storage.store import Store

# Property tests: "ci" (the default) is bounded and reproducible, so the suite stays fast and a failure
# replays identically; HYPOTHESIS_PROFILE=fuzz runs many more examples by hand.
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("fuzz", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated embedded store; chDB allows one data path per process at a time, so it is closed after."""
    opened = Store.open(tmp_path / "data")
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A running `tokenpulse serve` on the embedded store; stopped (and its store released) after the test."""
    running = Daemon(tmp_path / "data").start()
    yield running
    if running.process and running.process.poll() is None:
        running.kill()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for a module of tests that only talk to it over the network."""
    running = Daemon(tmp_path_factory.mktemp("shared") / "data").start()
    yield running
    if running.process and running.process.poll() is None:
        running.kill()


@pytest.fixture(scope="session")
def simulated_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory filled by the simulator, with alert history (tests/simulated.py); built once per
    session. Tests open it read-only (a daemon on it gets a copy)."""
    from tests.simulated import build

    return build(tmp_path_factory.mktemp("simulated"))
