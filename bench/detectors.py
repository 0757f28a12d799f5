"""Detector cycle benchmark: one full live cycle (every detector) over N stored calls spread over 30 days.

    python bench/detectors.py [--calls 10000000] [--days 30] [--tenants 1] [--data DIR] [--cycles 3]
                              [--no-cache] [--profile] [--daemon-allocator] [--baseline DIR --rounds 3]

The calls are generated inside ClickHouse (INSERT ... SELECT FROM numbers()) so the benchmark measures
the detectors, not ingest. Reports the time to fill, and the duration of each cycle: the first reads the
whole history (as after a restart, and every ``history.REFRESH``), later ones only what the live cycle's
cache does not hold (``history.HistoryCache``; ``--no-cache``: the whole history every cycle).
``--profile`` times one more cycle's reads per query and evaluation per detector. The CPU seconds of a
cycle are the process's, the embedded store's query threads included; the part of them its background
merges took meanwhile is given apart (``merge_cpu``): a store's own housekeeping, not the cycle's work.

``--daemon-allocator`` sets glibc's allocator as ``tokenpulse serve`` does (``memory.tune_allocator``: a
fixed 128 KiB mmap threshold, two arenas), where the live cycle runs: every array of 128 KiB or more is
then mapped fresh and faulted in page by page, which costs the cycle system CPU seconds that glibc's
default (a threshold that rises to the largest freed block, up to 32 MiB) mostly saves.

To compare with other code in the same run (a shared machine's load moves between runs), pass
``--baseline DIR`` (a checkout of another commit, e.g. ``git worktree add DIR <commit> --detach``) and
``--rounds N``: each round runs this tree's and DIR's ``bench/detectors.py`` on the same store, one
process at a time, alternately; one JSON object per run (with its ``tree``), then the median of each
tree's later-cycle medians, in seconds and in CPU seconds, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from tokenpulse.detectors import history
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.engine import Engine, floor_minute
from tokenpulse.detectors.service import INGEST_DELAY, DetectorService
from tokenpulse.memory import ARENA_MAX, MMAP_THRESHOLD, tune_allocator
from tokenpulse.storage.store import Store

# Realistic cardinalities: 5 services x 4 routes x 6 models, 2,000 users, sessions, prompt and deploy
# versions, one router; heavy-tailed latency; cache reads and writes; reasoning on one model.
# Columns named: later migrations added columns (served tier, reported cost, ...) the generator leaves
# at their defaults.
CALL_COLUMNS = (
    "time, duration_ms, trace_id, span_id, parent_span_id, service, service_version, environment, provider,"
    " request_model, response_model, operation, input_tokens, output_tokens, cache_read_tokens,"
    " cache_write_tokens, reasoning_tokens, ttft_ms, status, error_type, is_timeout, route, user, session,"
    " prompt_version, router, escalated, cost_usd, price_known, cost_source, dialect, extra, tenant"
)
TOOL_COLUMNS = (
    "time, duration_ms, trace_id, span_id, parent_span_id, service, environment, kind, name, status,"
    " error_type, is_timeout, tenant"
)
FILL_CALLS = (
    f"INSERT INTO calls ({CALL_COLUMNS})"
    + """
SELECT
    toDateTime64({end:DateTime('UTC')}, 9)
        - toIntervalMillisecond(intDiv(number * {span_ms:UInt64}, {calls:UInt64})),
    200 + 3000 * exp(randNormal(0, 0.6)) AS duration_ms,
    hex(sipHash128(number)), hex(sipHash64(number)),
    if(number % 7 = 0, hex(sipHash64(number + 1 + intDiv(number, 7) % 3)), ''),
    concat('service-', toString(number % 5)),
    concat('1.', toString(intDiv(number, {calls:UInt64} / 10))),
    'prod',
    ['openai', 'anthropic', 'openai', 'anthropic', 'gcp.gemini', 'openai'][number % 6 + 1],
    ['gpt-4o', 'claude-sonnet-4-5', 'gpt-4o-mini', 'claude-haiku-4-5', 'gemini-2.5-flash', 'o3']
        [number % 6 + 1] AS model,
    model,
    'chat',
    4000 + number % 3000 AS input_tokens,
    300 + number % 500 AS output_tokens,
    if(number % 10 = 0, 0, 3000) AS cache_read_tokens,
    if(number % 10 = 0, 500, 0) AS cache_write_tokens,
    if(number % 6 = 5, 200, 0),
    duration_ms / 5,
    if(number % 97 = 0, 'error', 'ok'), if(number % 97 = 0, 'TimeoutError', ''), number % 97 = 0,
    concat('/route-', toString(intDiv(number, 5) % 4)),
    concat('user-', toString(sipHash64(number, 1) % 2000)),
    concat('session-', toString(intDiv(number, 8))),
    concat('v', toString(intDiv(number, {calls:UInt64} / 5))),
    if(number % 5 = 0, 'tier-router', ''), number % 25 = 0,
    toDecimal64(0.002 + (number % 100) / 100000, 12), true, 'genai-prices', 'semconv', map(),
    {tenant}
FROM numbers({calls:UInt64})
"""
)

FILL_TOOLS = (
    f"INSERT INTO tool_spans ({TOOL_COLUMNS})"
    + """
SELECT
    toDateTime64({end:DateTime('UTC')}, 9)
        - toIntervalMillisecond(intDiv(number * 7 * {span_ms:UInt64}, {calls:UInt64})),
    500 + rand() % 5000, hex(sipHash128(number * 7)), hex(sipHash64(number * 7 + 1)), '',
    concat('service-', toString(number % 5)), 'prod', 'tool',
    ['search', 'lookup_order', 'run_code'][number % 3 + 1], 'ok', '', false, {tenant}
FROM numbers(intDiv({calls:UInt64}, 7))
"""
)

# Two link spans below every tool (tool -> link 1 -> link 2, as the Vercel AI SDK's ai.generateText or an
# agent's chain sit between a tool and its calls): a third of the calls inside tools hang right below
# the tool, a third below link 1 and a third below link 2 (depth 1, 2 and 3).
FILL_LINKS = (
    f"INSERT INTO tool_spans ({TOOL_COLUMNS})"
    + """
SELECT
    toDateTime64({end:DateTime('UTC')}, 9)
        - toIntervalMillisecond(intDiv(intDiv(number, 2) * 7 * {span_ms:UInt64}, {calls:UInt64})),
    400, hex(sipHash128(intDiv(number, 2) * 7)), hex(sipHash64(intDiv(number, 2) * 7 + 2 + number % 2)),
    hex(sipHash64(intDiv(number, 2) * 7 + 1 + number % 2)),
    concat('service-', toString(intDiv(number, 2) % 5)), 'prod', 'link',
    ['ai.generateText', 'CHAIN'][number % 2 + 1], 'ok', '', false, {tenant}
FROM numbers(intDiv({calls:UInt64}, 7) * 2)
"""
)


def store_arguments(parser: argparse.ArgumentParser) -> None:
    """--calls, --days, --tenants and --data: what filled_store takes."""
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tenants", type=int, default=1, help="spread the calls over N tenants (API keys)")
    parser.add_argument("--data", type=Path, help="data directory (default: a fresh temporary one)")


def filled_store(
    data_dir: Path, calls: int, days: int, end: datetime, tenants: int = 1
) -> tuple[Store, float]:
    """The store in ``data_dir``, migrated and filled with ``calls`` generated calls (and tool and link
    spans) over the ``days`` before ``end``, of ``tenants`` tenants (one: the empty tenant of a daemon
    without keys), unless it already holds calls, its background merges finished (``settle``); and the
    seconds the filling took."""
    store = Store.open(data_dir)
    store.migrate()
    parameters = {"end": end, "span_ms": days * 86_400_000, "calls": calls}
    started = time.perf_counter()
    if not store.rows("SELECT count() FROM calls")[0][0]:
        tenant = f"concat('tenant-', toString(sipHash64(number, 2) % {tenants}))" if tenants > 1 else "''"
        store.client.command(FILL_CALLS.replace("{tenant}", tenant), parameters=parameters)
        store.client.command(FILL_TOOLS.replace("{tenant}", tenant), parameters=parameters)
        store.client.command(FILL_LINKS.replace("{tenant}", tenant), parameters=parameters)
    fill_seconds = time.perf_counter() - started
    settle(store)
    return store, fill_seconds


def settle(store: Store, quiet_seconds: int = 5, timeout: float = 900.0) -> None:
    """Wait until the store has run no merge for ``quiet_seconds`` (at most ``timeout``).

    A filled store merges its parts in the background for a minute or more after the fill. A daemon does
    that once; a benchmark process that exits first leaves the merge to the next one, which starts it
    again, so without waiting every run timed the same unfinished merge beside its cycles (the ten-tenant
    store's eight parts of calls_1m, 185 MB: 2.1-2.4 CPU seconds a later cycle in ``MERGE_THREADS``, more
    than the cycle's own)."""
    started = time.perf_counter()
    quiet = 0
    while quiet < quiet_seconds and time.perf_counter() - started < timeout:
        merging = store.rows("SELECT count() FROM system.merges")[0][0]
        quiet = 0 if merging else quiet + 1
        time.sleep(1)


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    store_arguments(parser)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument(
        "--no-cache", action="store_true", help="read the whole history every cycle, as after a restart"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then time one more cycle: each query's read, each detector"
    )
    parser.add_argument(
        "--daemon-allocator", action="store_true", help="glibc's allocator set as tokenpulse serve sets it"
    )
    parser.add_argument("--baseline", type=Path, help="a checkout of other code, run alternately with this")
    parser.add_argument("--rounds", type=int, default=3, help="with --baseline: runs of each tree")
    args = parser.parse_args()

    if args.daemon_allocator and not args.baseline:
        tune_allocator()  # before the store starts its threads, as serve does
    data_dir = args.data or Path(tempfile.mkdtemp(prefix="tokenpulse-detector-bench-"))
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    if args.baseline:
        filled_store(data_dir, args.calls, args.days, end, args.tenants)[0].close()
        return alternate(args, data_dir)
    store, fill_seconds = filled_store(data_dir, args.calls, args.days, end, args.tenants)
    stored = store.rows("SELECT count() FROM calls")[0][0]
    rollup_rows = store.rows("SELECT count() FROM calls_1m")[0][0]
    tenants = store.rows("SELECT uniqExact(tenant) FROM calls")[0][0]

    # Evaluate as live right after the newest stored call, so every recent window has data.
    newest = store.rows("SELECT max(time) FROM calls")[0][0].replace(tzinfo=UTC)
    service = DetectorService(store, build_detectors(), data_dir / "alerts.json", "")
    if args.no_cache:
        service.engine.cache = None
    durations, cpu, merges = [], [], []
    for cycle in range(args.cycles):
        started, started_cpu, started_merges = time.perf_counter(), time.process_time(), merge_cpu()
        service.cycle(newest + INGEST_DELAY + timedelta(minutes=cycle))
        durations.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        merges.append(merge_cpu() - started_merges)
    result = {
        "stored_calls": stored,
        "days": args.days,
        "tenants": tenants,
        "rollup_rows": rollup_rows,
        "fill_seconds": round(fill_seconds, 1),
        "cache": not args.no_cache,
        "daemon_allocator": args.daemon_allocator,
        # The first cycle reads the whole history (as after a restart, and every REFRESH with the cache).
        "cycle_seconds": [round(d, 2) for d in durations],
        "cycle_seconds_median": round(statistics.median(durations), 2),
        "later_cycles_median": round(statistics.median(durations[1:]), 2) if len(durations) > 1 else None,
        # CPU seconds of the process (the embedded store's threads included) per cycle: what a cycle costs
        # whatever else the machine runs (a loaded machine stretches the wall-clock seconds above).
        "cycle_cpu_seconds": [round(c, 2) for c in cpu],
        "later_cycles_cpu_median": round(statistics.median(cpu[1:]), 2) if len(cpu) > 1 else None,
        # Of those, the store's background merges' (``merge_cpu``): not the cycle's work.
        "cycle_merge_cpu_seconds": [round(m, 2) for m in merges],
        "later_cycles_merge_cpu_median": round(statistics.median(merges[1:]), 2) if len(merges) > 1 else None,
        # The process's peak resident memory (the embedded store's included).
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if args.profile:
        moment = floor_minute(newest + timedelta(minutes=args.cycles))
        result["profile"] = profile(service.engine, store, moment)
    store.close()
    print(json.dumps(result, indent=2))
    return 0


def alternate(args: argparse.Namespace, data_dir: Path) -> int:
    """Run this tree's and the baseline's benchmark on ``data_dir``, alternately, ``args.rounds`` times
    each; print every run, then each tree's median of later-cycle medians."""
    trees = {"this": ROOT, "baseline": args.baseline.resolve()}
    command = [
        *("--data", str(data_dir), "--calls", str(args.calls), "--days", str(args.days)),
        *("--tenants", str(args.tenants), "--cycles", str(args.cycles), *(["--no-cache"] * args.no_cache)),
    ]
    # The daemon's allocator through glibc's environment (the same settings as mallopt): a baseline's
    # benchmark may predate --daemon-allocator.
    environment = dict(os.environ)
    if args.daemon_allocator:
        environment |= {"MALLOC_ARENA_MAX": str(ARENA_MAX), "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    later: dict[str, list[float]] = {name: [] for name in trees}
    later_cpu: dict[str, list[float]] = {name: [] for name in trees}
    later_merges: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            # A benchmark that knows the option sets the allocator itself, as serve does (the cycle then
            # reuses its large buffers: ``memory.large_buffers_reused``); an older one does not know it:
            # glibc's environment sets it for both. Given to the baseline too where it knows it: without
            # it, the baseline's cycle maps every large array fresh and its system time is not serve's.
            knows = "--daemon-allocator" in (tree / "bench" / "detectors.py").read_text()
            own = ["--daemon-allocator"] if args.daemon_allocator and knows else []
            run = subprocess.run(
                [sys.executable, str(tree / "bench" / "detectors.py"), *command, *own],
                cwd=tree, check=True, capture_output=True, text=True, env=environment,
            )  # fmt: skip
            result = {"tree": name, **json.loads(run.stdout), "daemon_allocator": args.daemon_allocator}
            print(json.dumps(result), flush=True)
            # A benchmark older than the later-cycle figures reports only each cycle's seconds.
            cycles = result["cycle_seconds"][1:]
            later[name].append(result.get("later_cycles_median") or statistics.median(cycles))
            if "later_cycles_cpu_median" in result:  # an older benchmark does not measure it
                later_cpu[name].append(result["later_cycles_cpu_median"])
            if "later_cycles_merge_cpu_median" in result:
                later_merges[name].append(result["later_cycles_merge_cpu_median"])
    medians = {name: statistics.median(values) for name, values in later.items()}
    summary = {f"{name}_later_cycles_median": round(value, 2) for name, value in medians.items()}
    summary["this_over_baseline"] = round(medians["this"] / medians["baseline"], 2)
    if all(later_cpu.values()):
        cpu = {name: statistics.median(values) for name, values in later_cpu.items()}
        summary |= {f"{name}_later_cycles_cpu_median": round(value, 2) for name, value in cpu.items()}
        summary["cpu_this_over_baseline"] = round(cpu["this"] / cpu["baseline"], 2)
    for name, values in later_merges.items():
        if values:  # the store's merges beside the cycles (``merge_cpu``): in the CPU seconds above
            summary[f"{name}_later_cycles_merge_cpu_median"] = round(statistics.median(values), 2)
    print(json.dumps(summary))
    return 0


ROOT = Path(__file__).resolve().parent.parent

# The threads of the embedded store's background merges (see ``settle``).
MERGE_THREADS = "MergeMutate"


def merge_cpu(tasks: Path = Path("/proc/self/task")) -> float:
    """The CPU seconds this process's merge threads (``MERGE_THREADS``) have used (Linux's per-thread
    counters; 0 where there are none). A thread that ends between two readings takes its seconds with
    it: the store's merge threads are a pool, kept for the process's life."""
    ticks = 0
    for task in tasks.glob("*"):
        try:
            if (task / "comm").read_text().strip() != MERGE_THREADS:
                continue
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def profile(engine: Engine, store: Store, moment: datetime) -> dict[str, float | dict[str, float]]:
    """One more cycle's parts: the seconds each query's read took, and each detector's evaluation."""
    reads: dict[str, float] = {}
    plain = history.read_ranges

    def timed(store: Store, query: history.Query, ranges: list[tuple[datetime, datetime]]) -> pd.DataFrame:
        started = time.perf_counter()
        try:
            return plain(store, query, ranges)
        finally:
            reads[query.name] = reads.get(query.name, 0.0) + time.perf_counter() - started

    history.read_ranges = timed
    started = time.perf_counter()
    try:
        loaded = engine.load(store, [moment])
    finally:
        history.read_ranges = plain
    load = time.perf_counter() - started
    evaluations = {}
    for detector in engine.detectors:
        started = time.perf_counter()
        detector.assess(loaded, [moment])
        evaluations[detector.name] = time.perf_counter() - started
    return {
        # The whole load: the reads, the cache's checks for late rows and its assembling of frames.
        "load_seconds": round(load, 3),
        "read_seconds": {k: round(v, 3) for k, v in reads.items()},
        "evaluate_seconds": {k: round(v, 3) for k, v in evaluations.items()},
    }


if __name__ == "__main__":
    sys.exit(main())
