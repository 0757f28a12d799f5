"""Real-traffic replay: one hour of two production LLM services through ``ingest`` + ``backtest``.

    python bench/replay.py --mode real
    python bench/replay.py --mode stretched --factor 24
    python bench/replay.py --mode tiled --days 2
    python bench/replay.py --mode tiled --days 2 --keep /tmp/replay-tiled   # keep file, store, outputs

The trace (``../shared/traces/azure-llm-inference-2023/``, see its README) is Azure's LLM inference
fleet over one hour (2023-11-16 ~18:15-19:15 UTC): per request only TIMESTAMP, ContextTokens and
GeneratedTokens, for a code assistant (8,819 requests) and a conversation service (19,366). It carries
no incident: it is the noise floor the detectors must stay quiet on. Each row becomes one ``chat`` LLM
call span, built by the simulator's emitter (``tokenpulse.simulate.emit``: real OTel SDK spans, OTLP JSON
lines as ``tokenpulse ingest`` reads); the emitter's HTTP server root span is dropped from the file (the
detectors read call spans only, and it halves the ingest).
The file is ingested into a fresh embedded store, the detectors are backtested over the last part of
the replay (``--coverage``), and the script reports what fired, the coverage per detector, and the
raw trace around every alert (calls a minute, context and generated tokens) so each alert can be
judged against the trace itself.

Modes (real timestamps keep their inter-arrival times and bursts; only the mapping differs):

- ``real``: the hour as it was. The detectors have no history, so they are mostly learning.
- ``stretched --factor N``: trace time stretched N x around its start, so the hour becomes N hours and
  baselines exist. Stretching stretches the bursts too: a 1-minute burst of 500 calls becomes N minutes
  at 500/N a minute, and a 3-minute silence becomes 3N minutes; rates fall N-fold.
- ``tiled --days D``: each service's hour repeated back to back, bursts at real speed, to make D days of
  history. A service's tile period is its own span (first to last request) plus its mean inter-arrival
  time, so a seam looks like an ordinary gap; the two services' periods differ (57.3 and 58.4 min), so
  "this time yesterday" is a different minute of the hour for each. The first tile goes through the
  emitter; the others are its spans shifted in time (same latencies: emitting 1.4M spans through the
  SDK would take half an hour on the bench machine). Two days are 1.4M calls: by default they are
  handed as protobuf requests to the ingest command's own pipeline in process (``--ingest pipeline``:
  ``Runtime.pipeline.ingest``, then wait until stored), because the CLI's OTLP/JSON decoding costs
  ~0.5 ms of CPU per span (measured: 20 lines of 512 spans, 2.7 s), an hour on the shared 2 cores.

Assumptions the trace does not carry (also printed with every report):

- services ``azure-code`` (route ``/v1/complete``) and ``azure-conv`` (route ``/v1/chat``), one route
  each, environment ``prod``, one deploy version, no users, sessions or prompt versions;
- model ``gpt-4o`` (response ``gpt-4o-2024-08-06``) on ``openai`` for both, priced by genai-prices;
- input tokens = ContextTokens, output tokens = GeneratedTokens, no reasoning tokens, no cache reads
  (the cache detectors see services that never cached: not applicable), every call streamed and
  successful (finish reason ``stop``; no errors, no timeouts);
- TTFT = (0.2 s + ContextTokens / 20,000 tokens/s) x lognormal(sigma 0.2); duration = TTFT +
  GeneratedTokens x 12 ms x lognormal(sigma 0.1) (gpt-4o class: ~80 tokens/s decoding, prefill
  ~20k tokens/s); noise from ``--seed``; latency does not depend on load (bursts do not queue);
- the replay is shifted by whole days so the clock time of day is the trace's (18:15 UTC) and it
  ends before now (raw rows older than the 90-day retention would be dropped), unless ``--start-day``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from tokenpulse.simulate.emit import JsonLinesExporter, emit  # noqa: E402
from tokenpulse.simulate.spec import LlmCall, Turn  # noqa: E402

TRACE_DIR = ROOT.parent / "shared" / "traces" / "azure-llm-inference-2023"
NS = 1_000_000_000
MINUTE_NS = 60 * NS
DAY = timedelta(days=1)
SERVER = 2  # OTLP span kind

MODEL, RESPONSE_MODEL, PROVIDER = "gpt-4o", "gpt-4o-2024-08-06", "openai"
SERVICE_VERSION = "2023.11.16"
TTFT_BASE_S = 0.2
PREFILL_TOKENS_PER_S = 20_000.0
TTFT_SIGMA = 0.2
DECODE_S_PER_TOKEN = 0.012
DECODE_SIGMA = 0.1


@dataclass(frozen=True)
class Service:
    """One service of the trace and what the replay assumes about it."""

    name: str
    route: str
    csv: str


SERVICES = (
    Service("azure-code", "/v1/complete", "AzureLLMInferenceTrace_code.csv"),
    Service("azure-conv", "/v1/chat", "AzureLLMInferenceTrace_conv.csv"),
)


def assumptions(prefill_tokens_per_s: float) -> tuple[str, ...]:
    """What the replay adds to the trace, one line each."""
    return (
        "services azure-code (route /v1/complete) and azure-conv (route /v1/chat), one route each, "
        "one deploy version, no users, sessions or prompt versions",
        f"model {MODEL} ({RESPONSE_MODEL}) on {PROVIDER} for both services, priced by genai-prices",
        "input = ContextTokens, output = GeneratedTokens; no reasoning, no cache reads or writes; every call "
        "streamed and successful (finish reason stop; no errors, no timeouts)",
        f"TTFT = ({TTFT_BASE_S} s + context / {prefill_tokens_per_s:,.0f} tokens/s) x lognormal(sigma "
        f"{TTFT_SIGMA}); duration = TTFT + generated x {DECODE_S_PER_TOKEN * 1000:.0f} ms x lognormal(sigma "
        f"{DECODE_SIGMA}); latency independent of load (bursts do not queue)",
        "clock time of day kept (shifted by whole days); calls count in the minute they end",
    )


@dataclass
class Trace:
    """One service's rows: request times (Unix ns), context and generated tokens."""

    service: Service
    ns: np.ndarray
    context: np.ndarray
    generated: np.ndarray


@dataclass
class Replay:
    """One service's replayed calls: start times (Unix ns), tokens, latencies, and the trace time of each."""

    service: Service
    start_ns: np.ndarray
    tile: np.ndarray  # which repetition of the hour (0 unless tiled)
    trace_ns: np.ndarray
    context: np.ndarray
    generated: np.ndarray
    ttft_s: np.ndarray
    duration_s: np.ndarray

    @property
    def end_ns(self) -> np.ndarray:
        return self.start_ns + np.round(self.duration_s * NS).astype(np.int64)


def load_traces(directory: Path = TRACE_DIR) -> list[Trace]:
    """Both services' CSVs, in time order."""
    traces = []
    for service in SERVICES:
        frame = pd.read_csv(directory / service.csv)
        ns = pd.to_datetime(frame["TIMESTAMP"], utc=True).astype("int64").to_numpy()
        order = np.argsort(ns, kind="stable")
        traces.append(
            Trace(
                service,
                ns[order],
                frame["ContextTokens"].to_numpy(np.int64)[order],
                frame["GeneratedTokens"].to_numpy(np.int64)[order],
            )
        )
    return traces


def lay_out(
    traces: list[Trace],
    mode: str,
    factor: float,
    days: int,
    shift_ns: int,
    seed: int,
    prefill_tokens_per_s: float = PREFILL_TOKENS_PER_S,
) -> tuple[list[Replay], dict[str, int], int]:
    """Map every trace row to its replay start time(s) under ``mode`` and draw its latencies. Also
    returns each service's tile period and the number of tiles (1 unless tiled)."""
    rng = np.random.default_rng(seed)
    origin = min(int(t.ns[0]) for t in traces)
    end = origin + shift_ns + days * 86_400 * NS  # tiled: where the last tile is cut
    replays, periods, tiles = [], {}, 1
    for trace in traces:
        source = np.arange(len(trace.ns))
        ttft = (TTFT_BASE_S + trace.context / prefill_tokens_per_s) * rng.lognormal(
            0.0, TTFT_SIGMA, len(source)
        )
        decode = trace.generated * DECODE_S_PER_TOKEN * rng.lognormal(0.0, DECODE_SIGMA, len(source))
        starts, tile = trace.ns + shift_ns, np.zeros(len(source), dtype=np.int64)
        span = int(trace.ns[-1] - trace.ns[0])
        periods[trace.service.name] = span + span // max(len(trace.ns) - 1, 1)  # + a mean inter-arrival
        if mode == "stretched":
            starts = origin + shift_ns + np.round((trace.ns - origin) * factor).astype(np.int64)
        elif mode == "tiled":  # this service's hour back to back, cut ``days`` days after the trace's start
            period = periods[trace.service.name]
            count = math.ceil((end - (int(trace.ns[0]) + shift_ns)) / period)
            tiles = max(tiles, count)
            tile = np.repeat(np.arange(count), len(source))
            starts = np.tile(starts, count) + period * tile
            source = np.tile(source, count)
            keep = starts < end
            starts, source, tile = starts[keep], source[keep], tile[keep]
        replays.append(
            Replay(trace.service, starts, tile, trace.ns[source], trace.context[source],
                   trace.generated[source], ttft[source], (ttft + decode)[source])
        )  # fmt: skip
    return replays, periods, tiles


def tile_file(template: Path, out: Path, periods: dict[str, int], tiles: int, end_ns: int | None) -> int:
    """Write ``template`` (OTLP JSON lines of the first tile) ``tiles`` times into ``out``, each service's
    spans shifted by its period per tile, with a trace id per tile, dropping the HTTP server spans (the
    detectors read the LLM call spans; it halves the ingest) and spans starting at ``end_ns`` or later.
    Returns the spans written."""
    documents = [json.loads(line) for line in _lines(template)]
    written = 0
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=3) as f:
        for tile in range(tiles):
            for document in documents:
                resources = []
                for resource_spans in document["resourceSpans"]:
                    service = next(
                        a["value"]["stringValue"]
                        for a in resource_spans["resource"]["attributes"]
                        if a["key"] == "service.name"
                    )
                    offset = periods[service] * tile
                    scopes = []
                    for scope_spans in resource_spans["scopeSpans"]:
                        spans = [
                            {**span, "traceId": f"{tile + 1:016x}{span['traceId'][16:]}",
                             "startTimeUnixNano": str(int(span["startTimeUnixNano"]) + offset),
                             "endTimeUnixNano": str(int(span["endTimeUnixNano"]) + offset)}
                            for span in scope_spans["spans"]
                            if span.get("kind") != SERVER
                            and (end_ns is None or int(span["startTimeUnixNano"]) + offset < end_ns)
                        ]  # fmt: skip
                        if spans:
                            scopes.append({**scope_spans, "spans": spans})
                            written += len(spans)
                    if scopes:
                        resources.append({**resource_spans, "scopeSpans": scopes})
                if resources:
                    f.write(json.dumps({"resourceSpans": resources}, separators=(",", ":")))
                    f.write("\n")
    return written


def _lines(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        yield from (line for line in f if line.strip())


def turns(replays: list[Replay]) -> Iterator[Turn]:
    """One trace (HTTP server span + one ``chat`` span) per replayed call of the first tile, all services
    in start order (``tile_file`` repeats them)."""
    which = np.concatenate([np.full(int((r.tile == 0).sum()), i) for i, r in enumerate(replays)])
    index = np.concatenate([np.flatnonzero(r.tile == 0) for r in replays])
    starts = np.concatenate([r.start_ns[r.tile == 0] for r in replays])
    ends = [r.end_ns for r in replays]
    for number, position in enumerate(np.argsort(starts, kind="stable")):
        replay, row = replays[which[position]], int(index[position])
        start, end = int(replay.start_ns[row]), int(ends[which[position]][row])
        root, span = 2 * number + 1, 2 * number + 2
        service = replay.service
        call = LlmCall(
            span_id=span, parent_id=root, start_ns=start, end_ns=end, provider=PROVIDER,
            request_model=MODEL, response_model=RESPONSE_MODEL,
            input_tokens=int(replay.context[row]), output_tokens=int(replay.generated[row]),
            cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
            ttft_s=float(replay.ttft_s[row]), finish_reason="stop", error_type=None,
            route=service.route, user="", session="", prompt_version="",
        )  # fmt: skip
        yield Turn(
            trace_id=(1 << 64) | (number + 1), span_id=root, start_ns=start, end_ns=end + 1_000_000,
            service=service.name, service_version=SERVICE_VERSION, route=service.route, http_status=200,
            calls=(call,),
        )  # fmt: skip


class _Requests(SpanExporter):
    """Keeps the emitter's batches as OTLP requests, without the HTTP server spans."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        calls = [span for span in spans if span.kind is not SpanKind.SERVER]
        if calls:
            self.requests.append(encode_spans(calls))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def tiled_requests(
    template: list[ExportTraceServiceRequest], periods: dict[str, int], tiles: int, end_ns: int
) -> Iterator[ExportTraceServiceRequest]:
    """``tile_file`` on protobuf requests: ``template`` repeated ``tiles`` times, each service's spans
    shifted by its period per tile, a trace id per tile, spans starting at ``end_ns`` or later dropped."""
    for tile in range(tiles):
        for original in template:
            request = ExportTraceServiceRequest()
            request.CopyFrom(original)
            for resource_spans in request.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                )
                offset = periods[service] * tile
                for scope_spans in resource_spans.scope_spans:
                    late = []
                    for position, span in enumerate(scope_spans.spans):
                        span.start_time_unix_nano += offset
                        span.end_time_unix_nano += offset
                        span.trace_id = (tile + 1).to_bytes(8, "big") + span.trace_id[8:]
                        if span.start_time_unix_nano >= end_ns:
                            late.append(position)
                    for position in reversed(late):
                        del scope_spans.spans[position]
            yield request


def ingest_in_process(data: Path, requests: Iterable[ExportTraceServiceRequest]) -> str:
    """What ``tokenpulse ingest`` does with each line once decoded (``Runtime.pipeline.ingest``, then wait
    until stored), on protobuf requests: the CLI's OTLP/JSON decoding costs ~0.5 ms of CPU per span."""
    from tokenpulse.buffer.wal import WalFull
    from tokenpulse.collector.pipeline import request_digest
    from tokenpulse.config import load_settings
    from tokenpulse.runtime import Runtime

    runtime = Runtime.open(load_settings(None, data_dir=data, clickhouse_url=None))
    calls = rejected = last_offset = 0
    try:
        for request in requests:
            body = request.SerializeToString()
            while True:
                try:
                    result = runtime.pipeline.ingest(request, "file", request_digest(body))
                    break
                except WalFull:  # the writer is behind: wait for it, as an exporter would retry
                    time.sleep(1.0)
            calls, rejected = calls + result.calls, rejected + result.rejected
            last_offset = max(last_offset, result.wal_end)
        if not runtime.writer.wait_stored(last_offset, timeout=1800):
            raise SystemExit("timed out writing to storage")
    finally:
        runtime.close()
    return f"ingested {calls} calls in process (rejected {rejected} spans)"


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``tokenpulse`` from this source tree."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", *arguments],
        capture_output=True, text=True, check=True, cwd=ROOT, env=environment,
    )  # fmt: skip


def iso(ns: int | float) -> str:
    return datetime.fromtimestamp(ns / NS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_shift(traces: list[Trace], length: timedelta, start_day: str | None) -> int:
    """Whole days (in ns) that move the trace's start to ``start_day``, or to the latest day on which the
    replay of ``length`` ends before now."""
    origin = datetime.fromtimestamp(min(int(t.ns[0]) for t in traces) / NS, UTC)
    if start_day is not None:
        day = datetime.fromisoformat(start_day).replace(tzinfo=UTC).date()
    else:
        day = (datetime.now(UTC) - length - timedelta(hours=1)).date()
        if datetime.combine(day, origin.timetz()) + length > datetime.now(UTC):
            day -= timedelta(days=1)
    days = (day - origin.date()).days
    return days * 86_400 * NS


def window_stats(replays: list[Replay], service: str, start_ns: int, end_ns: int) -> dict[str, float]:
    """The raw trace's calls and tokens of ``service`` whose replayed start is in [start, end)."""
    replay = next(r for r in replays if r.service.name == service)
    mask = (replay.start_ns >= start_ns) & (replay.start_ns < end_ns)
    minutes = (end_ns - start_ns) / MINUTE_NS
    context, generated = replay.context[mask], replay.generated[mask]
    if not mask.any():
        return {"calls": 0, "calls_per_min": 0.0}
    return {
        "calls": int(mask.sum()),
        "calls_per_min": mask.sum() / minutes,
        "context_mean": float(context.mean()),
        "context_p50": float(np.median(context)),
        "context_p99": float(np.percentile(context, 99)),
        "generated_mean": float(generated.mean()),
        "generated_p99": float(np.percentile(generated, 99)),
        "ttft_p99_ms": float(np.percentile(replay.ttft_s[mask], 99) * 1000),
        "trace_from": iso(int(replay.trace_ns[mask].min())),
        "trace_to": iso(int(replay.trace_ns[mask].max())),
    }


def per_minute(replays: list[Replay], service: str, start_ns: int, end_ns: int) -> list[int]:
    """Calls of ``service`` starting in each replay minute of [start, end)."""
    replay = next(r for r in replays if r.service.name == service)
    edges = np.arange(start_ns, end_ns + 1, MINUTE_NS)
    return np.histogram(replay.start_ns, bins=edges)[0].tolist()


def describe_stats(label: str, s: dict[str, float]) -> str:
    if not s["calls"]:
        return f"{label}: no calls"
    return (
        f"{label}: {s['calls']} calls ({s['calls_per_min']:.1f}/min), context mean {s['context_mean']:.0f} "
        f"p50 {s['context_p50']:.0f} p99 {s['context_p99']:.0f}, generated mean {s['generated_mean']:.0f} "
        f"p99 {s['generated_p99']:.0f}, TTFT p99 {s['ttft_p99_ms']:.0f} ms (trace {s['trace_from']}.."
        f"{s['trace_to']})"
    )


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Build, ingest, backtest and report one mode."""
    traces = load_traces(args.traces)
    trace_span = timedelta(
        microseconds=(max(int(t.ns[-1]) for t in traces) - min(int(t.ns[0]) for t in traces)) / 1000
    )
    length = {"real": trace_span, "stretched": trace_span * args.factor, "tiled": args.days * DAY}[args.mode]
    shift = default_shift(traces, length, args.start_day)
    replays, periods, tiles = lay_out(
        traces, args.mode, args.factor, args.days, shift, args.seed, args.prefill_tokens_per_s
    )
    first = min(int(r.start_ns.min()) for r in replays)
    last_end = max(int(r.end_ns.max()) for r in replays)

    data = work / f"data-{args.mode}"
    expected = sum(len(r.start_ns) for r in replays)
    cut = first + args.days * 86_400 * NS if args.mode == "tiled" else None
    began = time.perf_counter()
    if args.ingest == "pipeline":
        exporter = _Requests()
        emit(turns(replays), exporter)
        emitted = time.perf_counter() - began
        calls = expected
        print(f"emitted the first tile in {emitted:.0f} s", file=sys.stderr)
        began = time.perf_counter()
        ingested = ingest_in_process(
            data, tiled_requests(exporter.requests, periods, tiles, cut or np.iinfo(np.int64).max)
        )
    else:
        template, path = work / "first-tile.jsonl.gz", work / f"replay-{args.mode}.jsonl.gz"
        emit(turns(replays), JsonLinesExporter(template))
        calls = tile_file(template, path, periods, tiles, cut)
        template.unlink()
        emitted = time.perf_counter() - began
        if calls != expected:
            raise SystemExit(f"wrote {calls} call spans, expected {expected}")
        print(f"wrote {calls} call spans ({tiles} tiles) to {path} in {emitted:.0f} s", file=sys.stderr)
        began = time.perf_counter()
        ingested = cli("ingest", "--data", str(data), str(path)).stdout.strip().splitlines()[-1]
    ingest_s = time.perf_counter() - began
    print(f"{ingested} in {ingest_s:.0f} s", file=sys.stderr)
    if f"ingested {expected} calls" not in ingested:
        raise SystemExit(f"expected {expected} calls to be ingested: {ingested}")

    end = datetime.fromtimestamp(last_end / NS, UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    if args.last is not None:
        start = end - timedelta(hours=args.last)
    elif args.mode == "real":
        start = datetime.fromtimestamp(first / NS, UTC).replace(second=0, microsecond=0)
    elif args.mode == "stretched":
        start = end - length / 2
    else:
        start = end - DAY
    start = start.replace(second=0, microsecond=0)
    began = time.perf_counter()
    backtest = cli(
        "backtest", "--data", str(data), "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--end", end.strftime("%Y-%m-%dT%H:%M:%SZ"), "--coverage",
    )  # fmt: skip
    backtest_s = time.perf_counter() - began
    transitions, coverage = [], []
    for line in backtest.stdout.splitlines():
        document = json.loads(line)
        (coverage if "coverage" in document else transitions).append(document.get("coverage", document))
    (work / f"backtest-{args.mode}.jsonl").write_text(backtest.stdout)
    return {
        "replays": replays,
        "first": first,
        "last_end": last_end,
        "calls": calls,
        "tiles": tiles,
        "periods": periods,
        "emit_s": emitted,
        "ingested": ingested,
        "ingest_s": ingest_s,
        "start": start,
        "end": end,
        "backtest_s": backtest_s,
        "transitions": transitions,
        "coverage": coverage,
        "coverage_totals": backtest.stderr.strip(),
    }


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Print what fired, with the raw trace around it, and the coverage."""
    replays: list[Replay] = result["replays"]
    mode = {
        "real": "real (the hour as is)",
        "stretched": f"stretched x{args.factor:g} (bursts stretched too: rates / {args.factor:g})",
        "tiled": f"tiled, {args.days} days (the hour back to back, bursts at real speed)",
    }[args.mode]
    print(f"# replay: {mode}, seed {args.seed}")
    print("assumptions (not in the trace):")
    for line in assumptions(args.prefill_tokens_per_s):
        print(f"  - {line}")
    print(
        f"replayed {iso(result['first'])} .. {iso(result['last_end'])}: {result['calls']} call spans "
        f"({result['tiles']} tiles) emitted in {result['emit_s']:.0f} s; {result['ingested']} "
        f"in {result['ingest_s']:.0f} s"
    )
    print(
        f"backtest {result['start']:%Y-%m-%dT%H:%M}Z .. {result['end']:%Y-%m-%dT%H:%M}Z (1-minute steps) in "
        f"{result['backtest_s']:.0f} s"
    )
    for replay in replays:
        s = window_stats(replays, replay.service.name, result["first"], result["last_end"] + 1)
        print("  " + describe_stats(f"whole replay {replay.service.name}", s))
    transitions = result["transitions"]
    fired = [t for t in transitions if t["status"] == "firing"]
    counts = Counter((t["detector"], t["severity"]) for t in fired)
    print(f"alerts fired: {len(fired)}" + "".join(f"; {d} {s}: {n}" for (d, s), n in sorted(counts.items())))
    for t in transitions:
        print(
            f"- {t['at']} {t['status']} {t['detector']} {t['severity']} {t['scope']}: {t['summary']} "
            f"(value {t['value']}, threshold {t['threshold']}, baseline {t['baseline']}, "
            f"since {t['started_at']})"
        )
        if t["status"] != "firing" or "service" not in t["scope"]:
            continue
        service = t["scope"]["service"]
        at = int(datetime.fromisoformat(t["at"].replace("Z", "+00:00")).timestamp()) * NS
        since = int(datetime.fromisoformat(t["started_at"].replace("Z", "+00:00")).timestamp()) * NS
        window = max(at - since, 15 * MINUTE_NS)
        print("    " + describe_stats(f"trace in the {window / MINUTE_NS:.0f} min before", window_stats(
            replays, service, at - window, at)))  # fmt: skip
        print("    " + describe_stats("trace in the hour before that", window_stats(
            replays, service, at - window - 60 * MINUTE_NS, at - window)))  # fmt: skip
        print(f"    calls a minute, last 20 min: {per_minute(replays, service, at - 20 * MINUTE_NS, at)}")
    print("coverage totals (backtest stderr):")
    for line in result["coverage_totals"].splitlines():
        print(f"  {line.strip()}")
    notes = Counter((c["detector"], c["status"], c["note"]) for c in result["coverage"])
    print("coverage notes:")
    for (detector, status, note), n in sorted(notes.items()):
        print(f"  {detector} {status} x{n}: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("real", "stretched", "tiled"), default="real")
    parser.add_argument("--factor", type=float, default=24.0, help="stretched: time stretch (default 24)")
    parser.add_argument("--days", type=int, default=2, help="tiled: days of repeated hours (default 2)")
    parser.add_argument(
        "--prefill-tokens-per-s", type=float, default=PREFILL_TOKENS_PER_S,
        help=f"assumed prefill speed in the TTFT model (default {PREFILL_TOKENS_PER_S:,.0f})",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="latency noise seed (default 1)")
    parser.add_argument(
        "--last", type=float,
        help="backtest the last H hours (default: real the whole hour, stretched the second half, "
             "tiled the last day)",
    )  # fmt: skip
    parser.add_argument(
        "--ingest", choices=("cli", "pipeline"),
        help="cli: write OTLP JSON lines and run `tokenpulse ingest` (default, except tiled); pipeline: "
             "hand protobuf requests to the ingest command's pipeline in process (default for tiled: the "
             "CLI's JSON decoding would take an hour for 1.4M spans on the bench machine)",
    )  # fmt: skip
    parser.add_argument("--start-day", help="YYYY-MM-DD the replay starts on (default: it ends before now)")
    parser.add_argument("--traces", type=Path, default=TRACE_DIR, help="the trace directory")
    parser.add_argument("--keep", type=Path, help="keep the file, store and backtest output here")
    args = parser.parse_args()
    if args.factor <= 1:
        parser.error("--factor must be above 1")
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.ingest is None:
        args.ingest = "pipeline" if args.mode == "tiled" else "cli"
    work = args.keep or Path(tempfile.mkdtemp(prefix=f"replay-{args.mode}-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report(args, run(args, work))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
