"""Span views of a protobuf trace export request read through the generated classes: an
``ExportTraceServiceRequest``, or ``otlp_raw``'s ``RawTraceRequest`` (the pure build's ingest path)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tokenpulse.collector.otlp_raw import RawTraceRequest, raw_attributes, raw_map
from tokenpulse.collector.spans import STATUS_ERROR, SpanEvent, SpanView

_SCALARS = frozenset(("string_value", "int_value", "double_value", "bool_value"))


def any_value(value: AnyValue) -> Any:
    """Convert an OTLP AnyValue into the equivalent Python value (bytes become hex)."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """Flatten repeated KeyValue into a dict; a repeated key keeps its last value."""
    result = {}
    for kv in attributes:
        # The hottest loop of ingest: strings and ints, most attributes, skip the generic dispatch.
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            result[kv.key] = value.string_value
        elif kind == "int_value":
            result[kv.key] = value.int_value
        else:
            result[kv.key] = any_value(value)
    return result


def _raw_attributes(attributes: Iterable[Any]) -> dict[str, Any]:
    return raw_attributes(attributes, any_value)


def _raw_map(attributes: Any) -> dict[str, Any]:
    return raw_map(attributes, any_value)


class SpanFilter(Protocol):
    """What ``iter_raw_spans`` keeps a span for (``normalize.Prefilter``): one of ``keys`` among its
    attribute keys, a name in ``names`` or starting with one of ``name_prefixes``, or an ERROR status
    under a scope starting with one of ``implied_scopes``."""

    keys: frozenset[str]
    names: frozenset[str]
    name_prefixes: tuple[str, ...]
    implied_scopes: tuple[str, ...]


def iter_raw_spans(request: RawTraceRequest, kept: SpanFilter, max_keys: int) -> Iterator[SpanView]:
    """``iter_spans(request, keep)`` of a RawTraceRequest with the prefilter's test inlined: a span is
    kept when it has more than ``max_keys`` attribute keys or when ``kept`` keeps it
    (``Prefilter.keep``, read from the attribute map's keys).

    The ingest path of a protobuf body, where most spans are dropped: each span's attribute map is
    fetched once (a wrapper object a fetch), the scope's part of the test is decided once a scope, and a
    kept span's view is built with positional arguments.
    """
    to_dict = _raw_attributes
    keys, names, prefixes = kept.keys, kept.names, kept.name_prefixes
    for resource_spans in request.resource_spans:
        resource = to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            implied = bool(kept.implied_scopes) and scope_name.startswith(kept.implied_scopes)
            for span in scope_spans.spans:
                attributes = span.attributes
                if keys.isdisjoint(attributes) and len(attributes) <= max_keys:
                    name = span.name
                    if not (
                        name in names
                        or (prefixes and name.startswith(prefixes))
                        or (implied and span.status.code == STATUS_ERROR)
                    ):
                        continue
                status = span.status
                events = span.events
                # Most spans have no event: no comprehension is run for them.
                event_views = (
                    [SpanEvent(e.name, e.time_unix_nano, to_dict(e.attributes)) for e in events]
                    if events
                    else []
                )
                yield SpanView(
                    span.trace_id.hex(),
                    span.span_id.hex(),
                    span.parent_span_id.hex(),
                    span.name,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    raw_map(attributes, any_value),
                    resource,
                    scope_name,
                    span.kind,
                    status.code,
                    status.message,
                    event_views,
                )


def iter_spans(
    request: ExportTraceServiceRequest | RawTraceRequest | list[SpanView],
    keep: Callable[[Any, str], bool] | None = None,
) -> Iterator[SpanView]:
    """Yield every span of an export request with its resource and scope attached.

    ``keep(span, scope_name)``, when given, is asked first about each protobuf span: a span it refuses
    is skipped before any of its attributes is decoded. A span of a RawTraceRequest (``otlp_raw``, what
    ``otlp.decode_request`` makes of a protobuf body) has its attributes as a map of raw values, whose
    iteration yields its keys; either message gives the same views. An OTLP/JSON request arrives already
    decoded to views and is yielded whole.
    """
    if isinstance(request, list):
        yield from request
        return
    if isinstance(request, RawTraceRequest):
        as_dict, span_dict = _raw_attributes, _raw_map
    else:
        as_dict = span_dict = attributes_dict
    for resource_spans in request.resource_spans:
        resource = as_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                if keep is not None and not keep(span, scope_name):
                    continue
                status = span.status
                yield SpanView(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    start_time_unix_nano=span.start_time_unix_nano,
                    end_time_unix_nano=span.end_time_unix_nano,
                    attributes=span_dict(span.attributes),
                    resource=resource,
                    scope_name=scope_name,
                    kind=span.kind,
                    status_code=status.code,
                    status_message=status.message,
                    events=[SpanEvent(e.name, e.time_unix_nano, as_dict(e.attributes)) for e in span.events],
                )
