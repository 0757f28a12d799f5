"""Span views read straight from a protobuf trace export body: the ingest path of the compiled build.

``otlp_proto.iter_raw_spans`` reads a ``RawTraceRequest`` (``otlp_raw``) through the generated classes: a
wrapper object for each span, status and attribute map, a bytes object for each value, and the
interpreter between them. Compiled by mypyc, this module walks the wire format once and builds the same
``SpanView`` objects (tests/collector/test_otlp_wire.py checks them against ``iter_raw_spans``): a span's
fields and attributes are found by their tags, the usual values (one string, integer, double or bool
filling its AnyValue) are read in place, keys and short strings are memoized by their bytes as
``otlp_raw`` memoizes values, and any other value goes to ``otlp_raw.raw_value``. Interpreted, the walk
is slower than the generated classes: ``otlp.decode_request`` hands out a ``WireRequest`` only when this
module is compiled (``COMPILED``).

The body has been accepted by the full parse first (``otlp.decode_request``): its wire format and UTF-8
are valid, so the walk checks neither. It reads a body as that parse does: fields in any order, unknown
fields (of any wire type, groups included) skipped, a field with another wire type than its declaration's
taken as unknown, a repeated singular field's last value kept, a repeated message merged.
"""

from __future__ import annotations

from typing import Any, Final

from tokenpulse.collector.otlp_proto import SpanFilter, any_value
from tokenpulse.collector.otlp_raw import raw_value
from tokenpulse.collector.protobuf_wire import (
    LENGTH_DELIMITED,
    NOT_SCALAR,
    fixed64,
    scalar,
    signed,
    skip,
    varint,
)
from tokenpulse.collector.spans import STATUS_ERROR, SpanEvent, SpanView

COMPILED: Final = not __file__.endswith(".py")

# Tags (field number << 3 | wire type) of the fields read; any other field is skipped by its wire type.
_REQUEST_RESOURCE_SPANS: Final = 0x0A  # ExportTraceServiceRequest.resource_spans = 1
_RESOURCE: Final = 0x0A  # ResourceSpans.resource = 1
_SCOPE_SPANS: Final = 0x12  # ResourceSpans.scope_spans = 2
_RESOURCE_ATTRIBUTES: Final = 0x0A  # Resource.attributes = 1
_SCOPE: Final = 0x0A  # ScopeSpans.scope = 1
_SPANS: Final = 0x12  # ScopeSpans.spans = 2
_SCOPE_NAME: Final = 0x0A  # InstrumentationScope.name = 1
_TRACE_ID: Final = 0x0A  # Span.trace_id = 1
_SPAN_ID: Final = 0x12  # 2
_PARENT_SPAN_ID: Final = 0x22  # 4
_NAME: Final = 0x2A  # 5
_KIND: Final = 0x30  # 6, varint
_START: Final = 0x39  # 7, fixed64
_END: Final = 0x41  # 8, fixed64
_ATTRIBUTES: Final = 0x4A  # 9
_EVENTS: Final = 0x5A  # 11
_STATUS: Final = 0x7A  # 15
_STATUS_MESSAGE: Final = 0x12  # Status.message = 2
_STATUS_CODE: Final = 0x18  # Status.code = 3, varint
_EVENT_TIME: Final = 0x09  # Span.Event.time_unix_nano = 1, fixed64
_EVENT_NAME: Final = 0x12  # 2
_EVENT_ATTRIBUTES: Final = 0x1A  # 3
_KEY: Final = 0x0A  # KeyValue.key = 1
_VALUE: Final = 0x12  # KeyValue.value = 2
_STRING_VALUE: Final = 0x0A  # AnyValue.string_value = 1

# Keys and short strings repeat span after span (otlp_raw's bounds): a full memo is cleared, so values of
# high cardinality (ids) do not grow it, and a long string is decoded and not kept.
_MAX_MEMO: Final = 8192
_MAX_MEMO_BYTES: Final = 256
_strings: Final[dict[bytes, str]] = {}


class WireRequest:
    """A protobuf trace export body the full parse accepted, whose spans ``wire_spans`` reads."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body


def _string(body: bytes, start: int, end: int) -> str:
    if end - start > _MAX_MEMO_BYTES:
        return body[start:end].decode()
    raw = body[start:end]
    text = _strings.get(raw)
    if text is None:
        if len(_strings) >= _MAX_MEMO:
            _strings.clear()
        text = _strings[raw] = raw.decode()
    return text


def _value(body: bytes, start: int, end: int) -> Any:
    """The Python value of the AnyValue at ``body[start:end]``, as ``otlp_raw.raw_value`` reads it."""
    # The usual string (under 128 bytes) through the memo of strings; any other usual scalar read in
    # place; anything else through otlp_raw.
    length = body[start + 1] if end - start >= 2 and body[start] == _STRING_VALUE else 0x80
    if length < 0x80 and start + 2 + length == end:
        return _string(body, start + 2, end)
    value = scalar(body, start, end)
    return raw_value(body[start:end], any_value) if value is NOT_SCALAR else value


def _key_value(body: bytes, start: int, end: int) -> tuple[str, int, int]:
    """The key of the KeyValue at ``body[start:end]`` and where its value lies (the last of each, as the
    parse keeps)."""
    # The usual encoding first: the key then the value, each under 128 bytes.
    if end - start >= 4 and body[start] == _KEY and body[start + 1] < 0x80:
        key_end = start + 2 + body[start + 1]
        value_length = body[key_end + 1] if key_end + 2 <= end and body[key_end] == _VALUE else 0x80
        if value_length < 0x80 and key_end + 2 + value_length == end:
            return _string(body, start + 2, key_end), key_end + 2, end
    key_start = key_end = value_start = value_end = start
    at = start
    while at < end:
        tag, at = varint(body, at)
        if tag == _KEY:
            length, key_start = varint(body, at)
            at = key_end = key_start + length
        elif tag == _VALUE:
            length, value_start = varint(body, at)
            at = value_end = value_start + length
        else:
            at = skip(body, at, tag)
    return _string(body, key_start, key_end), value_start, value_end


def _event(body: bytes, start: int, end: int) -> SpanEvent:
    name = ""
    time = 0
    attributes: dict[str, Any] = {}
    at = start
    while at < end:
        tag, at = varint(body, at)
        if tag == _EVENT_TIME:
            time = fixed64(body, at)
            at += 8
        elif tag & 7 == LENGTH_DELIMITED:
            length, at = varint(body, at)
            if tag == _EVENT_NAME:
                name = _string(body, at, at + length)
            elif tag == _EVENT_ATTRIBUTES:
                key, value_start, value_end = _key_value(body, at, at + length)
                attributes[key] = _value(body, value_start, value_end)
            at += length
        else:
            at = skip(body, at, tag)
    return SpanEvent(name, time, attributes)


def _status(body: bytes, start: int, end: int, code: int, message: str) -> tuple[int, str]:
    """``code`` and ``message`` with the Status at ``body[start:end]`` merged in."""
    at = start
    while at < end:
        tag, at = varint(body, at)
        if tag == _STATUS_CODE:
            value, at = varint(body, at)
            code = signed(value, 32)
        elif tag == _STATUS_MESSAGE:
            length, at = varint(body, at)
            message = _string(body, at, at + length)
            at += length
        else:
            at = skip(body, at, tag)
    return code, message


class _Scope:
    """What every span of one ScopeSpans shares, and the prefilter's test."""

    def __init__(self, resource: dict[str, Any], name: str, kept: SpanFilter, max_keys: int) -> None:
        self.resource = resource
        self.name = name
        self.keys: frozenset[str] = kept.keys
        self.names: frozenset[str] = kept.names
        self.prefixes: tuple[str, ...] = kept.name_prefixes
        self.implied = bool(kept.implied_scopes) and name.startswith(kept.implied_scopes)
        self.max_keys = max_keys


def _span(body: bytes, start: int, end: int, scope: _Scope) -> SpanView | None:
    """The view of the Span at ``body[start:end]``, or None when the prefilter drops it."""
    trace_id = span_id = parent_span_id = b""
    name = ""
    kind = start_time = end_time = code = 0
    message = ""
    # A key of the prefilter keeps the span: from the first such key on, values are read as their keys
    # are. Until then each value is left where it lies (start * stride + end, exact for any body), so a
    # span the prefilter drops is never read past its keys, and one it keeps reads each value once.
    kept = False
    attributes: dict[str, Any] = {}
    pending: dict[str, int] = {}
    stride = len(body) + 1
    events: list[int] = []
    at = start
    while at < end:
        tag, at = varint(body, at)
        if tag & 7 == LENGTH_DELIMITED:
            length, at = varint(body, at)
            stop = at + length
            if tag == _ATTRIBUTES:
                key, value_start, value_end = _key_value(body, at, stop)
                if kept or key in scope.keys:
                    kept = True
                    attributes[key] = _value(body, value_start, value_end)
                else:
                    pending[key] = value_start * stride + value_end
            elif tag == _TRACE_ID:
                trace_id = body[at:stop]
            elif tag == _SPAN_ID:
                span_id = body[at:stop]
            elif tag == _PARENT_SPAN_ID:
                parent_span_id = body[at:stop]
            elif tag == _NAME:
                name = _string(body, at, stop)
            elif tag == _EVENTS:
                events.append(at)
                events.append(stop)
            elif tag == _STATUS:  # a repeated message field merges: its last code and message stand
                code, message = _status(body, at, stop, code, message)
            at = stop
        elif tag == _KIND:
            value, at = varint(body, at)
            kind = signed(value, 32)  # an enum: int32
        elif tag == _START:
            start_time = fixed64(body, at)
            at += 8
        elif tag == _END:
            end_time = fixed64(body, at)
            at += 8
        else:
            at = skip(body, at, tag)
    if not kept and not _kept(pending, name, code, scope):
        return None
    for key, where in pending.items():
        if key not in attributes:  # a key repeated once the span was kept: its last value stands
            value_start = where // stride
            attributes[key] = _value(body, value_start, where - value_start * stride)
    return SpanView(
        trace_id.hex(),
        span_id.hex(),
        parent_span_id.hex(),
        name,
        start_time,
        end_time,
        attributes,
        scope.resource,
        scope.name,
        kind,
        code,
        message,
        [_event(body, events[i], events[i + 1]) for i in range(0, len(events), 2)],
    )


def _kept(keys: dict[str, int], name: str, code: int, scope: _Scope) -> bool:
    """The rest of ``otlp_proto.iter_raw_spans``'s test for a span none of whose ``keys`` is the prefilter's:
    more keys than the limit, or the name or an implied scope's ERROR status."""
    if len(keys) > scope.max_keys:
        return True
    return (
        name in scope.names
        or (bool(scope.prefixes) and name.startswith(scope.prefixes))
        or (scope.implied and code == STATUS_ERROR)
    )


def _scope_name(body: bytes, start: int, end: int) -> str:
    """The name of the (last, merged) InstrumentationScope of the ScopeSpans at ``body[start:end]``."""
    name = ""
    for scope_start, scope_end in _fields(body, start, end, _SCOPE):
        for name_start, name_end in _fields(body, scope_start, scope_end, _SCOPE_NAME):
            name = _string(body, name_start, name_end)
    return name


def _resource(body: bytes, start: int, end: int) -> dict[str, Any]:
    """The attributes of the (merged) Resource of the ResourceSpans at ``body[start:end]``."""
    attributes: dict[str, Any] = {}
    for resource_start, resource_end in _fields(body, start, end, _RESOURCE):
        for pair_start, pair_end in _fields(body, resource_start, resource_end, _RESOURCE_ATTRIBUTES):
            key, value_start, value_end = _key_value(body, pair_start, pair_end)
            attributes[key] = _value(body, value_start, value_end)
    return attributes


def span_count(body: bytes) -> int:
    """The number of spans in the export request ``body``."""
    count = 0
    for start, end in _fields(body, 0, len(body), _REQUEST_RESOURCE_SPANS):
        for scope_start, scope_end in _fields(body, start, end, _SCOPE_SPANS):
            count += len(_fields(body, scope_start, scope_end, _SPANS))
    return count


def _fields(body: bytes, start: int, end: int, wanted: int) -> list[tuple[int, int]]:
    """Where each value of the length-delimited field ``wanted`` lies in the message ``body[start:end]``."""
    found: list[tuple[int, int]] = []
    at = start
    while at < end:
        tag, at = varint(body, at)
        if tag == wanted:
            length, at = varint(body, at)
            found.append((at, at + length))
            at += length
        else:
            at = skip(body, at, tag)
    return found


def wire_spans(body: bytes, kept: SpanFilter, max_keys: int) -> list[SpanView]:
    """``list(otlp_proto.iter_raw_spans(RawTraceRequest.FromString(body), kept, max_keys))``, read from the
    wire."""
    views: list[SpanView] = []
    for start, end in _fields(body, 0, len(body), _REQUEST_RESOURCE_SPANS):
        resource = _resource(body, start, end)
        for scope_start, scope_end in _fields(body, start, end, _SCOPE_SPANS):
            scope = _Scope(resource, _scope_name(body, scope_start, scope_end), kept, max_keys)
            for span_start, span_end in _fields(body, scope_start, scope_end, _SPANS):
                view = _span(body, span_start, span_end, scope)
                if view is not None:
                    views.append(view)
    return views
