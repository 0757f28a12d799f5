"""File ingest benchmark: `tokenpulse ingest` of an OTLP JSON lines file, end to end into the embedded store.

    python bench/file_ingest.py FILE [--workers 1 2] [--baseline DIR] [--rounds 2]

FILE is what `tokenpulse simulate --output FILE` writes. Each round runs `tokenpulse ingest` on a new data
directory with this tree's code once per --workers count and, with --baseline, right after each of those
with the code in DIR (a checkout of another commit, e.g. `git archive <commit> | tar -x -C DIR`) and the
same worker count, so both see the same machine. Reports,
per run, the spans in the file per wall-clock second (from start to every row stored), the CPU seconds
of the process, and the calls stored; exits non-zero if a run fails or the two trees store different
numbers of calls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def count_spans(path: Path) -> int:
    spans = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                document = json.loads(line)
                for resource_spans in document.get("resourceSpans", []):
                    for scope_spans in resource_spans.get("scopeSpans", []):
                        spans += len(scope_spans.get("spans", []))
    return spans


def run_ingest(tree: Path, path: Path, options: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of it and its workers, calls stored) of one `tokenpulse ingest` with
    the code of ``tree``."""
    with tempfile.TemporaryDirectory(prefix="tokenpulse-file-ingest-") as data:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "tokenpulse.cli", "ingest", *options, "--data", data, str(path)],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"ingest with {tree} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    found = re.search(r"ingested (\d+) calls", result.stdout)
    assert found, result.stdout
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path, help="OTLP JSON lines (tokenpulse simulate --output)")
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="worker counts to run (1)")
    args = parser.parse_args()
    spans = count_spans(args.file)
    print(f"{args.file}: {spans} spans, {args.file.stat().st_size / 1e6:.0f} MB")
    trees = []
    for n in args.workers:  # with --baseline, each worker count alternately with both trees
        trees.append((f"{n} worker(s)", ROOT, ["--workers", str(n)]))
        if args.baseline:
            trees.append((f"base, {n} w.", args.baseline.resolve(), ["--workers", str(n)]))
    stored: set[int] = set()
    for round_number in range(1, args.rounds + 1):
        for name, tree, options in trees:
            wall, cpu, calls = run_ingest(tree, args.file, options)
            stored.add(calls)
            print(
                f"round {round_number} {name:>12}: {spans / wall:8.0f} spans/s  wall {wall:6.1f} s  "
                f"cpu {cpu:6.1f} s  ({spans / cpu:.0f} spans per CPU-second)  {calls} calls stored",
                flush=True,
            )
    if len(stored) > 1:
        print(f"the runs stored different numbers of calls: {sorted(stored)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
