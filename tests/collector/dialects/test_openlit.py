"""The openlit dialect (collector/dialects/openlit.py): every canonical field of its spans."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from tests.collector.normalize_helpers import (
    END,
    RESOURCE,
    FakePricer,
    _tokens,
    call,
    norm,
    span,
)
from tokenpulse.collector.spans import STATUS_ERROR, STATUS_OK, SpanEvent


def test_openlit_anthropic_adds_cache_back_and_reads_ttft() -> None:
    s = span(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.usage.input_tokens": 10,  # Anthropic's raw input_tokens: cache excluded
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.cache_read_input_tokens": 3000,
            "gen_ai.usage.cache_creation_input_tokens": 500,
            "gen_ai.server.time_to_first_token": 0.42,
            "gen_ai.usage.cost": 0.0123,
            "deployment.environment": "ignored-on-span",
        },
        name="chat claude-sonnet-4-5",
        scope="openlit.otel.tracing",
        status=STATUS_OK,
    )
    assert norm(s) == call(
        provider="anthropic",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5-20250929",
        input_tokens=3510,
        output_tokens=200,
        cache_read_tokens=3000,
        cache_write_tokens=500,
        ttft_ms=420.0,
        status="ok",
        dialect="openlit",
        reported_cost_usd=Decimal("0.0123"),  # kept beside tokenpulse's own price
    )


def test_openlit_reported_cost_prices_only_when_price_unknown_and_is_kept_beside() -> None:
    attrs = {
        "telemetry.sdk.name": "openlit",
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "my-finetune",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.reasoning_tokens": 4,
        "gen_ai.usage.cost": 0.0042,
    }
    expected = {
        "provider": "openai",
        "request_model": "my-finetune",
        "response_model": "my-finetune",
        "input_tokens": 100,
        "output_tokens": 10,
        "reasoning_tokens": 4,
        "dialect": "openlit",
    }
    reported = Decimal("0.0042")
    unknown = norm(span(attrs), pricer=FakePricer(price=None))
    assert unknown == call(
        **expected, cost_usd=reported, price_known=True, cost_source="reported", reported_cost_usd=reported
    )
    known = norm(span(attrs), pricer=FakePricer(Decimal("0.5"), "override"))
    assert known == call(
        **expected,
        cost_usd=Decimal("0.5"),
        price_known=True,
        cost_source="override",
        reported_cost_usd=reported,
    )
    del attrs["gen_ai.usage.cost"]
    nothing = norm(span(attrs), pricer=FakePricer(price=None))
    assert nothing == call(**expected, cost_usd=Decimal(0), price_known=False, cost_source="unknown")


def test_openlit_detected_from_resource_sdk_name() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-haiku-4-5",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.output_tokens": 1,
            "gen_ai.usage.cache_read_input_tokens": 1000,
        },
        resource={**RESOURCE, "telemetry.sdk.name": "openlit"},
    )
    record = norm(s)
    assert record["dialect"] == "openlit"
    assert _tokens(record) == (6000, 1, 1000, 0, 0)


def test_openlit_openai_is_inclusive() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cache_read_input_tokens": 4096,
        },
        scope="openlit.otel.tracing",
    )
    assert _tokens(norm(s)) == (5000, 10, 4096, 0, 0)


def test_openlit_failed_call_without_attributes_is_read_from_name_and_scope() -> None:
    timeout = SpanEvent("exception", END, {"exception.type": "anthropic.APITimeoutError"})
    bare = span(
        {},
        name="chat claude-sonnet-4-5",
        resource={"service.name": "checkout", "telemetry.sdk.name": "openlit"},
        scope="openlit.instrumentation.anthropic",
        status=STATUS_ERROR,
        events=[timeout],
    )
    record = norm(bare)
    assert (record["provider"], record["request_model"], record["operation"], record["dialect"]) == (
        "anthropic",
        "claude-sonnet-4-5",
        "chat",
        "openlit",
    )
    assert (record["status"], record["error_type"], record["is_timeout"]) == (
        "error",
        "anthropic.APITimeoutError",
        True,
    )
    assert record["input_tokens"] == record["output_tokens"] == 0
    # only a failed span of an OpenLIT instrumentation scope named "<operation> <model>" is read this way
    assert norm(dataclasses.replace(bare, status_code=STATUS_OK)) is None
    assert norm(dataclasses.replace(bare, scope_name="opentelemetry.instrumentation.httpx")) is None
    assert norm(dataclasses.replace(bare, name="POST")) is None
    assert norm(dataclasses.replace(bare, name="workflow run it")) is None
