"""What the provider served and billed (service tier, fast mode, geography, cache writes by TTL, the
reported cost): read from the span, priced per call, stored beside tokenpulse's own figure."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.collector.normalize_helpers import FakePricer, norm, span
from tokenpulse.collector.pricing import Pricer

D = Decimal

OPENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-5",
    "gen_ai.usage.input_tokens": 1_000_000,
    "gen_ai.usage.output_tokens": 0,
}
ANTHROPIC = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-opus-4-6",
    "gen_ai.usage.input_tokens": 100_000,
    "gen_ai.usage.output_tokens": 0,
}


@pytest.mark.parametrize(
    ("key", "raw", "served"),
    [
        ("openai.response.service_tier", "default", "standard"),
        ("openai.response.service_tier", "flex", "flex"),
        ("gen_ai.openai.response.service_tier", "priority", "priority"),
        ("gen_ai.response.service_tier", "Flex", "flex"),  # OpenLIT's key, any case
        ("tokenpulse.service_tier", "batch", "batch"),
    ],
)
def test_the_served_service_tier_is_read_and_priced(key: str, raw: str, served: str) -> None:
    record = norm(span({**OPENAI, key: raw}), pricer=Pricer())
    assert record["service_tier"] == served
    # gpt-5 input: $1.25/M standard; flex and batch half, priority 2x.
    expected = {"standard": D("1.25"), "flex": D("0.625"), "batch": D("0.625"), "priority": D("2.5")}[served]
    assert (record["cost_usd"], record["cost_source"]) == (expected, "genai-prices")


def test_the_requested_tier_is_not_the_served_one() -> None:
    # A request for flex that the provider served at the default tier is billed at the default price.
    attrs = {**OPENAI, "openai.request.service_tier": "flex", "openai.response.service_tier": "default"}
    record = norm(span(attrs), pricer=Pricer())
    assert (record["service_tier"], record["cost_usd"]) == ("standard", D("1.25"))


def test_anthropic_fast_mode_and_us_inference_stack() -> None:
    # claude-opus-4-6: $5/M input; fast mode 6x, US-only inference 1.1x.
    attrs = {**ANTHROPIC, "anthropic.response.speed": "fast", "anthropic.response.inference_geo": "us"}
    record = norm(span(attrs), pricer=Pricer())
    assert (record["speed"], record["inference_geo"]) == ("fast", "us")
    assert record["cost_usd"] == D("0.5") * 6 * D("1.1")


def test_cache_writes_split_by_ttl_are_priced_by_ttl() -> None:
    # claude-opus-4-6: input $5/M, 5-minute write $6.25/M, 1-hour write $10/M.
    attrs = {
        **ANTHROPIC,
        "gen_ai.usage.cache_creation.input_tokens": 80_000,
        "gen_ai.usage.cache_creation.ephemeral_5m_input_tokens": 30_000,
        "gen_ai.usage.cache_creation.ephemeral_1h_input_tokens": 50_000,
    }
    record = norm(span(attrs), pricer=Pricer())
    assert (record["cache_write_tokens"], record["cache_write_1h_tokens"]) == (80_000, 50_000)
    assert record["cost_usd"] == (20_000 * D(5) + 30_000 * D("6.25") + 50_000 * D(10)) / 1_000_000


def test_a_ttl_split_without_a_total_makes_the_total() -> None:
    attrs = {
        **ANTHROPIC,
        "gen_ai.usage.details.ephemeral_5m_input_tokens": 1_000,
        "gen_ai.usage.details.ephemeral_1h_input_tokens": 4_000,
    }
    record = norm(span(attrs), pricer=FakePricer())
    assert (record["cache_write_tokens"], record["cache_write_1h_tokens"]) == (5_000, 4_000)
    assert record["input_tokens"] == 100_000  # inclusive as reported: the writes are within it


def test_only_the_five_minute_part_reported_leaves_the_rest_one_hour() -> None:
    attrs = {
        **ANTHROPIC,
        "gen_ai.usage.cache_creation.input_tokens": 9_000,
        "gen_ai.usage.cache_creation.ephemeral_5m_input_tokens": 2_000,
    }
    record = norm(span(attrs), pricer=FakePricer())
    assert (record["cache_write_tokens"], record["cache_write_1h_tokens"]) == (9_000, 7_000)


def test_a_reported_cost_is_kept_beside_tokenpulse_price() -> None:
    attrs = {**OPENAI, "gen_ai.usage.cost": "1.3"}  # a gateway's figure, above the list price
    record = norm(span(attrs), pricer=Pricer())
    assert (record["cost_usd"], record["cost_source"]) == (D("1.25"), "genai-prices")
    assert record["reported_cost_usd"] == D("1.3")
    unreported = norm(span(OPENAI), pricer=Pricer())
    assert unreported["reported_cost_usd"] is None


def test_a_nonsense_reported_cost_is_dropped_not_the_call() -> None:
    record = norm(span({**OPENAI, "gen_ai.usage.cost": 5e9}), pricer=Pricer())
    assert (record["reported_cost_usd"], record["cost_usd"]) == (None, D("1.25"))


def test_a_nonsense_reported_cost_on_an_unpriced_model_leaves_it_unpriced() -> None:
    # 5e6 USD would not fit the cost column (Decimal(18, 12)): the figure goes, the call stays, unpriced.
    attrs = {**OPENAI, "gen_ai.request.model": "my-own-model", "gen_ai.usage.cost": 5e6}
    record = norm(span(attrs), pricer=Pricer())
    assert (record["reported_cost_usd"], record["price_known"], record["cost_source"]) == (
        None,
        False,
        "unknown",
    )


def test_the_ai_sdk_provider_metadata_says_what_was_served() -> None:
    # As @ai-sdk/anthropic writes it (tests/fixtures/interop/vercel-ai.jsonl), with the TTL split.
    metadata = {
        "anthropic": {
            "usage": {
                "input_tokens": 12,
                "output_tokens": 200,
                "cache_creation_input_tokens": 500,
                "cache_read_input_tokens": 3000,
                "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 400},
                "service_tier": "batch",
            },
            "cacheCreationInputTokens": 500,
        }
    }
    attrs = {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.provider": "anthropic.messages",
        "ai.model.id": "claude-opus-4-6",
        "ai.usage.inputTokens": 3512,
        "ai.usage.outputTokens": 200,
        "ai.usage.inputTokenDetails.cacheReadTokens": 3000,
        "ai.usage.inputTokenDetails.cacheWriteTokens": 500,
        "ai.response.providerMetadata": json.dumps(metadata),
    }
    record = norm(span(attrs, name="ai.generateText.doGenerate"), pricer=Pricer())
    assert (record["dialect"], record["service_tier"], record["cache_write_1h_tokens"]) == (
        "vercel-ai",
        "batch",
        400,
    )
    # claude-opus-4-6: $5/M input, $0.5/M reads, $6.25/M 5-minute writes, $10/M 1-hour writes, $25/M out.
    standard = (12 * D(5) + 3000 * D("0.5") + 100 * D("6.25") + 400 * D(10) + 200 * D(25)) / 1_000_000
    assert record["cost_usd"] == standard / 2
    openrouter = {"openrouter": {"usage": {"cost": 0.0042}}, "openai": {"serviceTier": "flex"}}
    attrs["ai.response.providerMetadata"] = json.dumps(openrouter)
    record = norm(span(attrs, name="ai.generateText.doGenerate"), pricer=Pricer())
    assert (record["service_tier"], record["reported_cost_usd"]) == ("flex", D("0.0042"))
    attrs["ai.response.providerMetadata"] = "{not json"
    assert norm(span(attrs, name="ai.generateText.doGenerate"), pricer=Pricer())["service_tier"] == ""
