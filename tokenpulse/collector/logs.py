"""OTLP log records in: which of them tokenpulse keeps, read as plain views.

tokenpulse keeps one GenAI event, the evaluation result (``collector.evaluations``); every other log
record is dropped without decoding its attributes or body. The event's name is the log record's
``event_name`` field (OTLP >= 1.5) or, from older SDKs, its ``event.name`` attribute.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tokenpulse.collector.otlp_proto import attributes_dict

EVENT = "gen_ai.evaluation.result"
EVENT_NAME_KEY = "event.name"


@dataclass(slots=True)
class LogView:
    """The fields of an OTLP log record an evaluation is made of; ids are lowercase hex ('' when absent)."""

    time_unix_nano: int
    observed_time_unix_nano: int
    trace_id: str
    span_id: str
    event_name: str
    attributes: dict[str, Any]
    resource: Mapping[str, Any]
    scope_name: str = ""


@dataclass(slots=True)
class JsonLogs:
    """An OTLP/JSON logs request as ``otlp_json.json_log_records`` reads it: the evaluation records, and
    how many records the request held in all."""

    records: list[LogView]
    received: int


DecodedLogs = ExportLogsServiceRequest | JsonLogs


def _is_evaluation(record: LogRecord) -> bool:
    """Whether a protobuf log record is the event, reading only its name (no attribute value decoded
    but ``event.name``'s)."""
    if record.event_name:
        return record.event_name == EVENT
    return any(kv.key == EVENT_NAME_KEY and kv.value.string_value == EVENT for kv in record.attributes)


def count_log_records(request: DecodedLogs) -> int:
    """The log records of ``request``, evaluations or not."""
    if isinstance(request, JsonLogs):
        return request.received
    return sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)


def iter_evaluation_logs(request: DecodedLogs) -> Iterator[LogView]:
    """Every ``gen_ai.evaluation.result`` record of an export request, with its resource and scope."""
    if isinstance(request, JsonLogs):
        yield from request.records
        return
    for resource_logs in request.resource_logs:
        resource: dict[str, Any] | None = None  # decoded once, and only for a resource with an evaluation
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                if not _is_evaluation(record):
                    continue
                if resource is None:
                    resource = attributes_dict(resource_logs.resource.attributes)
                yield LogView(
                    time_unix_nano=record.time_unix_nano,
                    observed_time_unix_nano=record.observed_time_unix_nano,
                    trace_id=record.trace_id.hex(),
                    span_id=record.span_id.hex(),
                    event_name=EVENT,
                    attributes=attributes_dict(record.attributes),
                    resource=resource,
                    scope_name=scope_logs.scope.name,
                )
