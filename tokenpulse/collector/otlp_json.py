"""OTLP/JSON export requests decoded straight into SpanViews, without protobuf's generic ParseDict.

ParseDict builds a protobuf message field by field through descriptors (~80% of file ingest's time);
this reads the few fields tokenpulse uses from the parsed JSON and builds the same SpanViews that
``otlp_proto.iter_spans`` makes of a protobuf request. It follows the protobuf JSON mapping as OTLP/JSON uses
it: both the lowerCamelCase and the original field names, null as absent, 64-bit integers as numbers or
strings, enums by number or name, hex trace and span ids, unknown fields ignored. A value of the wrong
type for a field it reads makes the whole request malformed (``Malformed``, a ValueError naming where).
Fields tokenpulse does not read (links, dropped counts, schema URLs) are not checked.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from typing import Any

from tokenpulse.collector.logs import EVENT, EVENT_NAME_KEY, JsonLogs, LogView
from tokenpulse.collector.spans import SpanEvent, SpanView

_INT64 = (-(1 << 63), 1 << 63)
_UINT64 = (0, 1 << 64)
_INT32 = (-(1 << 31), 1 << 31)
_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
}  # fmt: skip
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# A JSON text can only hold an unpaired surrogate (which no UTF-8 encoder accepts, so the row encoder
# would fail on it) through a \uD800-\uDFFF escape or, read with surrogatepass, their UTF-8 form.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Malformed(ValueError):
    """A document that is valid JSON but not an OTLP/JSON trace export request."""


# Where a value sits: a path, or (where a list sits, the attribute's key or the element's index); the
# text is made only for an error message.
Where = str | tuple["Where", str | int]


def _at(where: Where) -> str:
    return where if isinstance(where, str) else f"{_at(where[0])}[{where[1]!r}]"


def json_spans(document: Any, body: bytes = b"") -> list[SpanView]:
    """Every span of the OTLP/JSON export request ``document`` (``json.loads`` of ``body``).

    Raises Malformed, naming the place, for a document that is not one.
    """
    if not isinstance(document, dict):
        raise Malformed("OTLP/JSON body must be an object")
    _check_surrogates(document, body)
    views: list[SpanView] = []
    for r, resource_spans in enumerate(
        _list(_field(document, "resourceSpans", "resource_spans"), "resourceSpans")
    ):
        where = f"resourceSpans[{r}]"
        _element(resource_spans, where)
        resource = _object(resource_spans.get("resource"), f"{where}.resource")
        resource_attributes = _attributes(resource.get("attributes"), f"{where}.resource.attributes")
        scopes = _list(_field(resource_spans, "scopeSpans", "scope_spans"), f"{where}.scopeSpans")
        for s, scope_spans in enumerate(scopes):
            at = f"{where}.scopeSpans[{s}]"
            _element(scope_spans, at)
            scope_name = _string(
                _object(scope_spans.get("scope"), f"{at}.scope").get("name"), f"{at}.scope.name"
            )
            for i, span in enumerate(_list(scope_spans.get("spans"), f"{at}.spans")):
                try:
                    views.append(_span(span, resource_attributes, scope_name))
                except Malformed as error:
                    raise Malformed(f"{at}.spans[{i}]{error}") from None
    return views


def json_log_records(document: Any, body: bytes = b"") -> JsonLogs:
    """The evaluation records of the OTLP/JSON logs export request ``document`` (``json.loads`` of
    ``body``), and the number of records it holds.

    Other records are dropped after their event name is read: their attributes and body are not
    decoded. Raises Malformed, naming the place, for a document that is not a logs request.
    """
    if not isinstance(document, dict):
        raise Malformed("OTLP/JSON body must be an object")
    _check_surrogates(document, body)
    kept: list[LogView] = []
    received = 0
    resources = _list(_field(document, "resourceLogs", "resource_logs"), "resourceLogs")
    for r, resource_logs in enumerate(resources):
        where = f"resourceLogs[{r}]"
        _element(resource_logs, where)
        resource: dict[str, Any] | None = None  # decoded for a resource with an evaluation only
        scopes = _list(_field(resource_logs, "scopeLogs", "scope_logs"), f"{where}.scopeLogs")
        for s, scope_logs in enumerate(scopes):
            at = f"{where}.scopeLogs[{s}]"
            _element(scope_logs, at)
            scope_name = _string(
                _object(scope_logs.get("scope"), f"{at}.scope").get("name"), f"{at}.scope.name"
            )
            records = _list(_field(scope_logs, "logRecords", "log_records"), f"{at}.logRecords")
            received += len(records)
            for i, record in enumerate(records):
                place = f"{at}.logRecords[{i}]"
                if not _is_evaluation_json(_element(record, place), place):
                    continue
                if resource is None:
                    resource_object = _object(resource_logs.get("resource"), f"{where}.resource")
                    resource = _attributes(resource_object.get("attributes"), f"{where}.resource.attributes")
                kept.append(_log_record(record, resource, scope_name, place))
    return JsonLogs(kept, received)


def _is_evaluation_json(record: dict[str, Any], where: str) -> bool:
    """Whether a JSON log record is the event, from ``eventName`` or the ``event.name`` attribute alone."""
    name = _string(_field(record, "eventName", "event_name"), f"{where}.eventName")
    if name:
        return name == EVENT
    attributes = _list(record.get("attributes"), f"{where}.attributes")
    for item in attributes:
        if type(item) is dict and item.get("key") == EVENT_NAME_KEY:
            value = item.get("value")
            return type(value) is dict and value.get("stringValue", value.get("string_value")) == EVENT
    return False


def _log_record(record: dict[str, Any], resource: dict[str, Any], scope_name: str, where: str) -> LogView:
    return LogView(
        time_unix_nano=_integer(
            _field(record, "timeUnixNano", "time_unix_nano"), _UINT64, f"{where}.timeUnixNano"
        ),
        observed_time_unix_nano=_integer(
            _field(record, "observedTimeUnixNano", "observed_time_unix_nano"),
            _UINT64,
            f"{where}.observedTimeUnixNano",
        ),
        trace_id=_hex_id(_field(record, "traceId", "trace_id"), f"{where}.traceId"),
        span_id=_hex_id(_field(record, "spanId", "span_id"), f"{where}.spanId"),
        event_name=EVENT,
        attributes=_attributes(record.get("attributes"), f"{where}.attributes"),
        resource=resource,
        scope_name=scope_name,
    )


def _span(span: Any, resource: dict[str, Any], scope_name: str) -> SpanView:
    """One span; a Malformed raised here starts with the field's path below the span ('.name: ...')."""
    if type(span) is not dict:
        raise Malformed(": a span must be an object")
    get = span.get
    # Each field by its JSON name, else its proto name (as _field), inline: this runs for every call.
    status = get("status")
    if status is None:
        code, message = 0, ""
    else:
        status = _object(status, ".status")
        code = _enum(status.get("code"), _STATUS_CODES, ".status.code")
        message = _string(status.get("message"), ".status.message")
    events = get("events")
    name = get("name")
    if type(name) is not str:
        name = _string(name, ".name")
    start = get("startTimeUnixNano")
    end = get("endTimeUnixNano")
    parent = get("parentSpanId")
    return SpanView(
        trace_id=_hex_id(_field(span, "traceId", "trace_id"), ".traceId"),
        span_id=_hex_id(_field(span, "spanId", "span_id"), ".spanId"),
        parent_span_id=_hex_id(get("parent_span_id") if parent is None else parent, ".parentSpanId"),
        name=name,
        start_time_unix_nano=_integer(
            get("start_time_unix_nano") if start is None else start, _UINT64, ".startTimeUnixNano"
        ),
        end_time_unix_nano=_integer(
            get("end_time_unix_nano") if end is None else end, _UINT64, ".endTimeUnixNano"
        ),
        attributes=_attributes(get("attributes"), ".attributes"),
        resource=resource,
        scope_name=scope_name,
        kind=_enum(get("kind"), _SPAN_KINDS, ".kind"),
        status_code=code,
        status_message=message,
        events=[] if events is None else [_event(e, n) for n, e in enumerate(_list(events, ".events"))],
    )


def _event(event: Any, n: int) -> SpanEvent:
    where = f".events[{n}]"
    _element(event, where)
    return SpanEvent(
        _string(event.get("name"), f"{where}.name"),
        _integer(_field(event, "timeUnixNano", "time_unix_nano"), _UINT64, f"{where}.timeUnixNano"),
        _attributes(event.get("attributes"), f"{where}.attributes"),
    )


def _field(item: dict[str, Any], json_name: str, proto_name: str) -> Any:
    """A field by its JSON name or, as protobuf's JSON parser also accepts, its proto name."""
    value = item.get(json_name)
    return item.get(proto_name) if value is None else value


def _object(value: Any, where: Where) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise Malformed(f"{_at(where)}: expected an object, got {type(value).__name__}")
    return value


def _element(value: Any, where: Where) -> dict[str, Any]:
    """An element of a repeated message field: an object (protobuf's parser refuses null there too)."""
    if type(value) is not dict:
        raise Malformed(f"{_at(where)}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: Where) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise Malformed(f"{_at(where)}: expected a list, got {type(value).__name__}")
    return value


def _string(value: Any, where: Where) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise Malformed(f"{_at(where)}: expected a string, got {type(value).__name__}")
    return value


def _hex_id(value: Any, where: Where) -> str:
    """Ids are hex in OTLP/JSON; lowercase hex in a SpanView ('' when absent)."""
    if value is None or value == "":
        return ""
    if type(value) is not str:
        raise Malformed(f"{_at(where)}: expected a hex string, got {type(value).__name__}")
    try:
        return bytes.fromhex(value).hex()
    except ValueError:
        raise Malformed(f"{_at(where)}: {value!r} is not hex") from None


def _integer(value: Any, bounds: tuple[int, int], where: Where) -> int:
    """A 64-bit integer, which OTLP/JSON writes as a string or a number; 0 when absent."""
    if type(value) is int:
        number = value
    elif type(value) is str:
        try:
            number = int(value)
        except ValueError:
            number = _integral_float(value, where)
    elif value is None:
        return 0
    elif type(value) is float:
        number = _integral_float(value, where)
    else:
        raise Malformed(f"{_at(where)}: expected an integer, got {type(value).__name__}")
    if not bounds[0] <= number < bounds[1]:
        raise Malformed(f"{_at(where)}: {number} is out of range")
    return number


def _integral_float(value: str | float, where: Where) -> int:
    # protobuf's JSON parser takes an integer written as a float ("1e3", 1000.0), not a fraction.
    try:
        number = float(value)
        if number.is_integer():
            return int(number)
    except (ValueError, OverflowError):
        pass
    raise Malformed(f"{_at(where)}: {value!r} is not an integer")


def _enum(value: Any, names: dict[str, int], where: Where) -> int:
    """An enum by number or by name; an unknown name is the default, as protobuf's parser makes it."""
    if type(value) is str:
        if value in names:
            return names[value]
        try:
            value = int(value)
        except ValueError:
            return 0
    elif value is None:
        return 0
    if type(value) is not int:
        raise Malformed(f"{_at(where)}: expected an enum number or name, got {value!r}")
    if not _INT32[0] <= value < _INT32[1]:
        raise Malformed(f"{_at(where)}: {value} is out of range")
    return value


def _attributes(items: Any, where: Where) -> dict[str, Any]:
    """Repeated KeyValue as a dict; a repeated key keeps its last value (``otlp_proto.attributes_dict``)."""
    if type(items) is not list:
        if items is None:
            return {}
        raise Malformed(f"{_at(where)}: expected a list, got {type(items).__name__}")
    result = {}
    for item in items:
        if type(item) is not dict:
            raise Malformed(f"{_at(where)}: an attribute must be an object, got {type(item).__name__}")
        key = item.get("key", "")
        if type(key) is not str:
            key = _string(key, f"{_at(where)}.key")
        value = item.get("value")
        # The hottest loop of file ingest: a value object with one field, most often a string, then an
        # integer (a string of digits in OTLP/JSON: fewer than 19 cannot leave the int64 range).
        if type(value) is dict and len(value) == 1:
            raw = value.get("stringValue")
            if type(raw) is str:
                result[key] = raw
                continue
            raw = value.get("intValue")
            if type(raw) is str and len(raw) < 19 and raw.isdecimal():
                result[key] = int(raw)
                continue
            ((kind, raw),) = value.items()
            convert = _VALUES.get(kind)
            # The place is formatted only for an error message: (where, key) costs next to nothing.
            result[key] = None if convert is None or raw is None else convert(raw, (where, key))
        else:
            result[key] = _any_value(value, (where, key))
    return result


def _any_value(value: Any, where: Where) -> Any:
    """An AnyValue object as a Python value; None when it holds none (bytes become hex)."""
    if value is None:
        return None
    if type(value) is not dict:
        raise Malformed(f"{_at(where)}: a value must be an object, got {type(value).__name__}")
    found, result = None, None
    for kind, raw in value.items():
        convert = _VALUES.get(kind)
        if convert is None or raw is None:
            continue
        if found is not None:
            raise Malformed(f"{_at(where)}: both {found} and {kind} set")
        found, result = kind, convert(raw, where)
    return result


def _string_value(raw: Any, where: Where) -> str:
    return _string(raw, where)


def _int_value(raw: Any, where: Where) -> int:
    return _integer(raw, _INT64, where)


def _double_value(raw: Any, where: Where) -> float:
    if type(raw) is float:
        if math.isfinite(raw):
            return raw
    elif type(raw) is int:
        return float(raw)
    elif type(raw) is str:  # "NaN", "Infinity", "-Infinity" or a number in quotes
        try:
            return _FLOAT_WORDS.get(raw) or float(raw)
        except ValueError:
            pass
    raise Malformed(f"{_at(where)}: expected a number, got {raw!r}")


def _bool_value(raw: Any, where: Where) -> bool:
    if type(raw) is not bool:
        raise Malformed(f"{_at(where)}: expected true or false, got {raw!r}")
    return raw


def _bytes_value(raw: Any, where: Where) -> str:
    if type(raw) is not str:
        raise Malformed(f"{_at(where)}: expected base64, got {type(raw).__name__}")
    try:
        # As protobuf's parser reads bytes: either base64 alphabet, padding optional.
        return base64.urlsafe_b64decode(raw.encode() + b"=" * (4 - len(raw) % 4)).hex()
    except ValueError:
        raise Malformed(f"{_at(where)}: {raw!r} is not base64") from None


def _array_value(raw: Any, where: Where) -> list[Any]:
    values = _list(_object(raw, where).get("values"), where)
    return [_any_value(v, (where, n)) for n, v in enumerate(values)]


def _kvlist_value(raw: Any, where: Where) -> dict[str, Any]:
    return _attributes(_object(raw, where).get("values"), where)


_VALUES: dict[str, Callable[[Any, Where], Any]] = {}
for _name, _convert in (
    ("string", _string_value), ("int", _int_value), ("double", _double_value), ("bool", _bool_value),
    ("bytes", _bytes_value), ("array", _array_value), ("kvlist", _kvlist_value),
):  # fmt: skip
    _VALUES[f"{_name}Value"] = _VALUES[f"{_name}_value"] = _convert


def _check_surrogates(document: Any, body: bytes) -> None:
    """Raise Malformed if ``document`` (parsed from ``body``) holds an unpaired surrogate."""
    # Substring tests first: they scan at memory speed, the regular expression does not.
    if (b"\\ud" in body or b"\\uD" in body or b"\xed" in body) and _MAYBE_SURROGATE.search(body):
        _reject_unpaired_surrogates(document)


def _reject_unpaired_surrogates(document: Any) -> None:
    """Raise Malformed if any string (or key) of ``document`` holds a lone UTF-16 surrogate."""
    pending = [document]
    while pending:
        item = pending.pop()
        if type(item) is str:
            if _SURROGATE.search(item):
                raise Malformed("unpaired surrogate in a string")
        elif type(item) is dict:
            pending.extend(item.keys())
            pending.extend(item.values())
        elif type(item) is list:
            pending.extend(item)
