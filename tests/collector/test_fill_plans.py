"""The one pass over a span's attributes is planned once per set of keys (collector.normalize._Dispatch):
a remembered plan reads every later span of that shape exactly as a fresh engine reads it, whatever the
values (absent, refused by a reader, or accepted)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.collector.normalize_helpers import FakePricer, span
from tokenpulse.collector import normalize
from tokenpulse.collector.dialects import load_dialects
from tokenpulse.collector.normalize import Engine, NormalizeConfig, normalize_span

CONFIG = NormalizeConfig()
# One shape: the keys in this order, each span with other values.
SHAPE = (
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.response.time_to_first_chunk",
    "tokenpulse.route",
    "app.route",
    "tokenpulse.router.escalated",
)
VALUES: list[tuple[Any, ...]] = [
    ("chat", "gpt-4o", "gpt-4o-2024-08-06", 10, 99, 5, 0.4, "/a", "/b", "true"),
    # a refused first key gives way to the next present one: an empty model, an unreadable TTFT,
    # an empty route; None is absent
    ("chat", "", "gpt-4o-2024-08-06", None, 7, 5, "soon", "", "/b", None),
    ("chat", None, "", 3, None, 1, None, None, None, "no"),
    ("chat", "gpt-4o-mini", None, 0, 0, 0, -1, "/c", "", 0),
]


def _record(engine: Engine, values: tuple[Any, ...]) -> Any:
    return normalize_span(span(dict(zip(SHAPE, values, strict=True))), CONFIG, FakePricer(), engine)


@pytest.mark.parametrize("order", [VALUES, VALUES[::-1]])
def test_a_remembered_plan_reads_each_span_as_a_fresh_engine(order: list[tuple[Any, ...]]) -> None:
    engine = Engine(load_dialects())
    records = [_record(engine, values) for values in order]
    assert records == [_record(Engine(load_dialects()), values) for values in order]
    (dispatch,) = {d for d in engine._dispatch_memo[1].values() if d.plans}  # type: ignore[index]
    assert list(dispatch.plans) == [SHAPE]  # one plan served all four spans
    assert records[order.index(VALUES[1])]["ttft_ms"] is None  # "soon" refused, no other TTFT key
    assert records[order.index(VALUES[1])]["route"] == "/b"  # "" refused: the next route key
    assert records[order.index(VALUES[1])]["input_tokens"] == 7  # None absent: the next input key


def test_past_the_bound_plans_are_made_every_time_and_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalize, "_MAX_PLANS", 2)
    engine = Engine(load_dialects())
    for n in range(5):  # five shapes: the same keys, one more extra key each
        attrs = {**dict(zip(SHAPE, VALUES[0], strict=True)), **{f"x.{i}": i for i in range(n)}}
        fresh = normalize_span(span(attrs), CONFIG, FakePricer(), Engine(load_dialects()))
        assert normalize_span(span(attrs), CONFIG, FakePricer(), engine) == fresh
    plans = [d.plans for d in engine._dispatch_memo[1].values() if d.plans]  # type: ignore[index]
    assert [len(p) for p in plans] == [2]
