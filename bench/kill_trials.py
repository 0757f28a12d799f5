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
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
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
        "--target", choices=("daemon", "worker", "either"), default="daemon", help="what is killed"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="tokenpulse-kill-") as root:
        for number in range(1, args.trials + 1):
            result = trial(number, Path(root) / f"trial-{number}" / "data", args, rng)
            print(json.dumps(result), flush=True)
            results.append(result)
    summary = {
        "trials": len(results),
        "passed": sum(1 for r in results if r["ok"]),
        "spans_acknowledged": sum(int(r["acknowledged"]) for r in results),  # type: ignore[call-overload]
        "spans_lost": sum(int(r["lost"]) for r in results),  # type: ignore[call-overload]
        "spans_duplicated": sum(int(r["duplicates"]) for r in results),  # type: ignore[call-overload]
    }
    print(json.dumps(summary))
    return 0 if summary["passed"] == summary["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
