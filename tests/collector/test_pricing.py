"""Tests for tokenpulse.collector.pricing. Expected figures are worked out by hand from the per-million
prices in the installed genai-prices data (quoted next to each test); no network."""

from __future__ import annotations

import logging
import pickle
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice

from tests.compiled import is_compiled, source_module
from tokenpulse.collector import pricing
from tokenpulse.collector.pricing import Pricer, TokenPrice

D = Decimal


def _usage(inp: int, out: int, cr: int = 0, cw: int = 0, rs: int = 0) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": cr,
        "cache_write_tokens": cw,
        "reasoning_tokens": rs,
    }


def test_gpt_4o_with_cache_reads() -> None:
    # gpt-4o: input $2.5/M, cache read $1.25/M, output $10/M.
    # 10,000 input of which 4,000 cache reads, 1,500 output.
    expected = (6_000 * D("2.5") + 4_000 * D("1.25") + 1_500 * D("10")) / 1_000_000
    assert expected == D("0.035")
    assert Pricer().price("openai", "gpt-4o", **_usage(10_000, 1_500, cr=4_000)) == (expected, "genai-prices")
    # A dated snapshot name resolves to the same model.
    assert Pricer().price("openai", "gpt-4o-2024-08-06", **_usage(10_000, 1_500, cr=4_000)) == (
        expected,
        "genai-prices",
    )


def test_anthropic_cache_writes_and_reads() -> None:
    # claude-3-5-sonnet: input $3/M, cache write $3.75/M, cache read $0.3/M, output $15/M.
    # 20,000 input = 3,000 uncached + 12,000 cache reads + 5,000 cache writes; 1,000 output.
    expected = (3_000 * D(3) + 12_000 * D("0.3") + 5_000 * D("3.75") + 1_000 * D(15)) / 1_000_000
    assert expected == D("0.04635")
    result = Pricer().price("anthropic", "claude-3-5-sonnet-20241022", **_usage(20_000, 1_000, 12_000, 5_000))
    assert result == (expected, "genai-prices")


def test_openai_reasoning_model_bills_reasoning_inside_output() -> None:
    # o3 (price since 2025-06-10): input $2/M, cache read $0.5/M, output $8/M; reasoning is plain output.
    # 5,000 input of which 1,000 cache reads; 3,000 output of which 2,000 reasoning.
    expected = (4_000 * D(2) + 1_000 * D("0.5") + 3_000 * D(8)) / 1_000_000
    assert expected == D("0.0325")
    pricer = Pricer()
    assert pricer.price("openai", "o3", **_usage(5_000, 3_000, cr=1_000, rs=2_000)) == (
        expected,
        "genai-prices",
    )
    # Reasoning is a subset of output, so how much of it there was doesn't change the cost.
    assert pricer.price("openai", "o3", **_usage(5_000, 3_000, cr=1_000, rs=0)) == (expected, "genai-prices")


def test_model_billing_reasoning_separately() -> None:
    # sonar-deep-research: input $2/M, output $8/M, reasoning $3/M.
    # 1,000 input; 5,000 output of which 4,000 reasoning.
    expected = (1_000 * D(2) + 1_000 * D(8) + 4_000 * D(3)) / 1_000_000
    assert expected == D("0.022")
    result = Pricer().price("perplexity", "sonar-deep-research", **_usage(1_000, 5_000, rs=4_000))
    assert result == (expected, "genai-prices")


def test_tiered_price_switches_above_threshold() -> None:
    # gemini-2.5-pro: input $1.25/M, cache read $0.125/M, output $10/M up to 200k input tokens; above it
    # every token costs $2.5/M, $0.25/M and $15/M respectively.
    pricer = Pricer()
    at_threshold = (150_000 * D("1.25") + 50_000 * D("0.125") + 1_000 * D(10)) / 1_000_000
    above = (150_001 * D("2.5") + 50_000 * D("0.25") + 1_000 * D(15)) / 1_000_000
    assert (at_threshold, above) == (D("0.20375"), D("0.4025025"))
    assert pricer.price("gcp.vertex_ai", "gemini-2.5-pro", **_usage(200_000, 1_000, cr=50_000)) == (
        at_threshold,
        "genai-prices",
    )
    assert pricer.price("gcp.vertex_ai", "gemini-2.5-pro", **_usage(200_001, 1_000, cr=50_000)) == (
        above,
        "genai-prices",
    )


def test_time_dependent_price_uses_the_current_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # deepseek-chat: $0.27/$0.07 cache read/$1.1 output 00:30-16:30 UTC, $0.135/$0.035/$0.55 otherwise.
    class Clock(datetime):
        at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return cls.at

    monkeypatch.setattr(pricing, "datetime", Clock)
    pricer = Pricer()
    usage = _usage(10_000, 1_000, cr=4_000)
    assert pricer.price("deepseek", "deepseek-chat", **usage) == (D("0.003"), "genai-prices")
    Clock.at = datetime(2026, 1, 5, 20, 0, tzinfo=UTC)
    assert pricer.price("deepseek", "deepseek-chat", **usage) == (D("0.0015"), "genai-prices")


def test_override_for_self_hosted_model() -> None:
    pricer = Pricer(
        {"llama-3.1-70b-instruct": TokenPrice(input=D("0.20"), output=D("0.60"), cache_read=D("0.05"))}
    )
    # 10,000 input = 7,000 uncached + 2,000 cache reads + 1,000 cache writes (no write price -> input price);
    # 2,000 output of which 500 reasoning (no reasoning price -> output price).
    expected = (7_000 * D("0.2") + 2_000 * D("0.05") + 1_000 * D("0.2") + 2_000 * D("0.6")) / 1_000_000
    assert expected == D("0.0029")
    result = pricer.price("openai", "llama-3.1-70b-instruct", **_usage(10_000, 2_000, 2_000, 1_000, 500))
    assert result == (expected, "override")


def test_provider_qualified_override_wins() -> None:
    pricer = Pricer(
        {
            "gpt-4o": TokenPrice(input=D(1), output=D(1)),
            "openai/gpt-4o": TokenPrice(input=D(2), output=D(2)),
        }
    )
    usage = _usage(1_000_000, 0)
    assert pricer.price("openai", "gpt-4o", **usage) == (D(2), "override")
    # Another provider falls back to the plain model key, which beats genai-prices too.
    assert pricer.price("azure.ai.openai", "gpt-4o", **usage) == (D(1), "override")


def test_unknown_model_returns_none_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    pricer = Pricer()
    with caplog.at_level(logging.WARNING, logger="tokenpulse.collector.pricing"):
        assert pricer.price("openai", "my-finetune-xyz", **_usage(100, 10)) is None
        assert pricer.price("openai", "my-finetune-xyz", **_usage(200, 20)) is None
    assert len(caplog.records) == 1
    assert "my-finetune-xyz" in caplog.records[0].getMessage()
    # Unknown provider: matched by model name only; unmatched stays None, never $0.
    assert pricer.price("", "gpt-4o-mini", **_usage(100, 10)) is not None
    assert pricer.price("ibm.watsonx.ai", "granite-3-8b-instruct", **_usage(100, 10)) is None


def test_model_priced_only_per_audio_hour_is_unknown_not_free() -> None:
    # whisper-1 has an audio-hours price only; a token count can't price it.
    assert Pricer().price("openai", "whisper-1", **_usage(1_000, 100)) is None


def test_cost_is_decimal_quantized_half_even() -> None:
    pricer = Pricer({"tiny": TokenPrice(input=D("0.0000025"), output=D(0))})
    cost, _ = pricer.price("", "tiny", **_usage(1, 0))  # type: ignore[misc]
    assert type(cost) is Decimal
    assert cost.as_tuple().exponent == -12
    assert cost == D("0.000000000002")  # 2.5e-12 rounds to even
    assert pricer.price("", "tiny", **_usage(3, 0)) == (D("0.000000000008"), "override")  # 7.5e-12 -> 8e-12


def test_override_rejects_float() -> None:
    with pytest.raises(ValueError, match="Decimal"):
        Pricer({"m": TokenPrice(input=0.5, output=D(1))})  # type: ignore[arg-type]


def _all_model_prices() -> list[tuple[str, ModelPrice]]:
    out: list[tuple[str, ModelPrice]] = []
    for provider in get_snapshot().providers:
        for model in provider.models:
            prices = (
                [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
            )
            out.extend((f"{provider.id}/{model.id}", mp) for mp in prices)
    return out


def test_compiled_prices_match_genai_prices_calc_for_every_model() -> None:
    """The fast path must give exactly what genai-prices' own calculation gives, tiers included."""
    checked = 0
    for name, model_price in _all_model_prices():
        card = pricing._compile(model_price)
        if card is None:
            continue
        pricer = Pricer()
        pricer._cache[("p", "m")] = ("genai-prices", card)
        inputs = [0, 1_000, 25_000, *(n for t in card.thresholds for n in (t, t + 1, 3 * t))]
        for inp in inputs:
            cr, cw, out, rs = inp // 3, inp // 5, 1_234, 567
            cw_1h = cw // 2  # half the writes with a 1-hour TTL
            ours = pricer.price("p", "m", **_usage(inp, out, cr, cw, rs), cache_write_1h_tokens=cw_1h)
            usage = Usage(
                input_tokens=inp,
                output_tokens=out,
                cache_read_tokens=cr,
                cache_write_tokens=cw,
                cache_write_1h_tokens=cw_1h,
                output_reasoning_tokens=rs,
            )
            theirs = model_price.calc_price(usage)["total_price"].quantize(D("1e-12"))
            assert ours == (theirs, "genai-prices"), (name, inp)
            checked += 1
    assert checked > 2_000


def test_integer_route_gives_the_decimal_arithmetic_cost_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call priced in integers (the usual route) costs the very Decimal, exponent included, that the
    Decimal arithmetic gives (the route past _MAX_EXACT digits, and of tier multipliers)."""
    rng = random.Random(7)
    calls = []
    for _, model_price in _all_model_prices():
        card = pricing._compile(model_price)
        if card is None:
            continue
        assert all(band.scaled is not None for band in card.bands)
        for _ in range(5):
            inp = rng.choice([0, 1, 7, 2_000, 150_000, 99_999_999, rng.randrange(10**6)])
            cr = rng.randrange(inp + 1) // 2
            cw = rng.randrange(inp - cr + 1)
            out = rng.choice([0, 1, 300, rng.randrange(10**7)])
            usage = _usage(inp, out, cr, cw, rng.randrange(out + 1) // 3)
            calls.append((card, usage, rng.randrange(cw + 1) if rng.random() < 0.3 else 0))
    calls.append((pricing._override_card("tiny", TokenPrice(D("0.0000025"), D(0))), _usage(1, 0), 0))

    def costs() -> list[tuple[Decimal, tuple[object, ...]] | None]:
        found = []
        for card, usage, cw_1h in calls:
            pricer = Pricer()
            pricer._cache[("p", "m")] = ("genai-prices", card)
            priced = pricer.price("p", "m", **usage, cache_write_1h_tokens=cw_1h)  # type: ignore[arg-type]
            found.append(None if priced is None else (priced[0], priced[0].as_tuple()))
        return found

    integers = costs()
    monkeypatch.setattr(pricing, "_MAX_EXACT", 0)  # every call through the Decimal arithmetic
    assert integers == costs()
    assert len(calls) > 5_000


def test_a_price_override_survives_the_pickling_that_takes_settings_to_workers() -> None:
    # serve --workers and file ingest's workers unpickle the settings, [prices] overrides included.
    price = TokenPrice(D("1.5"), D("6"), cache_read=D("0.15"))
    copy = pickle.loads(pickle.dumps(price))
    assert copy == price
    usage = _usage(10_000, 2_000, cr=4_000)
    assert Pricer({"m": copy}).price("p", "m", **usage) == Pricer({"m": price}).price("p", "m", **usage)


@pytest.mark.skipif(not is_compiled(pricing), reason="pricing is not compiled (setup.py)")
def test_the_compiled_module_prices_as_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension setup.py builds is pricing.py's code: the same cost and source for every model of
    the bundled data, an override, an unknown model and the served tiers."""
    pure = source_module(pricing, monkeypatch)
    overrides = {"self-hosted": TokenPrice(D("0.2"), D("0.8"))}
    compiled, source = Pricer(overrides), pure.Pricer(overrides)
    rng = random.Random(13)
    models = [(provider.id, model.id) for provider in get_snapshot().providers for model in provider.models]
    models += [("vllm", "self-hosted"), ("openai", "no-such-model")]
    tiers = [{}, {"service_tier": "priority"}, {"service_tier": "flex"}, {"speed": "fast"}]
    for provider, model in models:
        inp = rng.choice([0, 1, 2_000, 150_000, rng.randrange(10**6)])
        cr = rng.randrange(inp + 1) // 2
        out = rng.choice([0, 300, rng.randrange(10**6)])
        usage = _usage(inp, out, cr, rng.randrange(inp - cr + 1), rng.randrange(out + 1) // 3)
        tier = rng.choice(tiers)
        assert compiled.price(provider, model, **usage, **tier) == source.price(
            provider, model, **usage, **tier
        )
    assert len(models) > 500


def test_one_hour_cache_writes_bill_at_twice_input() -> None:
    # claude-sonnet-4-5: input $3/M, 5-minute cache write $3.75/M (1.25x), 1-hour write $6/M (2x).
    # 100,000 input = 10,000 uncached + 90,000 cache writes, 60,000 of them with a 1-hour TTL; no output.
    expected = (10_000 * D(3) + 30_000 * D("3.75") + 60_000 * D(6)) / 1_000_000
    assert expected == D("0.5025")
    priced = Pricer().price(
        "anthropic", "claude-sonnet-4-5", **_usage(100_000, 0, cw=90_000), cache_write_1h_tokens=60_000
    )
    assert priced == (expected, "genai-prices")
    # Every write at the 5-minute rate would undercount this call by a sixth.
    flat = Pricer().price("anthropic", "claude-sonnet-4-5", **_usage(100_000, 0, cw=90_000))
    assert flat == (D("0.3675"), "genai-prices")


def test_long_context_is_repriced_per_call_not_per_day() -> None:
    # claude-sonnet-4-5: $3/M input and $15/M output up to 200k input tokens, $6/M and $22.5/M above.
    # One 300k-input call is repriced; two 150k calls (300k in the day) are not.
    pricer = Pricer()
    long = pricer.price("anthropic", "claude-sonnet-4-5", **_usage(300_000, 1_000))
    short = pricer.price("anthropic", "claude-sonnet-4-5", **_usage(150_000, 500))
    assert long == (300_000 * D(6) / 1_000_000 + 1_000 * D("22.5") / 1_000_000, "genai-prices")
    assert short == (150_000 * D(3) / 1_000_000 + 500 * D(15) / 1_000_000, "genai-prices")
    assert long[0] == D("1.8225") and 2 * short[0] == D("0.915")


@pytest.mark.parametrize(
    ("provider", "model", "served", "multiplier"),
    [
        ("openai", "gpt-5", {"service_tier": "flex"}, D("0.5")),
        ("openai", "gpt-5", {"service_tier": "batch"}, D("0.5")),
        ("openai", "gpt-5", {"service_tier": "priority"}, D(2)),
        ("openai", "gpt-5-mini", {"service_tier": "priority"}, D("1.8")),  # longest model prefix wins
        ("openai", "gpt-4.1", {"service_tier": "priority"}, D("1.75")),
        ("openai", "gpt-5", {"service_tier": "standard"}, D(1)),
        ("openai", "gpt-5", {"service_tier": "scale"}, D(1)),  # no row: the standard price
        ("anthropic", "claude-opus-4-6", {"speed": "fast"}, D(6)),
        ("anthropic", "claude-opus-4-6", {"speed": "fast", "inference_geo": "us"}, D("6.6")),  # they stack
        ("anthropic", "claude-sonnet-4-5", {"speed": "fast"}, D(1)),  # no fast mode on this model
        ("anthropic", "claude-sonnet-4-5", {"service_tier": "batch"}, D("0.5")),
        ("gcp.gemini", "gemini-2.5-flash", {"service_tier": "priority"}, D("1.8")),
        ("gcp.gemini", "gemini-2.5-flash", {"service_tier": "flex"}, D("0.5")),
    ],
)
def test_served_tier_multiplies_the_standard_price(
    provider: str, model: str, served: dict[str, str], multiplier: Decimal
) -> None:
    pricer = Pricer()
    usage = _usage(40_000, 2_000, cr=10_000, cw=5_000)
    standard = pricer.price(provider, model, **usage)
    assert standard is not None
    tiered = pricer.price(provider, model, **usage, **served)
    assert tiered == ((standard[0] * multiplier).quantize(D("1e-12")), "genai-prices")


def test_user_tier_rate_replaces_the_built_in_row() -> None:
    from tokenpulse.collector.price_tiers import tier_rate

    row = tier_rate(
        {"provider": "openai", "dimension": "service_tier", "value": "Priority", "multiplier": 2.5}
    )
    pricer = Pricer(tiers=[row])
    standard = pricer.price("openai", "gpt-5", **_usage(1_000_000, 0))
    assert standard == (D("1.25"), "genai-prices")
    assert pricer.price("openai", "gpt-5", **_usage(1_000_000, 0), service_tier="priority") == (
        D("3.125"),
        "genai-prices",
    )
    # gpt-5-mini keeps its own, more specific built-in row.
    mini = pricer.price("openai", "gpt-5-mini", **_usage(1_000_000, 0), service_tier="priority")
    assert mini == (D("0.45"), "genai-prices")
    with pytest.raises(ValueError, match="dimension"):
        tier_rate({"provider": "openai", "dimension": "tier", "value": "x", "multiplier": 1})
