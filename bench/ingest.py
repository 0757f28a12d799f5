"""Ingest benchmark: sustained OTLP/HTTP protobuf load against `tokenpulse serve` on the embedded store.

    python bench/ingest.py [--duration 30] [--senders 4] [--spans 512] [--mixed 0 9] [--workers 1 2]
                           [--rounds 1]

Reports acknowledged spans/s, the time until every acknowledged span is queryable, end-to-end stored
spans/s, request latency p50/p99, the peak RSS (VmHWM) of the daemon and of its workers (and their sum)
and the CPU seconds all of them used, as spans per CPU-second: on a shared machine the honest figure.
The load generator's own CPU (this process's senders) is reported apart: it shares the machine.
Every combination of ``--mixed`` and ``--workers`` runs once per round, alternated, each on a fresh data
directory; one JSON object per run. Exits non-zero on any loss.

``--mixed N`` sends what an instrumented app exports: N non-LLM spans (HTTP server/client, database,
queue) per LLM span, so ``spans_received_per_s`` counts every span and ``stored_spans`` the LLM ones.
To compare with other code in the same run, pass ``--baseline DIR`` (a checkout of another commit, e.g.
``git archive <commit> | tar -x -C DIR``): every combination then runs with this tree and with DIR,
alternately (the daemon runs ``python -m tokenpulse.cli`` from the tree's directory); each object names
its ``tree``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.daemon import Daemon
from tests.otlp_builders import export_request, llm_span, span_with

SENTINEL = b"\xa5TPBENCH"  # the first 8 bytes of every trace id in the template, replaced per request


# What the other instrumentations of an app export next to its LLM calls (attribute sets as the
# OpenTelemetry HTTP, DB and messaging semantic conventions write them).
NON_LLM_SPANS: tuple[tuple[str, dict[str, object]], ...] = (
    (
        "POST /api/chat",
        {
            "http.request.method": "POST",
            "http.route": "/api/chat",
            "url.path": "/api/chat",
            "url.scheme": "https",
            "http.response.status_code": 200,
            "server.address": "app.example.com",
            "server.port": 443,
            "client.address": "10.0.3.17",
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            "network.protocol.version": "1.1",
        },
    ),
    (
        "SELECT orders",
        {
            "db.system": "postgresql",
            "db.namespace": "shop",
            "db.operation.name": "SELECT",
            "db.collection.name": "orders",
            "db.query.text": "SELECT id, status, total FROM orders WHERE customer_id = $1 ORDER BY id DESC",
            "server.address": "db.internal",
            "server.port": 5432,
        },
    ),
    (
        "GET",
        {
            "http.request.method": "GET",
            "url.full": "https://inventory.internal/v2/items?ids=12,13,14",
            "http.response.status_code": 200,
            "server.address": "inventory.internal",
            "server.port": 443,
            "network.peer.address": "10.0.4.2",
        },
    ),
    (
        "jobs publish",
        {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "publish",
            "messaging.destination.name": "jobs",
            "messaging.message.id": "8f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "server.address": "mq.internal",
        },
    ),
    ("redis GET", {"db.system": "redis", "db.operation.name": "GET", "server.address": "cache.internal"}),
)


def non_llm_span(i: int) -> Span:
    """The i-th HTTP/DB/queue span of the mix."""
    name, attributes = NON_LLM_SPANS[i % len(NON_LLM_SPANS)]
    span = span_with(attributes)
    span.name = name
    return span


def template_body(spans: int, mixed: int = 0) -> bytes:
    """One realistic request: ``spans`` OTel GenAI chat spans with route, user and prompt version, each
    followed by ``mixed`` non-LLM spans."""
    built = []
    for i in range(spans):
        span = llm_span(
            **{
                "gen_ai.provider.name": "anthropic" if i % 3 == 0 else "openai",
                "gen_ai.request.model": "claude-sonnet-4-5" if i % 3 == 0 else "gpt-4o",
                "gen_ai.response.model": "claude-sonnet-4-5-20250929" if i % 3 == 0 else "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 2_000 + i,
                "gen_ai.usage.output_tokens": 300 + i % 50,
                "gen_ai.usage.cache_read.input_tokens": 1_500,
                "gen_ai.usage.cache_creation.input_tokens": 100 if i % 3 == 0 else 0,
                "gen_ai.response.time_to_first_chunk": 0.4,
                "gen_ai.response.finish_reasons": "stop",
                "server.address": "api.example.com",
                "tokenpulse.route": f"/route/{i % 8}",
                "tokenpulse.user": f"user-{i % 97}",
                "tokenpulse.prompt.version": "v7",
                "gen_ai.conversation.id": f"conv-{i % 31}",
            }
        )
        span.trace_id = SENTINEL + i.to_bytes(8, "big")
        built.append(span)
        for j in range(mixed):
            other = non_llm_span(i * mixed + j)
            other.trace_id = span.trace_id
            built.append(other)
    body = export_request(*built, service="bench").SerializeToString()
    assert body.count(SENTINEL) == spans * (1 + mixed)
    return body


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_calls(daemon: Daemon) -> int:
    response = httpx.get(
        f"{daemon.api}/api/v1/summary",
        params={"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
        timeout=120,
    )
    response.raise_for_status()
    return response.json()["groups"][0]["calls"]


ROOT = Path(__file__).resolve().parent.parent


def run(
    args: argparse.Namespace, data_dir: Path, workers: int, mixed: int, tree: Path = ROOT
) -> dict[str, object]:
    """One load of ``args.duration`` seconds against a fresh daemon running the code of ``tree``; its
    figures."""
    body = template_body(args.spans, mixed)
    per_request = args.spans * (1 + mixed)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # `python -m` imports from the working directory first: the daemon (and its workers) run ``tree``.
    with contextlib.chdir(tree):
        daemon = Daemon(data_dir.resolve(), workers=workers).start()
    assert daemon.process is not None
    pids = [daemon.process.pid, *daemon.worker_pids()]
    cpu_before = {pid: cpu_seconds(pid) for pid in pids}
    latencies: list[float] = []
    acknowledged = rejected = 0
    counter = iter(range(1, 1 << 62))
    lock = threading.Lock()
    stop_at = time.monotonic() + args.duration

    # The generator shares the machine with the daemon: each request is the template joined around a
    # fresh trace-id prefix (10x cheaper than a replace) and sent with http.client (a third of httpx's
    # CPU a request), so what it uses is left to the daemon.
    parts = body.split(SENTINEL)
    address = urllib.parse.urlsplit(daemon.otlp_http)
    headers = {"Content-Type": "application/x-protobuf"}

    def sender() -> None:
        nonlocal acknowledged, rejected
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        try:
            while time.monotonic() < stop_at:
                with lock:
                    prefix = next(counter).to_bytes(8, "big")
                started = time.perf_counter()
                connection.request("POST", "/v1/traces", body=prefix.join(parts), headers=headers)
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status == 200:
                        acknowledged += args.spans  # LLM spans: what must be stored
                    else:
                        rejected += 1
        finally:
            connection.close()

    load_started = time.monotonic()
    generator_cpu = time.process_time()  # this process: the senders (and nothing else while they run)
    threads = [threading.Thread(target=sender) for _ in range(args.senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load_ended = time.monotonic()
    generator_cpu = time.process_time() - generator_cpu

    while (stored := stored_calls(daemon)) < acknowledged:
        time.sleep(0.2)
    all_stored = time.monotonic()
    pids = [daemon.process.pid, *daemon.worker_pids()]  # a replaced worker would show here
    peaks = [rss_peak_kib(pid) for pid in pids]
    used = [cpu_seconds(pid) - cpu_before.get(pid, 0.0) for pid in pids]
    cpu = sum(used)
    daemon.stop()

    latencies.sort()
    received = acknowledged // args.spans * per_request
    return {
        "tree": "this" if tree == ROOT else str(tree),
        "workers": workers,
        "mixed": mixed,
        "duration_s": round(load_ended - load_started, 2),
        "senders": args.senders,
        "spans_per_request": per_request,
        "llm_spans_per_request": args.spans,
        "requests": len(latencies),
        "spans_received_per_s": round(received / (load_ended - load_started)),
        "requests_rejected": rejected,
        "acknowledged_spans": acknowledged,
        "stored_spans": stored,
        "acknowledged_spans_per_s": round(acknowledged / (load_ended - load_started)),
        "seconds_until_all_queryable": round(all_stored - load_ended, 2),
        "end_to_end_stored_spans_per_s": round(stored / (all_stored - load_started)),
        "request_latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "request_latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "cpu_seconds": round(cpu, 1),  # daemon and workers, from load start until all stored
        "daemon_cpu_seconds": round(used[0], 1),  # with workers: the log, the writer and chDB
        "spans_received_per_cpu_s": round(received / cpu) if cpu else None,
        # The load generator's own CPU while it sent, apart: on a 2-core machine it competes with the
        # daemon, so the throughput above is of what the generator left over.
        "generator_cpu_seconds": round(generator_cpu, 1),
        "generator_cpu_us_per_span": round(generator_cpu / received * 1e6, 2) if received else None,
        "daemon_peak_rss_mib": round(peaks[0] / 1024, 1),
        "workers_peak_rss_mib": [round(peak / 1024, 1) for peak in peaks[1:]],
        "peak_rss_sum_mib": round(sum(peaks) / 1024, 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "cpu_count": os.cpu_count(),
        "ok": stored == acknowledged,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--data", type=Path, help="directory of the runs' data (default: a temporary one)")
    parser.add_argument(
        "--mixed", type=int, nargs="+", default=[0], help="non-LLM spans sent per LLM span (default 0)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="`serve --workers` (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="times each combination runs, alternated")
    parser.add_argument("--baseline", type=Path, help="a checkout of other code, run alternately with this")
    args = parser.parse_args()
    trees = [ROOT, *([args.baseline.resolve()] if args.baseline else [])]

    root = args.data or Path(tempfile.mkdtemp(prefix="tokenpulse-bench-"))
    ok = True
    for round_number in range(args.rounds):
        for mixed in args.mixed:
            for workers in args.workers:
                for n, tree in enumerate(trees):
                    name = f"round-{round_number}-mixed-{mixed}-workers-{workers}-tree-{n}"
                    result = run(args, root / name / "data", workers, mixed, tree)
                    print(json.dumps(result), flush=True)
                    ok = ok and bool(result["ok"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
