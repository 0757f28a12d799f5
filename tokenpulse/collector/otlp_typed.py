"""The usual shape of an OTLP/JSON trace export decoded by type, in C, before any Python sees a value.

``otlp_json.json_spans`` walks a generic parse (a dict per object, a dict per attribute value) and
checks every field in Python. Exporters nearly always write one shape: lowerCamelCase names, no nulls,
times and 64-bit integers as strings of digits, enums as numbers. This module declares that shape as
msgspec Structs, so the parser checks the types and builds compact objects (not tracked by the garbage
collector) and Python only turns them into the same SpanViews.

Anything outside that shape (a proto field name, a null, an unknown field, a value of another JSON
type, an unpaired surrogate, an out-of-range number...) is not decided here: ``decode_spans`` then runs
the generic decoder, which accepts the document or names what is wrong exactly as it always did. So a
document gives the same views, or the same error, by either route (tests/collector/test_otlp_typed.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from tokenpulse.collector.otlp_json import (
    _INT64,
    _SPAN_KINDS,
    _STATUS_CODES,
    _UINT64,
    _bytes_value,
    _double_value,
    _enum,
    _integer,
    json_spans,
)
from tokenpulse.collector.spans import SpanEvent, SpanView

# A field tokenpulse does not read: any JSON value, skipped unparsed (the generic decoder ignores it).
_Unread = msgspec.Raw
_NONE = msgspec.Raw(b"null")


class _Atypical(Exception):
    """The document is not of the usual shape: the generic decoder decides."""


# gc=False: these objects hold no reference cycles, and untracked they cost the collector nothing.
class _AnyValue(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    stringValue: str | None = None
    intValue: int | str | None = None
    doubleValue: float | str | None = None
    boolValue: bool | None = None
    bytesValue: str | None = None
    arrayValue: _Values | None = None
    kvlistValue: _KeyValues | None = None


class _KeyValue(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    key: str = ""
    value: _AnyValue | None = None


class _Values(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    values: list[_AnyValue] = []


class _KeyValues(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    values: list[_KeyValue] = []


class _Status(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    code: int | str = 0
    message: str = ""


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str = ""
    timeUnixNano: int | str = 0
    attributes: list[_KeyValue] = []
    droppedAttributesCount: _Unread = _NONE


class _Span(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    traceId: str = ""
    spanId: str = ""
    parentSpanId: str = ""
    name: str = ""
    kind: int | str = 0
    startTimeUnixNano: int | str = 0
    endTimeUnixNano: int | str = 0
    attributes: list[_KeyValue] = []
    status: _Status | None = None
    events: list[_Event] = []
    traceState: _Unread = _NONE
    flags: _Unread = _NONE
    droppedAttributesCount: _Unread = _NONE
    droppedEventsCount: _Unread = _NONE
    links: _Unread = _NONE
    droppedLinksCount: _Unread = _NONE


class _Scope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str = ""
    version: _Unread = _NONE
    attributes: _Unread = _NONE
    droppedAttributesCount: _Unread = _NONE


class _ScopeSpans(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    scope: _Scope | None = None
    spans: list[_Span] = []
    schemaUrl: _Unread = _NONE


class _Resource(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    attributes: list[_KeyValue] = []
    droppedAttributesCount: _Unread = _NONE
    entityRefs: _Unread = _NONE


class _ResourceSpans(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    resource: _Resource | None = None
    scopeSpans: list[_ScopeSpans] = []
    schemaUrl: _Unread = _NONE


class _Request(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    resourceSpans: list[_ResourceSpans] = []


_decode_request = msgspec.json.Decoder(_Request).decode
_NO_STATUS = _Status()
# Enum numbers read inline (the spans' kinds and status codes are 0-5); others go through _enum.
_SMALL_ENUM = 8


def decode_spans(body: bytes, generic: Callable[[bytes], Any]) -> list[SpanView]:
    """Every span of the OTLP/JSON trace export ``body``, as ``json_spans(generic(body), body)`` gives
    them; a document of another shape is decoded by that generic route (which raises for a bad one)."""
    try:
        return _typed_spans(body)
    except (_Atypical, msgspec.MsgspecError, ValueError, RecursionError):
        # ValueError: what the shared converters raise (otlp_json.Malformed) for a value the generic
        # route refuses too, with the message of its own place.
        return json_spans(generic(body), body)


def _typed_spans(body: bytes) -> list[SpanView]:
    # A surrogate, maybe unpaired: otlp_json._check_surrogates decides. A one-byte test runs at memchr's
    # speed and most bodies hold no backslash at all; the two three-byte searches took ~1.1 us a span.
    if b"\xed" in body or (b"\\" in body and (b"\\ud" in body or b"\\uD" in body)):
        raise _Atypical
    request = _decode_request(body)
    views: list[SpanView] = []
    append = views.append
    fromhex = bytes.fromhex
    for resource_spans in request.resourceSpans:
        resource = resource_spans.resource
        attributes = {} if resource is None else _attributes(resource.attributes)
        for scope_spans in resource_spans.scopeSpans:
            scope = scope_spans.scope
            scope_name = "" if scope is None else scope.name
            for span in scope_spans.spans:
                status = span.status or _NO_STATUS
                # The times and enums as the shared converters read them, their usual form (a string of
                # fewer than 20 digits: under 2**64; a small enum number) inline: this runs every span.
                start = span.startTimeUnixNano
                if not (type(start) is str and len(start) < 20 and start.isdecimal()):
                    start = _integer(start, _UINT64, "")
                end = span.endTimeUnixNano
                if not (type(end) is str and len(end) < 20 and end.isdecimal()):
                    end = _integer(end, _UINT64, "")
                kind = span.kind
                if not (type(kind) is int and 0 <= kind < _SMALL_ENUM):
                    kind = _enum(kind, _SPAN_KINDS, "")
                code = status.code
                if not (type(code) is int and 0 <= code < _SMALL_ENUM):
                    code = _enum(code, _STATUS_CODES, "")
                # Positional, in SpanView's field order (keywords cost a third of making it).
                append(
                    SpanView(
                        # Lowercase hex as otlp_json._hex_id makes it; not hex: generic's error.
                        fromhex(span.traceId).hex(),
                        fromhex(span.spanId).hex(),
                        fromhex(span.parentSpanId).hex(),
                        span.name,
                        int(start),
                        int(end),
                        _attributes(span.attributes),
                        attributes,
                        scope_name,
                        kind,
                        code,
                        status.message,
                        [_event(event) for event in span.events] if span.events else [],
                    )
                )
    return views


def _event(event: _Event) -> SpanEvent:
    return SpanEvent(event.name, _integer(event.timeUnixNano, _UINT64, ""), _attributes(event.attributes))


def _attributes(items: list[_KeyValue]) -> dict[str, Any]:
    """As otlp_json._attributes: a repeated key keeps its last value."""
    result: dict[str, Any] = {}
    for item in items:
        value = item.value
        if value is None:
            result[item.key] = None
            continue
        # The hottest loop: a string, else an integer written as a string of digits (fewer than 19
        # cannot leave the int64 range); anything else, or a second value set, takes the long way.
        raw = value.stringValue
        if raw is not None:
            if (
                value.intValue is None
                and value.doubleValue is None
                and value.boolValue is None
                and value.bytesValue is None
                and value.arrayValue is None
                and value.kvlistValue is None
            ):
                result[item.key] = raw
                continue
            raise _Atypical
        raw = value.intValue
        if (
            type(raw) is str
            and len(raw) < 19
            and raw.isdecimal()
            and value.doubleValue is None
            and value.boolValue is None
            and value.bytesValue is None
            and value.arrayValue is None
            and value.kvlistValue is None
        ):
            result[item.key] = int(raw)
        else:
            result[item.key] = _value(value)
    return result


def _value(value: _AnyValue) -> Any:
    """An AnyValue as a Python value, as otlp_json._any_value makes it; _Atypical when two are set."""
    found: Any = None
    count = 0
    raw = value.intValue
    if raw is not None:
        count += 1
        if type(raw) is str and len(raw) < 19 and raw.isdecimal():
            found = int(raw)
        else:
            found = _integer(raw, _INT64, "")
    raw = value.doubleValue
    if raw is not None:
        count += 1
        found = _double_value(raw, "")
    raw = value.boolValue
    if raw is not None:
        count += 1
        found = raw
    raw = value.bytesValue
    if raw is not None:
        count += 1
        found = _bytes_value(raw, "")
    raw = value.arrayValue
    if raw is not None:
        count += 1
        found = [_value(v) for v in raw.values]
    raw = value.kvlistValue
    if raw is not None:
        count += 1
        found = _attributes(raw.values)
    if value.stringValue is not None:
        count += 1
        found = value.stringValue
    if count > 1:
        raise _Atypical
    return found
