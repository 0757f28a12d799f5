"""The span views: what every builder (the wire walk, the OTLP/JSON decoders, tests) relies on, in either
build; compiled, the classes are native with written-out constructors."""

from __future__ import annotations

import dataclasses
from types import ModuleType

import pytest

from tests.compiled import is_compiled, source_module
from tokenpulse.collector import spans

ARGUMENTS = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "", "chat", 10, 20, {"k": 1}, {"r": "s"})


def _builds(module: ModuleType) -> list[object]:
    """The same view built every way a builder makes one: positional, by keyword, defaults given."""
    attributes = {"exception.type": "Timeout"}
    event = module.SpanEvent("exception", 15, attributes)
    keywords = dict(zip(_names(module), ARGUMENTS, strict=False))
    return [
        module.SpanView(*ARGUMENTS, "scope", 3, spans.STATUS_ERROR, "boom", [event]),
        module.SpanView(
            **keywords, scope_name="scope", kind=3, status_code=spans.STATUS_ERROR, status_message="boom",
            events=[module.SpanEvent(name="exception", time_unix_nano=15, attributes=attributes)],
        ),
        dataclasses.replace(module.SpanView(*ARGUMENTS), scope_name="scope", kind=3, status_code=2,
                            status_message="boom", events=[event]),
    ]  # fmt: skip


def _names(module: ModuleType) -> list[str]:
    return [field.name for field in dataclasses.fields(module.SpanView)]


def test_a_view_is_the_same_however_it_is_built() -> None:
    first, *others = _builds(spans)
    assert all(other == first for other in others)
    assert first != dataclasses.replace(first, name="other")
    assert repr(first).startswith("SpanView(trace_id='4bf92f3577b34da6a3ce929d0e0e4736', ")


def test_defaults_are_fresh_per_view() -> None:
    one, two = spans.SpanView(*ARGUMENTS), spans.SpanView(*ARGUMENTS)
    assert (one.scope_name, one.kind, one.status_code, one.status_message, one.events) == ("", 0, 0, "", [])
    one.events.append(spans.SpanEvent("e", 1))
    assert two.events == [] and spans.SpanEvent("e", 1).attributes == {}


def test_the_compiled_views_behave_as_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_compiled(spans):
        pytest.skip("spans is not compiled (setup.py)")
    pure = source_module(spans, monkeypatch)
    compiled_views, pure_views = _builds(spans), _builds(pure)
    assert [repr(v) for v in compiled_views] == [repr(v) for v in pure_views]
    assert _names(spans) == _names(pure)
    with pytest.raises(TypeError):  # a native field holds its declared type only
        spans.SpanView(*ARGUMENTS[:6], None, {})
