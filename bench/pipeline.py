"""Receive-path benchmark, in process: CPU seconds per span of decode -> normalize -> price -> encode ->
write-ahead log append (``Pipeline.ingest``), without HTTP or storage competing for the cores.

    python bench/pipeline.py [--spans 100] [--mixed 9] [--requests 200] [--varying]

The request is bench/ingest.py's template (``--mixed N``: N HTTP/DB/queue spans per LLM span), whose
non-LLM spans repeat the same attribute values request after request. ``--varying`` gives each of them
an id of its own in every request (``app.request.id``), as an app's request ids, message ids and client
ports vary: a change whose cost depends on values repeating (the memos of ``otlp_raw``) shows there. The code
measured is the checkout in the working directory: run it from another checkout's root (with this
file's path) to compare, e.g. ``cd ../main && python ../wt/bench/pipeline.py --mixed 9``. CPU time
(``time.process_time``) is reported because a shared machine's wall clock measures its neighbours.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the checkout under test, before bench/ingest.py adds this one's root

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.otlp import PROTOBUF, decode_request
from tokenpulse.collector.pipeline import Pipeline
from tokenpulse.collector.pricing import Pricer


def template_body(spans: int, mixed: int) -> bytes:
    """bench/ingest.py's request template."""
    spec = importlib.util.spec_from_file_location("bench_ingest", Path(__file__).with_name("ingest.py"))
    assert spec is not None and spec.loader is not None
    ingest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ingest)
    return ingest.template_body(spans, mixed)  # type: ignore[no-any-return]


def varied(body: bytes, serial: int) -> bytes:
    """``body`` with each non-LLM span given an ``app.request.id`` of its own, distinct per ``serial``."""
    request = ExportTraceServiceRequest.FromString(body)
    spans = (s for r in request.resource_spans for scope in r.scope_spans for s in scope.spans)
    for n, span in enumerate(spans):
        if not any(kv.key.startswith("gen_ai.") for kv in span.attributes):
            span.attributes.add(key="app.request.id", value=AnyValue(string_value=f"{serial:06d}-{n:05d}"))
    return request.SerializeToString()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100, help="LLM spans per request")
    parser.add_argument("--mixed", type=int, default=0, help="non-LLM spans per LLM span")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--varying", action="store_true", help="an id of its own on each non-LLM span")
    args = parser.parse_args()
    body = template_body(args.spans, args.mixed)
    bodies = [varied(body, n) if args.varying else body for n in range(args.requests + 1)]
    per_request = args.spans * (1 + args.mixed)
    with tempfile.TemporaryDirectory(prefix="tokenpulse-bench-") as directory:
        wal = WriteAheadLog(Path(directory), max_bytes=1 << 40)
        pipeline = Pipeline(wal, NormalizeConfig(), Pricer())
        pipeline.ingest(decode_request(bodies[0], PROTOBUF), "bench")  # warm the caches (prices, memos)
        cpu = time.process_time()
        wall = time.perf_counter()
        for request_body in bodies[1:]:
            result = pipeline.ingest(decode_request(request_body, PROTOBUF), "bench")
            assert result.calls == args.spans and result.rejected == 0
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        wal.close()
    spans = args.requests * per_request
    print(
        json.dumps(
            {
                "code": os.getcwd(),
                "spans_per_request": per_request,
                "llm_spans_per_request": args.spans,
                "requests": args.requests,
                "varying": args.varying,
                "cpu_us_per_span": round(cpu / spans * 1e6, 2),
                "spans_per_cpu_second": round(spans / cpu),
                "wall_spans_per_s": round(spans / wall),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
