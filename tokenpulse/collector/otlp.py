"""Decoding of OTLP trace export requests (protobuf and OTLP/JSON, optionally gzip) with size limits."""

from __future__ import annotations

import json
import zlib

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tokenpulse.collector.otlp_json import json_spans
from tokenpulse.collector.spans import SpanView

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# A decoded request: protobuf stays a message (its spans are read lazily by spans.iter_spans); OTLP/JSON
# is decoded straight to the spans' views, since json.loads has built every object already.
Decoded = ExportTraceServiceRequest | list[SpanView]


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

    Either form goes to ``Pipeline.ingest`` and ``spans.iter_spans`` alike.
    """
    if kind == PROTOBUF:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as error:
            raise BadRequest(f"undecodable protobuf body: {error}") from None
        return request
    try:
        return json_spans(json.loads(body), body)
    except ValueError as error:  # invalid JSON or UTF-8 (UnicodeDecodeError), or otlp_json.Malformed
        raise BadRequest(f"undecodable OTLP/JSON body: {error}") from None
    except RecursionError:  # json.loads and the value decoder recurse once per nesting level
        raise BadRequest("undecodable OTLP/JSON body: nested too deeply") from None
