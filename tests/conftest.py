from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import tokenpulse
from tests.daemon import Daemon
from tokenpulse.storage.store import Store

# Property tests: "ci" (the default) is bounded and reproducible, so the suite stays fast and a failure
# replays identically; HYPOTHESIS_PROFILE=fuzz runs many more examples by hand.
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("fuzz", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    # An editable install builds the compiled modules (setup.py) beside their sources, and Python imports
    # the extension first: one older than its .py would be tested in place of the code being edited.
    package = Path(tokenpulse.__file__).parent
    stale = [
        str(built.relative_to(package))
        for built in package.rglob("*.so")
        if (source := built.with_name(built.name.split(".")[0] + ".py")).exists()
        and source.stat().st_mtime > built.stat().st_mtime
    ]
    if stale:
        raise pytest.UsageError(f"compiled modules older than their source: {stale}; run pip install -e .")


@pytest.fixture(scope="session")
def migrated_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store with every migration applied, made once per session (closed: chDB allows one data
    path per process at a time)."""
    data = tmp_path_factory.mktemp("migrated") / "data"
    opened = Store.open(data)
    opened.migrate()
    opened.close()
    return data


@pytest.fixture
def store(tmp_path: Path, migrated_store_template: Path) -> Iterator[Store]:
    """A migrated embedded store of the test's own; closed after (one data path per process at a time).

    A copy of the session's migrated template: copying and opening takes ~0.2 s, applying the migrations
    1-3 s, and a hundred tests use this fixture. chDB links its tables relative to the store, so the copy
    (links kept) is a store of its own, with its own data path."""
    data = tmp_path / "data"
    shutil.copytree(migrated_store_template, data, symlinks=True)
    opened = Store.open(data)
    assert opened.migrate() == [], "the template has every migration"
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
    session. Tests open it read-only (a daemon on it gets a copy).

    Under pytest-xdist the workers of one run share one build (it takes a minute of CPU): the first to
    get the lock builds it beside the workers' own temporary directories, and each worker reads a copy of
    its own (chDB allows one process per data directory)."""
    from tests.simulated import build

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp("simulated"))
    shared = tmp_path_factory.getbasetemp().parent / "simulated"  # this run's, beside popen-gw0, -gw1...
    shared.mkdir(exist_ok=True)
    with (shared / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / "built").exists():
            build(shared)
            (shared / "built").touch()
    copy = tmp_path_factory.mktemp("simulated") / "data"
    shutil.copytree(shared / "data", copy, symlinks=True)  # chDB links its tables relative to the store
    return copy
