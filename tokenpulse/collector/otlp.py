"""Decoding of OTLP export requests (protobuf and OTLP/JSON, optionally gzip) with size limits.

Traces are what tokenpulse stores, and of logs the evaluation results (``collector.logs``). Metrics are
accepted too — `opentelemetry-instrument` exports all three signals by default, and a receiver that
answers 404 / UNIMPLEMENTED fills the app's log with export errors every interval — and are counted, not
stored (see OTHER_SIGNALS).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tokenpulse.collector.logs import DecodedLogs
from tokenpulse.collector.otlp_json import json_log_records
from tokenpulse.collector.otlp_raw import RawTraceRequest
from tokenpulse.collector.otlp_typed import decode_spans
from tokenpulse.collector.otlp_wire import COMPILED as WIRE_COMPILED
from tokenpulse.collector.otlp_wire import WireRequest
from tokenpulse.collector.spans import SpanView

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# A decoded request: protobuf stays a message (its spans are read lazily by otlp_proto.iter_spans): from a
# body, a WireRequest (otlp_wire: the body itself, walked by compiled code) or, in a pure build, a
# RawTraceRequest (otlp_raw: attribute values as bytes); OTLP/JSON is decoded straight to the spans'
# views, since parsing it has built every object already.
Decoded = ExportTraceServiceRequest | WireRequest | RawTraceRequest | list[SpanView]
_parse_json = msgspec.json.Decoder().decode


class RequestError(Exception):
    """A request that cannot be accepted at all; ``status`` is the OTLP/HTTP status code."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestError):
    status = 400


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, or raise 415 for one OTLP/HTTP does not define."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, JSON):
        return kind
    raise UnsupportedMediaType(f"unsupported content type {content_type!r}: use {PROTOBUF} or {JSON}")


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding``; a body that inflates past ``max_bytes`` (a gzip bomb) raises 413."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"unsupported content encoding {content_encoding!r}: use gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise BadRequest(f"invalid gzip body: {error}") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"decompressed body exceeds {max_bytes} bytes")
    if not inflater.eof:
        raise BadRequest("truncated gzip body")
    return data


def decode_request(body: bytes, kind: str) -> Decoded:
    """Parse an (uncompressed) OTLP trace export body of media type ``kind``.

    Either form goes to ``Pipeline.ingest``. A protobuf body is parsed by the generated classes, which
    accept or refuse it, then read again where its spans are cheapest to read: on the wire by compiled
    code (``otlp_wire``), or in a pure build as a RawTraceRequest (``otlp_raw``).
    """
    request = _decode(body, kind, ExportTraceServiceRequest, _json_spans)
    if kind == PROTOBUF:
        return WireRequest(body) if WIRE_COMPILED else RawTraceRequest.FromString(body)
    return request  # type: ignore[no-any-return]


def decode_logs(body: bytes, kind: str) -> DecodedLogs:
    """Parse an (uncompressed) OTLP logs export body; malformed is BadRequest, as for traces.

    Either form goes to ``Pipeline.ingest_logs`` and ``logs.iter_evaluation_logs`` alike.
    """
    return _decode(body, kind, ExportLogsServiceRequest, _json_logs)  # type: ignore[return-value]


def _json_spans(body: bytes) -> list[SpanView]:
    # The usual shape by type (otlp_typed), anything else through the generic parse.
    return decode_spans(body, _json_document)


def _json_logs(body: bytes) -> DecodedLogs:
    return json_log_records(_json_document(body), body)


def _decode(body: bytes, kind: str, message_type: type[Message], from_json: Callable[[bytes], Any]) -> Any:
    if kind == PROTOBUF:
        request = message_type()
        try:
            request.ParseFromString(body)
        except DecodeError as error:
            raise BadRequest(f"undecodable protobuf body: {error}") from None
        return request
    try:
        return from_json(body)
    except ValueError as error:  # invalid JSON or UTF-8 (UnicodeDecodeError), or otlp_json.Malformed
        raise BadRequest(f"undecodable OTLP/JSON body: {error}") from None
    except RecursionError:  # json.loads and the value decoder recurse once per nesting level
        raise BadRequest("undecodable OTLP/JSON body: nested too deeply") from None


def _json_document(body: bytes) -> Any:
    """``json.loads(body)``, parsed in C by msgspec (the generic parser took ~20% of file ingest's time).

    msgspec is stricter than the json module (NaN and Infinity, a lone surrogate, a byte order mark,
    a number past a double's range); what it refuses is parsed again by json, so a body is accepted or
    refused exactly as before, with json's error message. Both keep integers exact at any size.
    """
    try:
        return _parse_json(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return json.loads(body)


def _data_points(request: ExportMetricsServiceRequest) -> int:
    points = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    points += len(getattr(metric, kind).data_points)
    return points


@dataclass(frozen=True)
class Signal:
    """An OTLP signal tokenpulse acknowledges without storing: how to decode it and count what it carries."""

    name: str  # as in the URL path /v1/<name> and the metric label
    service: str  # the gRPC service
    request_type: type[Message]
    response_type: type[Message]
    count: Callable[[Any], int]


OTHER_SIGNALS = (
    Signal("metrics", "opentelemetry.proto.collector.metrics.v1.MetricsService", ExportMetricsServiceRequest,
           ExportMetricsServiceResponse, _data_points),
)  # fmt: skip


def decode_signal(body: bytes, kind: str, signal: Signal) -> Message:
    """Parse an (uncompressed) export body of ``signal``; malformed is BadRequest as for traces.

    OTLP/JSON ids (hex) are not converted: nothing of these signals is stored, and hex is valid base64.
    """
    request = signal.request_type()
    try:
        if kind == PROTOBUF:
            request.ParseFromString(body)
        else:
            document = json.loads(body)
            if not isinstance(document, dict):
                raise BadRequest("OTLP/JSON body must be an object")
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except DecodeError as error:
        raise BadRequest(f"undecodable protobuf body: {error}") from None
    except (ValueError, TypeError, OverflowError, json_format.ParseError, AttributeError) as error:
        raise BadRequest(f"undecodable OTLP/JSON body: {error}") from None
    except RecursionError:
        raise BadRequest("undecodable OTLP/JSON body: nested too deeply") from None
    return request
