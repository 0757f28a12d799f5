"""Soak: a steady OTLP/HTTP load on `tokenpulse serve` for a long time, sampling the daemon's memory.

    python bench/soak.py [--rate 15500] [--duration 1800] [--senders 4] [--spans 512] [--max-slope 20]

The default rate is half the measured maximum end-to-end throughput (README, Benchmarks: ~31k spans/s
stored); the default duration 30 minutes. Every 10 s it samples the daemon's resident memory (VmRSS),
its anonymous and file-backed parts (the file part is mostly chDB's library mapped in: it levels off), the
embedded store's own memory as the daemon publishes it (tokenpulse_embedded_store_memory_bytes: its
accounting, its caches and its allocator's resident bytes), the write-ahead log backlog and what was
acknowledged. At the end it waits until every acknowledged
span is queryable and reports RSS over time and the RSS slope (least squares, MiB per hour) over the
second half of the run: flat — below ``--max-slope`` — is a pass; so is stored == acknowledged. Exits
non-zero otherwise. RSS moves by tens of MiB between samples (allocator and chDB caches), so only a long
run gives a slope that means something; the medians per quarter show the trend through the noise.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import SENTINEL, stored_calls, template_body
from tests.daemon import Daemon

SAMPLE_SECONDS = 10.0


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and its anonymous (heaps) and file-backed (mapped libraries) parts, in MiB."""
    fields = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file"}
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name = line.split(":", 1)[0] + ":"
        if name in fields:
            found[fields[name]] = int(line.split()[1]) / 1024
    if "rss" not in found:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return found


def rss_mib(pid: int) -> float:
    return memory_mib(pid)["rss"]


def daemon_gauges(daemon: Daemon) -> dict[str, float]:
    """The WAL backlog and the embedded store's memory (bytes, by kind) from the daemon's /metrics."""
    text = httpx.get(f"{daemon.api}/metrics", timeout=30).text
    gauges = {}
    match = re.search(r"^tokenpulse_wal_pending_bytes (\S+)$", text, re.MULTILINE)
    gauges["wal_pending"] = float(match.group(1)) if match else -1.0
    pattern = r'^tokenpulse_embedded_store_memory_bytes\{kind="(\w+)"\} (\S+)$'
    for kind, value in re.findall(pattern, text, re.MULTILINE):
        gauges[f"chdb_{kind}"] = float(value)
    return gauges


def slope_mib_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    variance = sum((t - mean_t) ** 2 for t, _ in samples)
    covariance = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return covariance / variance * 3600 if variance else 0.0


class PacedSenders:
    """``senders`` threads that together send ``rate`` spans/s in requests of ``spans`` spans."""

    def __init__(self, daemon: Daemon, rate: float, senders: int, spans: int) -> None:
        self.daemon = daemon
        self.body = template_body(spans)
        self.spans = spans
        self.interval = senders * spans / rate  # seconds between two requests of one sender
        self.acknowledged = 0
        self.rejected = 0
        self.behind = 0  # requests sent late: the daemon (or this machine) could not keep the pace
        self._counter = iter(range(1, 1 << 62))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(n,)) for n in range(senders)]

    def _send(self, index: int) -> None:
        next_at = time.monotonic() + index * self.interval / len(self._threads)
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -self.interval:
                    with self._lock:
                        self.behind += 1
                next_at = max(next_at + self.interval, time.monotonic() - self.interval)
                with self._lock:
                    prefix = next(self._counter).to_bytes(8, "big")
                response = client.post(
                    f"{self.daemon.otlp_http}/v1/traces",
                    content=self.body.replace(SENTINEL, prefix),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                with self._lock:
                    if response.status_code == 200:
                        self.acknowledged += self.spans
                    else:
                        self.rejected += 1

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=15_500, help="spans/s (default: half of ~31k)")
    parser.add_argument("--duration", type=float, default=1800, help="seconds (default 30 min)")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--spans", type=int, default=512, help="spans per request")
    parser.add_argument("--max-slope", type=float, default=20.0, help="MiB/h over the second half")
    parser.add_argument("--data", type=Path, help="data directory (default: a fresh temporary one)")
    args = parser.parse_args()

    data_dir = args.data or Path(tempfile.mkdtemp(prefix="tokenpulse-soak-")) / "data"
    daemon = Daemon(data_dir).start()
    assert daemon.process is not None
    pid = daemon.process.pid
    load = PacedSenders(daemon, args.rate, args.senders, args.spans)
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    load.start()
    try:
        while (elapsed := time.monotonic() - started) < args.duration:
            memory = memory_mib(pid)
            gauges = daemon_gauges(daemon)
            sample = {
                "t_s": round(elapsed, 1),
                "rss_mib": round(memory["rss"], 1),
                "anon_mib": round(memory.get("anon", -1), 1),
                "file_mib": round(memory.get("file", -1), 1),
                "wal_pending_mib": round(gauges.pop("wal_pending") / 2**20, 2),
                **{f"{kind}_mib": round(value / 2**20, 1) for kind, value in gauges.items()},
                "acknowledged": load.acknowledged,
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            time.sleep(max(0.0, SAMPLE_SECONDS - (time.monotonic() - started - elapsed)))
    finally:
        load.stop()
    load_seconds = time.monotonic() - started
    while (
        stored := stored_calls(daemon)
    ) < load.acknowledged and time.monotonic() - started < load_seconds + 300:
        time.sleep(1)
    final_rss = rss_mib(pid)
    daemon.stop()

    second_half = [s for s in samples if s["t_s"] >= args.duration / 2]
    slope = slope_mib_per_hour([(s["t_s"], s["rss_mib"]) for s in second_half])
    rss = [s["rss_mib"] for s in samples]

    def by_quarter(key: str) -> list[float | None]:
        values = [s[key] for s in samples if key in s]
        return [
            statistics.median(quarter) if quarter else None
            for quarter in (values[i * len(values) // 4 : (i + 1) * len(values) // 4] for i in range(4))
        ]

    def slope_of(key: str) -> float:
        return round(slope_mib_per_hour([(s["t_s"], s[key]) for s in second_half if key in s]), 1)

    result = {
        "duration_s": round(load_seconds, 1),
        "target_spans_per_s": args.rate,
        "achieved_spans_per_s": round(load.acknowledged / load_seconds),
        "requests_rejected": load.rejected,
        "requests_behind_pace": load.behind,
        "acknowledged_spans": load.acknowledged,
        "stored_spans": stored,
        "rss_mib_first": rss[0] if rss else None,
        "rss_mib_min": min(rss, default=None),
        "rss_mib_max": max(rss, default=None),
        "rss_mib_final": round(final_rss, 1),
        # The allocator's sawtooth is tens of MiB: medians per quarter of the run show a trend through it.
        "rss_mib_median_by_quarter": by_quarter("rss_mib"),
        "rss_slope_second_half_mib_per_h": round(slope, 1),
        # Where it is, for the record (the pass criterion is the RSS slope above): heaps vs mapped files,
        # and the embedded store's share of the heaps.
        "anon_mib_median_by_quarter": by_quarter("anon_mib"),
        "anon_slope_second_half_mib_per_h": slope_of("anon_mib"),
        "file_mib_median_by_quarter": by_quarter("file_mib"),
        "chdb_resident_mib_median_by_quarter": by_quarter("chdb_resident_mib"),
        "chdb_tracked_mib_median_by_quarter": by_quarter("chdb_tracked_mib"),
        "chdb_caches_mib_median_by_quarter": by_quarter("chdb_caches_mib"),
        "max_slope_mib_per_h": args.max_slope,
        "flat": abs(slope) < args.max_slope,
        "lossless": stored == load.acknowledged,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["flat"] and result["lossless"] else 1


if __name__ == "__main__":
    sys.exit(main())
