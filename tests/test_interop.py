"""The real instrumentation libraries, driving the real openai and anthropic SDKs against fake servers,
exporting over OTLP/HTTP and OTLP/gRPC to a running `tokenpulse serve`: every stored call is exact.

Each (library, transport) runs `tests/interop/driver.py` in its own process, because the instrumentors
monkeypatch the same SDK classes. All drivers export to one daemon; once they have flushed, the daemon is
stopped gracefully (which writes everything acknowledged) and the store is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon
from tests.interop.driver import LIBRARIES, SECRET, TRANSPORTS, scenarios_of, service_name
from tests.interop.expected import mismatches, raised
from tests.interop.scenarios import SCENARIOS
from tokenpulse.collector.pricing import Pricer
from tokenpulse.storage.store import Store

PARALLEL_DRIVERS = 4  # mostly waiting on the fake servers' delays; 2 cores are enough
REPO = Path(__file__).resolve().parent.parent


@dataclass
class DriverRun:
    returncode: int
    output: dict[str, Any]
    stderr: str


@dataclass
class InteropRun:
    drivers: dict[tuple[str, str], DriverRun]
    calls: dict[str, list[dict[str, Any]]]  # service -> stored calls
    parents: dict[str, str]  # agent/tool span id -> its parent's (an agent's calls hang below it)
    daemon_log: str


def _drive(daemon: Daemon, library: str, transport: str) -> DriverRun:
    endpoint = daemon.otlp_http if transport == "http" else f"127.0.0.1:{daemon.grpc_port}"
    done = subprocess.run(
        [sys.executable, "-m", "tests.interop.driver", library, transport, endpoint],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    output = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    return DriverRun(done.returncode, output, done.stderr)


@pytest.fixture(scope="module")
def interop(tmp_path_factory: pytest.TempPathFactory) -> InteropRun:
    daemon = Daemon(tmp_path_factory.mktemp("interop") / "data").start()
    try:
        pairs = [(library, transport) for library in LIBRARIES for transport in TRANSPORTS]
        with ThreadPoolExecutor(PARALLEL_DRIVERS) as pool:
            runs = dict(zip(pairs, pool.map(lambda pair: _drive(daemon, *pair), pairs), strict=True))
    finally:
        assert daemon.stop() == 0, daemon.log()
    store = Store.open(daemon.data_dir)
    try:
        calls: dict[str, list[dict[str, Any]]] = {}
        for row in store.query("SELECT * FROM calls").named_results():
            calls.setdefault(row["service"], []).append(row)
        parents = dict(store.rows("SELECT span_id, parent_span_id FROM tool_spans"))
    finally:
        store.close()
    return InteropRun(runs, calls, parents, daemon.log())


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_call_is_stored_exactly(interop: InteropRun, library: str, transport: str) -> None:
    run = interop.drivers[(library, transport)]
    assert run.returncode == 0, run.stderr[-3000:]
    scenarios = run.output["scenarios"]
    expected_names = set(scenarios_of(library))
    assert set(scenarios) == expected_names and set(run.output["served"]) == expected_names

    stored = interop.calls.get(service_name(library, transport), [])
    scenario_spans = {outcome["parent_span_id"] for outcome in scenarios.values()}
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for call in stored:
        parent = call["parent_span_id"]
        while parent not in scenario_spans and parent in interop.parents:
            parent = interop.parents[parent]
        by_parent.setdefault(parent, []).append(call)
    pricer = Pricer()
    problems = {}
    for name, outcome in scenarios.items():
        calls = by_parent.get(outcome["parent_span_id"], [])
        if len(calls) != 1:
            problems[name] = [f"{len(calls)} stored calls, expected exactly one"]
            continue
        found = mismatches(calls[0], library, SCENARIOS[name], pricer)
        if outcome["raised"] != raised(library, SCENARIOS[name]):
            found.append(f"the app saw {outcome['raised']}, expected {raised(library, SCENARIOS[name])}")
        if found:
            problems[name] = found
    assert not problems, json.dumps(problems, indent=1)
    assert len(stored) == len(scenarios)  # nothing else (HTTP client spans, app spans) became a call
    assert all(SECRET not in json.dumps(call, default=str) for call in stored)  # prompts are never stored
