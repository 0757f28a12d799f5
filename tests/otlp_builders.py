"""Hand-built OTLP export requests, for tests that need exact control of the bytes on the wire."""

from __future__ import annotations

import base64
import itertools
import json
import os
import struct
import time
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_counter = itertools.count(1)


# One of each kind of AnyValue a span can carry, with the lengths and varint sizes a reader handles apart.
ANY_VALUES = [
    AnyValue(string_value=""),
    AnyValue(string_value="gpt-4o"),
    AnyValue(string_value="é" * 200),  # a two-byte length
    AnyValue(int_value=0),
    AnyValue(int_value=-1),
    AnyValue(int_value=2**63 - 1),
    AnyValue(int_value=-(2**63)),
    AnyValue(int_value=300),
    AnyValue(double_value=0.0),
    AnyValue(double_value=-0.25),
    AnyValue(double_value=float("inf")),
    AnyValue(bool_value=True),
    AnyValue(bool_value=False),
    AnyValue(bytes_value=b"\x00\xff"),
    AnyValue(),
]
_ARRAY = AnyValue()
_ARRAY.array_value.values.extend([AnyValue(string_value="a"), AnyValue(int_value=2)])
_KVLIST = AnyValue()
_KVLIST.kvlist_value.values.add(key="total", value=AnyValue(double_value=0.5))
ANY_VALUES += [_ARRAY, _KVLIST]
# varints of one to four bytes, each side of each length (the shorter ones are read inline)
ANY_VALUES += [AnyValue(int_value=n) for n in (127, 128, 16_383, 16_384, 2**21 - 1, 2**21, 2**28)]


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def llm_span(**attributes: Any) -> Span:
    """A leaf OTel GenAI chat span with unique ids; ``attributes`` override the defaults."""
    values: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
    }
    return span_with(values | attributes)


def span_with(attributes: dict[str, Any]) -> Span:
    """A span with unique ids that ended just now and carries exactly ``attributes``."""
    n = next(_counter)
    now = time.time_ns()
    return Span(
        trace_id=os.urandom(8) + n.to_bytes(8, "big"),
        span_id=os.urandom(4) + n.to_bytes(4, "big"),
        name="chat gpt-4o",
        start_time_unix_nano=now - 500_000_000,
        end_time_unix_nano=now,
        attributes=[KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()],
    )


def export_request(*spans: Span, service: str = "svc") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def spans_kept_by_name(prefilter: Any) -> ExportTraceServiceRequest:
    """Spans none of whose keys claims them, named by each of ``prefilter``'s names and prefixes (and
    "GET /"), OK and ERROR, under each implied-call scope and one other scope."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for scope_name in (*prefilter.implied_scopes, "other.scope"):
        scope = resource_spans.scope_spans.add()
        scope.scope.name = f"{scope_name}openai" if scope_name != "other.scope" else scope_name
        for name in ("GET /", *sorted(prefilter.names), *(f"{p} x" for p in prefilter.name_prefixes)):
            for code in (1, 2):
                span = scope.spans.add()
                span.CopyFrom(span_with({"http.route": "/"}))
                span.name, span.status.code = name, code
    return request


def otlp_json_line(*spans: Span, service: str = "batch") -> str:
    """One line as the Collector's file exporter writes it: OTLP/JSON with hex ids."""
    document = json_format.MessageToDict(export_request(*spans, service=service))
    for resource_spans in document["resourceSpans"]:
        for span in resource_spans["scopeSpans"][0]["spans"]:
            for field in ("traceId", "spanId", "parentSpanId"):
                if field in span:
                    span[field] = base64.b64decode(span[field]).hex()
    return json.dumps(document)


def otlp_json_to_protobuf(line: bytes) -> ExportTraceServiceRequest:
    """An OTLP/JSON export request (hex ids, as the spec writes them) as its protobuf message, for tests
    that edit spans before the collector sees them (the collector decodes JSON straight to views)."""
    document = json.loads(line)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)


def evaluation_log(
    name: str | None = "judge_pass",
    *,
    score: float | None = None,
    label: str | None = None,
    span: Span | None = None,
    legacy_name: bool = False,
    **attributes: Any,
) -> LogRecord:
    """A ``gen_ai.evaluation.result`` log record parented to ``span`` (new ids if none); the event name in
    the ``event_name`` field, or with ``legacy_name`` in the older ``event.name`` attribute."""
    values: dict[str, Any] = {} if name is None else {"gen_ai.evaluation.name": name}
    if score is not None:
        values["gen_ai.evaluation.score.value"] = score
    if label is not None:
        values["gen_ai.evaluation.score.label"] = label
    values |= attributes
    if legacy_name:
        values["event.name"] = "gen_ai.evaluation.result"
    n = next(_counter)
    return LogRecord(
        time_unix_nano=time.time_ns(),
        observed_time_unix_nano=time.time_ns(),
        trace_id=span.trace_id if span else os.urandom(8) + n.to_bytes(8, "big"),
        span_id=span.span_id if span else os.urandom(4) + n.to_bytes(4, "big"),
        event_name="" if legacy_name else "gen_ai.evaluation.result",
        attributes=[KeyValue(key=k, value=any_value(v)) for k, v in values.items()],
    )


def plain_log(body: str = "user said: my card number is 4111") -> LogRecord:
    """An ordinary application log line: not tokenpulse's business."""
    return LogRecord(time_unix_nano=time.time_ns(), body=AnyValue(string_value=body), severity_text="INFO")


def logs_request(*records: LogRecord, service: str = "svc", scope: str = "judge") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = scope
    scope_logs.log_records.extend(records)
    return request


def logs_json(request: ExportLogsServiceRequest) -> bytes:
    """OTLP/JSON of a logs request, with hex ids as OTLP/JSON writes them."""
    document = json_format.MessageToDict(request)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return json.dumps(document).encode()


# The wire format by hand, for what the generated classes never write: fields out of order, repeated
# singular fields, unknown fields of every wire type, groups. Each returns one field's bytes.
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def message(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return message(number, value.encode())


def integer(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def fixed64(number: int, value: int) -> bytes:
    return tag(number, 1) + struct.pack("<Q", value)
