"""The daemon's side of ingest, CPU a row: the log append, the writer and chDB's insert (and the merges
that run meanwhile), at a steady offered rate.

    python bench/writer.py [--rows-per-s 60000] [--seconds 6] [--batch-rows 10000 50000] [--rounds 2]
                           [--channel] [--daemon-allocator]

Frames are the write-ahead log frames of bench/ingest.py's 512-call template (each with its own trace
ids), prepared before timing. Each run appends them to a fresh log at ``--rows-per-s`` from one thread,
as the daemon's log server does, with a LogWriter into a fresh embedded store, then waits until every row
is stored. Reported per run: this process's CPU (chDB's threads count) per row from the first append
until all is stored, the wall time, and the peak RSS. The ``--batch-rows`` values alternate within a
round: on a shared machine compare them within one run.

``--channel`` sends the frames from a child process over a worker's channel to the log server
(``workers.LogServer``, `serve --workers N`), 8 in flight; the child's CPU is not counted.
``--daemon-allocator`` sets glibc's allocator as `tokenpulse serve` does (``memory.tune_allocator``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest as ingest_bench  # bench/ingest.py: the request template

from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector.limits import DEFAULT_LIMITS
from tokenpulse.collector.otlp import PROTOBUF, decode_request
from tokenpulse.collector.pipeline import LocalRequestLog, prepare_request
from tokenpulse.collector.pricing import Pricer
from tokenpulse.config import Settings
from tokenpulse.memory import tune_allocator
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter
from tokenpulse.workers import LogServer, RemoteRequestLog, WorkerMetrics

CALLS_PER_FRAME = 512
SENDERS = 8  # a worker's requests in flight at once


def frames(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` (frame, request digest) pairs of the template, each request with its own trace ids."""
    settings = Settings()
    pricer = Pricer(settings.prices, settings.price_tiers)
    template = ingest_bench.template_body(CALLS_PER_FRAME)
    made = []
    for number in range(1, count + 1):
        body = template.replace(ingest_bench.SENTINEL, number.to_bytes(8, "big"))
        prepared = prepare_request(
            decode_request(body, PROTOBUF), body, settings.normalize, pricer, DEFAULT_LIMITS
        )
        made.append((prepared.frame, prepared.digest))
    return made


def _send(conn: Connection, prepared: list[tuple[bytes, bytes]], rows_per_s: int) -> None:
    """A worker's side of the channel (in a child process): append ``prepared`` at ``rows_per_s``,
    SENDERS requests in flight at most, as a worker's request threads do; send the last end back."""
    conn.recv_bytes()  # the daemon's side is ready: start
    remote = RemoteRequestLog(conn)
    remote.start()
    started = time.monotonic()
    interval = CALLS_PER_FRAME / rows_per_s

    def append(number: int) -> int:
        _pace(started + number * interval)
        frame, digest = prepared[number]
        return remote.append(frame, digest) or 0

    with ThreadPoolExecutor(SENDERS) as pool:
        end = max(pool.map(append, range(len(prepared))))
    remote.send(("metrics", 0, end))  # the log server hands it to _LastEnd


def _pace(due: float) -> None:
    """Sleep until ``due`` (time.monotonic): the offered rate's next frame."""
    wait = due - time.monotonic()
    if wait > 0:
        time.sleep(wait)


class _LastEnd(WorkerMetrics):
    """Where the log server hands a worker's metrics: here the sender's last end, once it is done."""

    def __init__(self) -> None:
        super().__init__()
        self.done = threading.Event()
        self.end = 0

    def update(self, slot: int, families: Any) -> None:
        self.end = families
        self.done.set()


def run(
    prepared: list[tuple[bytes, bytes]], rows_per_s: int, batch_rows: int, channel: bool = False
) -> dict[str, object]:
    """Append ``prepared`` at ``rows_per_s`` into a fresh log and store; the figures of the run.

    ``channel``: the frames come from a child process over a worker's channel (``workers.LogServer``),
    as with `serve --workers N`; the child's CPU is not counted."""
    sender: multiprocessing.process.BaseProcess | None = None
    if channel:  # forked before the store starts its threads
        ours, theirs = multiprocessing.Pipe()
        sender = multiprocessing.get_context("fork").Process(
            target=_send, args=(theirs, prepared, rows_per_s)
        )
        sender.start()
        theirs.close()
    with tempfile.TemporaryDirectory(prefix="tokenpulse-bench-writer-") as directory:
        store = Store.open(Path(directory))
        store.migrate()
        wal = WriteAheadLog(Path(directory) / "wal")
        log = LocalRequestLog(wal)
        writer = LogWriter(wal, store, batch_rows=batch_rows)
        writer.start()
        cpu, started = time.process_time(), time.monotonic()
        interval = CALLS_PER_FRAME / rows_per_s
        end = 0
        if sender is not None:
            last = _LastEnd()
            server = LogServer(log, last)
            server.serve(0, ours)
            ours.send_bytes(b"go")
            last.done.wait()
            end = last.end
        else:
            for number, (frame, digest) in enumerate(prepared):
                _pace(started + number * interval)
                end = log.append(frame, digest) or end
        stored_in_time = writer.wait_stored(end, 600)
        cpu, wall = time.process_time() - cpu, time.monotonic() - started
        stored = store.rows("SELECT count() FROM calls")[0][0]
        writer.stop()
        store.close()
    rows = len(prepared) * CALLS_PER_FRAME
    if sender is not None:
        sender.join()
    return {
        "channel": channel,
        "batch_rows": batch_rows,
        "rows": rows,
        "cpu_us_per_row": round(cpu / rows * 1e6, 2),
        "wall_s": round(wall, 1),
        "offered_s": round(rows / rows_per_s, 1),
        "peak_rss_mib": _peak_rss_mib(),  # of the process so far: the largest batch size run yet
        "ok": stored_in_time and stored == rows,
    }


def _peak_rss_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows-per-s", type=int, default=60_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch-rows", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--channel",
        action="store_true",
        help="the frames come from another process over a worker's channel (serve --workers N)",
    )
    parser.add_argument(
        "--daemon-allocator",
        action="store_true",
        help="glibc's allocator set as tokenpulse serve sets it (buffers of 128 KiB and more mapped fresh)",
    )
    args = parser.parse_args()
    if args.daemon_allocator:
        tune_allocator()  # before the store and the writer start their threads, as serve does
    prepared = frames(max(1, int(args.rows_per_s * args.seconds / CALLS_PER_FRAME)))
    ok = True
    for _ in range(args.rounds):
        for batch_rows in args.batch_rows:
            result = run(prepared, args.rows_per_s, batch_rows, args.channel)
            print(json.dumps(result), flush=True)
            ok = ok and bool(result["ok"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
