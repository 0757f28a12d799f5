"""OTLP trace requests parsed with each attribute's value left as its bytes, for the hot path of ingest.

Reading a span's attributes through the generated classes makes, per attribute, a KeyValue wrapper, an
AnyValue wrapper and a WhichOneof call: about 0.8 us an attribute, the largest cost of a protobuf LLM
span, and the prefilter's walk over the keys of a span it drops made a KeyValue wrapper a key.
``RawTraceRequest`` is ``ExportTraceServiceRequest`` with ``KeyValue.value`` declared ``bytes`` and
``Span.attributes`` declared ``map<string, bytes>`` (the wire encodes a message and a bytes field alike,
and a map as repeated key/value entries). So a span's keys iterate from the map with no object per
attribute, a value is one bytes object, and the usual ones (a string, an integer, a double, a bool) are
read from it here, memoized by those bytes: an instrumentation writes the same values (model, provider,
route) span after span. A map keeps a repeated key's last value, as ``otlp_proto.attributes_dict`` does;
its keys come in another order, which nothing reading a span's attributes depends on. One body reads
otherwise: a KeyValue carrying a field besides its key and value (no OTLP version defines one) is a map entry
with an unknown field, which the parse keeps among the span's unknown fields, so that attribute is missing
here where the generated classes and ``otlp_wire`` (the compiled build's route) read it.

The body is parsed with the generated classes first all the same (``otlp.decode_request``): that parse
checks what this one cannot (UTF-8 and wire format inside an AnyValue), so a body is accepted or refused
exactly as before. Any value that is not one usual scalar filling its whole encoding (arrays, maps,
bytes, an AnyValue with two fields set, an empty one) is parsed by ``AnyValue`` and converted by
``otlp_proto.any_value``: the result is the same value whichever route reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tokenpulse.collector.protobuf_wire import NOT_SCALAR, scalar

_COMMON = "opentelemetry/proto/common/v1/common.proto"
_TRACE = "opentelemetry/proto/trace/v1/trace.proto"
_Field = descriptor_pb2.FieldDescriptorProto
_FileProto = descriptor_pb2.FileDescriptorProto


def _values_as_bytes(proto: _FileProto) -> None:
    """``KeyValue.value`` declared ``bytes``: each attribute's AnyValue is left encoded."""
    (key_value,) = (m for m in proto.message_type if m.name == "KeyValue")
    (value,) = (f for f in key_value.field if f.name == "value")
    value.type = _Field.TYPE_BYTES
    value.ClearField("type_name")


def _span_attributes_as_map(proto: _FileProto) -> None:
    """``Span.attributes`` declared ``map<string, bytes>``: the wire form of repeated KeyValue."""
    (span,) = (m for m in proto.message_type if m.name == "Span")
    (attributes,) = (f for f in span.field if f.name == "attributes")
    entry = span.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_Field.TYPE_BYTES, label=_Field.LABEL_OPTIONAL)
    attributes.type_name = ".opentelemetry.proto.trace.v1.Span.AttributesEntry"


def _raw_request_class() -> type[Message]:
    """``ExportTraceServiceRequest`` of a private pool with the two edits above."""
    files: list[Any] = []

    def collect(file: Any) -> None:  # dependencies first, each once
        for dependency in file.dependencies:
            collect(dependency)
        if file not in files:
            files.append(file)

    collect(ExportTraceServiceRequest.DESCRIPTOR.file)
    pool = descriptor_pool.DescriptorPool()
    edits = {_COMMON: _values_as_bytes, _TRACE: _span_attributes_as_map}
    for file in files:
        proto = _FileProto()
        file.CopyToProto(proto)
        if proto.name in edits:
            edits[proto.name](proto)
        pool.Add(proto)
    name = ExportTraceServiceRequest.DESCRIPTOR.full_name
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


RawTraceRequest = _raw_request_class()

_MAX_MEMO = 8192
# Only short values repeat span after span (a model, a provider, a route); a long one (a prompt an
# instrumentation records as an attribute) is read once and not kept: the memo's memory stays small.
_MAX_MEMO_BYTES = 256
_memo: dict[bytes, Any] = {}
# Arrays of scalars repeat too (``gen_ai.response.finish_reasons: ["stop"]``): kept as tuples, each span
# given a list of its own (a shallow copy, in C), as the parse would have built it.
_array_memo: dict[bytes, tuple[Any, ...]] = {}
_SCALAR_TYPES = (str, int, float, bool)


def raw_value(raw: bytes, any_value: Callable[[AnyValue], Any]) -> Any:
    """The Python value of an encoded AnyValue, as ``any_value`` makes it of the parsed message."""
    value = _memo.get(raw, NOT_SCALAR)
    if value is not NOT_SCALAR:
        return value
    if raw:
        value = scalar(raw, 0, len(raw))
        if value is not NOT_SCALAR:
            if len(raw) > _MAX_MEMO_BYTES:
                return value
            if len(_memo) >= _MAX_MEMO:  # values of high cardinality (ids, counts) must not grow it
                _memo.clear()
            _memo[raw] = value  # immutable: shared by every span carrying it
            return value
    array = _array_memo.get(raw)
    if array is not None:
        return list(array)
    value = any_value(AnyValue.FromString(raw))  # a list or dict is built anew for each span
    if type(value) is list and len(raw) <= _MAX_MEMO_BYTES and all(type(v) in _SCALAR_TYPES for v in value):
        if len(_array_memo) >= _MAX_MEMO:
            _array_memo.clear()
        _array_memo[raw] = tuple(value)
    return value


def raw_map(attributes: Mapping[str, bytes], any_value: Callable[[AnyValue], Any]) -> dict[str, Any]:
    """The dict of a span's ``attributes`` map (a repeated key kept its last value in the parse)."""
    result = {}
    get = _memo.get
    # Iterating the map itself runs in C (dict(map) goes through a Python KeysView); most values are
    # in the memo. A miss is told by identity in the loop: a second pass finding the misses compared
    # every value with the sentinel (~0.6 us a span of 15 attributes, measured).
    for key in attributes:
        raw = attributes[key]
        value = get(raw, NOT_SCALAR)
        result[key] = value if value is not NOT_SCALAR else raw_value(raw, any_value)
    return result


def raw_attributes(attributes: Iterable[Any], any_value: Callable[[AnyValue], Any]) -> dict[str, Any]:
    """``otlp_proto.attributes_dict`` of raw KeyValues: a repeated key keeps its last value, in its first
    key's place."""
    result = {}
    get = _memo.get
    for kv in attributes:
        raw = kv.value
        value = get(raw, NOT_SCALAR)
        result[kv.key] = raw_value(raw, any_value) if value is NOT_SCALAR else value
    return result
