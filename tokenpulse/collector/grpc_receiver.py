"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` and
``...logs.v1.LogsService/Export`` (of which evaluation results are kept).

MetricsService is served too, under the same key and message size limit: acknowledged and counted, not
stored (see ``otlp.OTHER_SIGNALS``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from concurrent import futures

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tokenpulse import metrics
from tokenpulse.auth import UNAUTHENTICATED, ApiKeys
from tokenpulse.buffer.wal import WalClosed, WalFull
from tokenpulse.collector import otlp
from tokenpulse.collector.http_receiver import logs_response, trace_response
from tokenpulse.collector.pipeline import IngestResult, Pipeline, request_digest

RETRY_DELAY_SECONDS = 5


def _abort_retryable(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    # OTLP clients retry RESOURCE_EXHAUSTED only when the status carries RetryInfo.
    detail = AnyMessage()
    detail.Pack(RetryInfo(retry_delay=Duration(seconds=RETRY_DELAY_SECONDS)))
    status = Status(code=code.value[0], message=message, details=[detail])
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(code, message)


def start_grpc_server(
    pipeline: Pipeline,
    address: str,
    max_message_bytes: int,
    keys: ApiKeys | None = None,
    *,
    reuse_port: bool = False,
) -> grpc.Server:
    """Start the OTLP/gRPC server on ``address`` (host:port) and return it.

    ``reuse_port``: the workers of one daemon share the port (tokenpulse.workers, which first checks
    that no one else holds it)."""
    keys = keys or ApiKeys()

    def authenticate(context: grpc.ServicerContext) -> str:
        """The caller's tenant ("" without keys); aborts UNAUTHENTICATED for a missing or unknown key."""
        if not keys.enabled:
            return ""
        found = keys.tenant_for(dict(context.invocation_metadata()).get("authorization"))
        if found is None:
            metrics.REQUESTS_REJECTED.labels("grpc", "unauthenticated").inc()
            context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)
        return found

    def buffered(
        ingest: Callable[[bytes, str], IngestResult], respond: Callable[[IngestResult], Message]
    ) -> Callable[[bytes, grpc.ServicerContext], Message]:
        """An Export method that buffers what ``ingest`` makes of the body (traces or logs alike)."""

        def export(body: bytes, context: grpc.ServicerContext) -> Message:
            tenant = authenticate(context)
            # The request arrives undecoded so that a malformed body is INVALID_ARGUMENT, not INTERNAL.
            try:
                result = ingest(body, tenant)
            except otlp.RequestError as error:
                metrics.REQUESTS_REJECTED.labels("grpc", type(error).__name__).inc()
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
            except WalFull as error:
                metrics.REQUESTS_REJECTED.labels("grpc", "buffer_full").inc()
                _abort_retryable(
                    context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"buffer full, retry later: {error}"
                )
            except WalClosed:
                metrics.REQUESTS_REJECTED.labels("grpc", "unavailable").inc()
                _abort_retryable(context, grpc.StatusCode.UNAVAILABLE, "tokenpulse is shutting down")
            return respond(result)

        return export

    def traces(body: bytes, tenant: str) -> IngestResult:
        return pipeline.ingest(otlp.decode_request(body, otlp.PROTOBUF), "grpc", request_digest(body), tenant)

    def logs(body: bytes, tenant: str) -> IngestResult:
        decoded = otlp.decode_logs(body, otlp.PROTOBUF)
        return pipeline.ingest_logs(decoded, "grpc", request_digest(body, "logs"), tenant)

    def count(signal: otlp.Signal) -> Callable[[bytes, grpc.ServicerContext], Message]:
        def export_other(body: bytes, context: grpc.ServicerContext) -> Message:
            authenticate(context)
            try:
                items = signal.count(otlp.decode_signal(body, otlp.PROTOBUF, signal))
            except otlp.RequestError as error:
                metrics.REQUESTS_REJECTED.labels("grpc", type(error).__name__).inc()
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
            metrics.OTLP_ITEMS_RECEIVED.labels(signal.name, "grpc").inc(items)
            return signal.response_type()

        return export_other

    services = [
        ("opentelemetry.proto.collector.trace.v1.TraceService", buffered(traces, trace_response),
         ExportTraceServiceResponse),
        ("opentelemetry.proto.collector.logs.v1.LogsService", buffered(logs, logs_response),
         ExportLogsServiceResponse),
    ]  # fmt: skip
    services += [(signal.service, count(signal), signal.response_type) for signal in otlp.OTHER_SIGNALS]
    handlers = tuple(
        grpc.method_handlers_generic_handler(
            service,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    method, request_deserializer=None, response_serializer=response.SerializeToString
                )
            },
        )
        for service, method, response in services
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="otlp-grpc"),
        handlers=handlers,
        options=(
            ("grpc.max_receive_message_length", max_message_bytes),
            # gRPC sets SO_REUSEPORT by default: a second daemon would bind the same port and silently
            # take half of the exporters' connections (and their data) into another store.
            ("grpc.so_reuseport", int(reuse_port)),
        ),
    )
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpcio >= 1.5x raises where older versions returned 0
        bound = 0
    if bound == 0:
        raise OSError(errno.EADDRINUSE, f"cannot bind OTLP/gRPC receiver to {address}")
    server.start()
    return server
