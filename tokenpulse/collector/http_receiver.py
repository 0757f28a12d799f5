"""OTLP/HTTP receiver: ``POST /v1/traces`` and ``/v1/logs`` (of which evaluation results are kept) with
protobuf or JSON bodies, optionally gzip-compressed.

``POST /v1/metrics`` takes the same bodies under the same key and limits, and is acknowledged and
counted, not stored (see ``otlp.OTHER_SIGNALS``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from tokenpulse import metrics
from tokenpulse.auth import UNAUTHENTICATED, ApiKeys
from tokenpulse.buffer.wal import WalClosed, WalFull
from tokenpulse.collector import otlp
from tokenpulse.collector.pipeline import IngestResult, Pipeline, request_digest

log = logging.getLogger(__name__)


# (body as received, media type, Content-Encoding, tenant) -> the export response
Handler = Callable[[bytes, str, str | None, str], Message]


class Unauthenticated(otlp.RequestError):
    status = 401


RETRY_AFTER_SECONDS = 5


def _encode(message: Message, kind: str) -> bytes:
    if kind == otlp.JSON:
        return json.dumps(json_format.MessageToDict(message)).encode()
    return message.SerializeToString()


def _status_response(status: int, message: str, kind: str, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return Response(
        _encode(Status(message=message), kind), status_code=status, media_type=kind, headers=headers
    )


def create_otlp_http_app(
    pipeline: Pipeline, max_request_bytes: int, max_decompressed_bytes: int, keys: ApiKeys | None = None
) -> FastAPI:
    """The OTLP/HTTP app (port 4318). Every failure answers with a google.rpc.Status body."""
    app = FastAPI(title="tokenpulse OTLP/HTTP receiver", openapi_url=None, docs_url=None, redoc_url=None)
    keys = keys or ApiKeys()

    def ingest(body: bytes, kind: str, encoding: str | None, tenant: str) -> Message:
        data = otlp.decompress(body, encoding, max_decompressed_bytes)
        result = pipeline.ingest(otlp.decode_request(data, kind), "http", request_digest(data), tenant)
        return trace_response(result)

    def ingest_logs(body: bytes, kind: str, encoding: str | None, tenant: str) -> Message:
        data = otlp.decompress(body, encoding, max_decompressed_bytes)
        digest = request_digest(data, "logs")
        result = pipeline.ingest_logs(otlp.decode_logs(data, kind), "http", digest, tenant)
        return logs_response(result)

    def count(signal: otlp.Signal) -> Handler:
        def handle(body: bytes, kind: str, encoding: str | None, tenant: str) -> Message:
            data = otlp.decompress(body, encoding, max_decompressed_bytes)
            items = signal.count(otlp.decode_signal(data, kind, signal))
            metrics.OTLP_ITEMS_RECEIVED.labels(signal.name, "http").inc(items)
            return signal.response_type()

        return handle

    async def export(request: Request, handle: Handler) -> Response:
        kind = otlp.JSON
        try:
            kind = otlp.media_type(request.headers.get("content-type"))
            # Before the body is read: an unknown sender costs no decompression or decoding.
            tenant = keys.tenant_for(request.headers.get("authorization")) if keys.enabled else ""
            if tenant is None:
                raise Unauthenticated(UNAUTHENTICATED)
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_request_bytes:
                raise otlp.PayloadTooLarge(f"request body exceeds {max_request_bytes} bytes")
            # The chunks are joined once at the end: a bytearray grown chunk by chunk, then copied into
            # bytes, copied a body of a few MB twice more.
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                chunks.append(chunk)
                size += len(chunk)
                if size > max_request_bytes:
                    raise otlp.PayloadTooLarge(f"request body exceeds {max_request_bytes} bytes")
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            response = await run_in_threadpool(
                handle, body, kind, request.headers.get("content-encoding"), tenant
            )
        except otlp.RequestError as error:
            reason = type(error).__name__
            metrics.REQUESTS_REJECTED.labels("http", reason).inc()
            return _status_response(error.status, error.message, kind)
        except WalFull as error:
            metrics.REQUESTS_REJECTED.labels("http", "buffer_full").inc()
            return _status_response(429, f"buffer full, retry later: {error}", kind, RETRY_AFTER_SECONDS)
        except WalClosed:
            metrics.REQUESTS_REJECTED.labels("http", "unavailable").inc()
            return _status_response(503, "tokenpulse is shutting down", kind, RETRY_AFTER_SECONDS)
        return Response(_encode(response, kind), status_code=200, media_type=kind)

    handlers = {"traces": ingest, "logs": ingest_logs}
    handlers |= {signal.name: count(signal) for signal in otlp.OTHER_SIGNALS}
    for name, handle in handlers.items():
        app.add_api_route(f"/v1/{name}", _route(export, handle), methods=["POST"])

    return app


def _route(export: Callable[[Request, Handler], Awaitable[Response]], handle: Handler) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        return await export(request, handle)

    return endpoint


def trace_response(result: IngestResult) -> ExportTraceServiceResponse:
    """The trace export response: partial_success where spans were rejected, or with a warning."""
    response = ExportTraceServiceResponse()
    if result.message:  # rejected spans, or a warning (then rejected_spans is 0)
        response.partial_success.rejected_spans = result.rejected
        response.partial_success.error_message = result.message
    return response


def logs_response(result: IngestResult) -> ExportLogsServiceResponse:
    """The logs export response: partial_success where log records were rejected, or with a warning."""
    response = ExportLogsServiceResponse()
    if result.message:
        response.partial_success.rejected_log_records = result.rejected
        response.partial_success.error_message = result.message
    return response
