"""The dialect declarations and the engine that compiles them: a new dialect is one declaration."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import tokenpulse.collector.dialects as dialects_package
from tests.collector.normalize_helpers import FakePricer, call, span, tool
from tokenpulse.collector.dialects import (
    ByKey,
    ByValue,
    Dialect,
    Keys,
    Markers,
    agent,
    load_dialects,
    non_leaf,
)
from tokenpulse.collector.dialects.semconv import OPERATION_ALIASES
from tokenpulse.collector.normalize import ENGINE, Engine, NormalizeConfig, normalize_span

# A made-up instrumentation: its own kind attribute, token keys and provider key.
ACME = Dialect(
    name="acme",
    order=70,
    markers=Markers(keys=("acme.kind",), scope_prefixes=("acme.llm",)),
    keys=Keys(
        input=("acme.tokens.in",),
        output=("acme.tokens.out",),
        cache_read=("acme.tokens.cached",),
        provider=("acme.vendor",),
        request_model=("acme.model",),
        tool_name=("acme.tool",),
    ),
    rules=(
        ByValue(
            "acme.kind",
            {
                "generate": dialects_package.call("chat"),
                "embed": dialects_package.call("embeddings"),
                "tool": dialects_package.tool(),
            },
            normalize="lower",
            other=non_leaf(),
        ),
    ),
)
ACME_CALL = {
    "acme.kind": "Generate",
    "acme.vendor": "OpenAI",
    "acme.model": "gpt-4o",
    "acme.tokens.in": 1000,
    "acme.tokens.cached": 400,
    "acme.tokens.out": 50,
}


def test_a_made_up_dialect_is_one_declaration() -> None:
    engine = Engine((*load_dialects(), ACME))
    record = normalize_span(span(ACME_CALL), NormalizeConfig(), FakePricer(), engine)
    assert record == call(
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o",
        input_tokens=1000,
        cache_read_tokens=400,
        output_tokens=50,
        dialect="acme",
    )
    tool_span = span({"acme.kind": "tool", "acme.tool": "lookup"})
    assert normalize_span(tool_span, NormalizeConfig(), FakePricer(), engine) == tool(name="lookup")
    assert (
        normalize_span(span({**ACME_CALL, "acme.kind": "pipeline"}), NormalizeConfig(), FakePricer(), engine)
        is None
    )
    # Without the declaration the same span is nobody's call: the declaration did all of it.
    assert normalize_span(span(ACME_CALL), NormalizeConfig(), FakePricer()) is None
    # And the pre-filter of that engine lets its spans through.
    assert engine.prefilter.keeps_view(span(ACME_CALL))
    assert not ENGINE.prefilter.keeps_view(span(ACME_CALL))


def test_a_dialect_module_dropped_into_the_package_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a dialect is adding a file: the loader finds every module of the package."""
    (tmp_path / "acme.py").write_text(
        textwrap.dedent(
            """
            from tokenpulse.collector.dialects import ByValue, Dialect, Keys, Markers, call

            DIALECT = Dialect(
                name="acme",
                order=70,
                markers=Markers(keys=("acme.kind",)),
                keys=Keys(input=("acme.tokens.in",), request_model=("acme.model",)),
                rules=(ByValue("acme.kind", {"generate": call("chat")}),),
            )
            """
        )
    )
    monkeypatch.setattr(dialects_package, "__path__", [*dialects_package.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "tokenpulse.collector.dialects.acme", raising=False)
    loaded = load_dialects()
    assert [d.name for d in loaded][-2:] == ["acme", "semconv"]  # by order, the fallback last
    record = normalize_span(
        span({"acme.kind": "generate", "acme.model": "m", "acme.tokens.in": 7}),
        NormalizeConfig(),
        FakePricer(),
        Engine(loaded),
    )
    assert record is not None and record["dialect"] == "acme" and record["input_tokens"] == 7
    sys.modules.pop("tokenpulse.collector.dialects.acme", None)


def test_the_package_declares_the_seven_dialects_in_detection_order() -> None:
    assert [d.name for d in ENGINE.dialects] == [
        "vercel-ai",
        "langfuse",
        "openinference",
        "openlit",
        "pydantic-ai",
        "openllmetry",
        "semconv",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (Dialect(name="semconv", order=80), "share a name"),
        (Dialect(name="other", order=10), "share a detection order"),
        (Dialect(name="second-fallback", order=0, fallback=True), "exactly one dialect must be the fallback"),
        (
            Dialect(
                name="clash",
                order=80,
                rules=(
                    ByValue(
                        "gen_ai.operation.name",
                        {"chat": dialects_package.tool()},
                        normalize="strip-lower",
                        aliases=OPERATION_ALIASES,
                    ),
                ),
            ),
            "already declared",
        ),
        (
            Dialect(name="spelling", order=80, rules=(ByValue("gen_ai.operation.name", {"x": agent()}),)),
            "spells values unlike",
        ),
    ],
)
def test_declarations_that_contradict_each_other_are_refused(extra: Dialect, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Engine((*load_dialects(), extra))


def test_a_declaration_must_spell_values_one_known_way() -> None:
    with pytest.raises(ValueError, match="normalize must be one of"):
        ByValue("k", {}, normalize="title")
    with pytest.raises(ValueError, match="no markers"):
        Dialect(name="x", order=1, fallback=True, markers=Markers(keys=("k",)))


def test_claimed_only_rules_apply_to_their_dialect_alone() -> None:
    """Pydantic AI's `agent_name` makes an agent of its own spans only."""
    attrs = {"agent_name": "support", "gen_ai.aggregated_usage.input_tokens": 5}
    assert normalize_span(
        span(attrs, name="x", scope="pydantic-ai"), NormalizeConfig(), FakePricer()
    ) == tool(kind="agent", name="support")
    assert normalize_span(span(attrs, name="x"), NormalizeConfig(), FakePricer()) is None
    assert any(isinstance(r, ByKey) and r.claimed_only for d in ENGINE.dialects for r in d.rules)
