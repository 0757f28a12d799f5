"""kill -9 trials: SIGKILL `tokenpulse serve` at a random point of a load, restart, let the exporters
retry, and check that what is stored is exactly what was acknowledged — nothing lost, nothing twice.

    python bench/kill_trials.py [--trials 10] [--senders 4] [--spans 100] [--max-delay 8] [--seed 1]
                                [--workers 1] [--target daemon|worker|either]

Each trial runs on a fresh data directory: several senders over OTLP/HTTP and OTLP/gRPC; after a
random delay the daemon is killed (mid-request, mid-fsync or mid-insert, wherever it is); it is
restarted (replaying the write-ahead log), every unanswered request is sent again, the daemon is
stopped and the store is read directly. Prints one JSON line per trial and a summary; exits non-zero
if any trial lost or duplicated a span.

With ``--workers N`` the daemon runs `serve --workers N`; ``--target worker`` kills one worker
process instead (the daemon replaces it while the load goes on; the unanswered requests are then sent
again to the same daemon), ``either`` alternates daemon and worker trial by trial.

``--target ingest --file FILE`` kills `tokenpulse ingest --workers N FILE` instead (the process and its
workers, at once), runs it again on the same data directory to the end, and checks that the calls
stored are exactly the calls of the file, each once: the lines the killed run had put in the log are
stored from it (or were stored already), the second run stores only the others.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.daemon import Daemon
from tests.load import Load, stored_calls

AFTER_WORKER_KILL_S = 3.0  # the load goes on this long after a worker is killed


def trial(number: int, data_dir: Path, args: argparse.Namespace, rng: random.Random) -> dict[str, object]:
    data_dir.parent.mkdir(parents=True)
    target = args.target if args.target != "either" else ("daemon", "worker")[number % 2]
    daemon = Daemon(data_dir, workers=args.workers).start()
    load = Load(daemon, senders=args.senders, spans=args.spans, transports=("http", "grpc"))
    load.start()
    delay = rng.uniform(0.2, args.max_delay)
    time.sleep(delay)
    acknowledged_at_kill = len(load.acknowledged)
    started = time.monotonic()
    if target == "worker":
        os.kill(rng.choice(daemon.worker_pids()), signal.SIGKILL)
        time.sleep(AFTER_WORKER_KILL_S)
        load.join()
        restarted = daemon
    else:
        daemon.kill()
        load.join()
        restarted = Daemon(data_dir, workers=args.workers).start()
    unanswered = len(load.unacknowledged)
    restart_seconds = time.monotonic() - started
    load.retry_unacknowledged(restarted)
    restarted.stop()

    stored, rolled_up = stored_calls(data_dir)
    unique = set(stored)
    result = {
        "trial": number,
        "killed": target,
        "kill_after_s": round(delay, 2),
        "acknowledged_before_kill": acknowledged_at_kill,
        "unanswered_requests_retried": unanswered,
        "acknowledged": len(load.acknowledged),
        "stored": len(stored),
        "rolled_up": rolled_up,
        "duplicates": len(stored) - len(unique),
        "lost": len(load.acknowledged - unique),
        "unexpected": len(unique - load.acknowledged),
        "restart_s": round(restart_seconds, 2),  # after a worker kill: the load's time after the kill
    }
    result["ok"] = result["duplicates"] == result["lost"] == result["unexpected"] == 0 and rolled_up == len(
        stored
    )
    return result


def ingest_trial(
    number: int, data_dir: Path, args: argparse.Namespace, rng: random.Random, expected: set[str]
) -> dict[str, object]:
    """Kill `tokenpulse ingest` (and its workers) after a random delay, ingest the file again, compare."""
    data_dir.parent.mkdir(parents=True)
    command = [sys.executable, "-m", "tokenpulse.cli", "ingest", "--workers", str(args.workers),
               "--data", str(data_dir), str(args.file)]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "PYTHONPATH": str(root)}
    killed = subprocess.Popen(
        command, cwd=root, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    delay = rng.uniform(0.5, args.max_delay)
    try:
        killed.wait(delay)
        finished_first = True  # the file was shorter than the delay: nothing was killed
    except subprocess.TimeoutExpired:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        finished_first = False
    stored_at_kill = len(stored_calls(data_dir)[0]) if (data_dir / "chdb").is_dir() else 0
    again = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True, check=False)
    stored, rolled_up = stored_calls(data_dir)
    unique = set(stored)
    result = {
        "trial": number,
        "killed": "ingest" if not finished_first else "nothing (finished first)",
        "kill_after_s": round(delay, 2),
        "stored_before_rerun": stored_at_kill,
        "rerun_exit": again.returncode,
        "expected": len(expected),
        "stored": len(stored),
        "rolled_up": rolled_up,
        "duplicates": len(stored) - len(unique),
        "lost": len(expected - unique),
        "unexpected": len(unique - expected),
    }
    result["ok"] = again.returncode == 0 and result["duplicates"] == result["lost"] == 0 == result[
        "unexpected"
    ] and rolled_up == len(stored)  # fmt: skip
    return result


def _calls_of(path: Path) -> set[str]:
    """The span ids of the calls in an OTLP JSON lines file, as one process normalizes them."""
    from tokenpulse.collector.file_ingest import normalize_line
    from tokenpulse.collector.limits import DEFAULT_LIMITS
    from tokenpulse.collector.normalize import NormalizeConfig
    from tokenpulse.collector.pricing import Pricer

    pricer = Pricer()
    return {
        call["span_id"]
        for line in path.read_bytes().splitlines()
        if line.strip()
        for call in normalize_line(line, NormalizeConfig(), pricer, DEFAULT_LIMITS).calls
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--spans", type=int, default=100, help="spans per request")
    parser.add_argument("--max-delay", type=float, default=8.0, help="latest kill, seconds into the load")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="`serve --workers` (default 1)")
    parser.add_argument(
        "--target", choices=("daemon", "worker", "either", "ingest"), default="daemon", help="what is killed"
    )
    parser.add_argument("--file", type=Path, help="with --target ingest: the OTLP JSON lines file")
    args = parser.parse_args()
    if (args.target == "ingest") != (args.file is not None):
        parser.error("--file goes with --target ingest, and --target ingest needs it")
    expected = _calls_of(args.file) if args.file else set()
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="tokenpulse-kill-") as root:
        for number in range(1, args.trials + 1):
            data_dir = Path(root) / f"trial-{number}" / "data"
            if args.target == "ingest":
                result = ingest_trial(number, data_dir, args, rng, expected)
            else:
                result = trial(number, data_dir, args, rng)
            print(json.dumps(result), flush=True)
            results.append(result)
    summary = {
        "trials": len(results),
        "passed": sum(1 for r in results if r["ok"]),
        "spans_acknowledged": sum(int(r.get("acknowledged", r.get("expected", 0))) for r in results),  # type: ignore[call-overload]
        "spans_lost": sum(int(r["lost"]) for r in results),  # type: ignore[call-overload]
        "spans_duplicated": sum(int(r["duplicates"]) for r in results),  # type: ignore[call-overload]
    }
    print(json.dumps(summary))
    return 0 if summary["passed"] == summary["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
