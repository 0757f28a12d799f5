"""Normalization rules common to every dialect: token semantics, classification, status, providers,
models, TTFT, attribution, privacy and validation. Each dialect's own tests are in tests/collector/dialects/.
"""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from typing import Any

import pytest

from tests.collector.normalize_helpers import (
    AGGREGATED_USAGE,
    CHAT,
    RESOURCE,
    SECRET,
    START,
    FakePricer,
    _tokens,
    call,
    norm,
    span,
    tool,
)
from tests.compiled import is_compiled, source_module
from tests.interop.driver import FIXTURE_LIBRARIES
from tests.interop.fixtures import fixture_spans
from tokenpulse.collector import normalize
from tokenpulse.collector.normalize import (
    InvalidSpan,
    NormalizeConfig,
    is_content_key,
    normalize_provider,
)
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import STATUS_ERROR, STATUS_OK, SpanEvent, SpanView


@pytest.mark.parametrize(
    ("uncached", "cache_read", "cache_write"),
    [(10, 3000, 500), (5000, 1000, 0), (5000, 0, 200), (0, 0, 0)],
)
def test_anthropic_same_call_via_openllmetry_and_openlit_gives_same_tokens(
    uncached: int, cache_read: int, cache_write: int
) -> None:
    """Anthropic's API: input_tokens excludes cache. OpenLLMetry adds it back; OpenLIT does not."""
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.output_tokens": 42,
        "gen_ai.usage.cache_read_input_tokens": cache_read,
        "gen_ai.usage.cache_creation_input_tokens": cache_write,
    }
    via_openllmetry = span(
        {
            **common,
            "llm.request.type": "chat",
            "gen_ai.usage.input_tokens": uncached + cache_read + cache_write,
        }
    )
    via_openlit = span({**common, "gen_ai.usage.input_tokens": uncached}, scope="openlit.otel.tracing")
    a, b = norm(via_openllmetry), norm(via_openlit)
    assert (a["dialect"], b["dialect"]) == ("openllmetry", "openlit")
    assert _tokens(a) == _tokens(b) == (uncached + cache_read + cache_write, 42, cache_read, cache_write, 0)


def test_subset_larger_than_total_means_exclusive() -> None:
    """An instrumentation passing Anthropic's raw counts: cache reads alone exceed the input count."""
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-opus-4-1",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.cache_read.input_tokens": 20000,
            "gen_ai.usage.cache_creation.input_tokens": 300,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.reasoning.output_tokens": 80,  # more than output: output excluded it
        }
    )
    assert _tokens(norm(s)) == (20312, 130, 20000, 300, 80)


def test_reads_plus_writes_larger_than_input_means_exclusive() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-opus-4-1",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.cache_read.input_tokens": 3000,
            "gen_ai.usage.cache_creation.input_tokens": 4000,
            "gen_ai.usage.output_tokens": 1,
        }
    )
    assert _tokens(norm(s)) == (12000, 1, 3000, 4000, 0)


def test_total_reveals_exclusive_reasoning() -> None:
    """AI SDK v5 + Gemini: outputTokens is candidatesTokenCount; totalTokens counts the thoughts too."""
    s = span(
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.id": "gemini-2.5-pro",
            "ai.model.provider": "google.generative-ai",
            "ai.usage.inputTokens": 100,
            "ai.usage.outputTokens": 50,
            "ai.usage.reasoningTokens": 40,
            "ai.usage.totalTokens": 190,
        }
    )
    record = norm(s)
    assert record["provider"] == "gcp.gemini"
    assert _tokens(record) == (100, 90, 0, 0, 40)


def test_total_confirms_inclusive_counts() -> None:
    s = span(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "o3",
            "gen_ai.usage.prompt_tokens": 1000,
            "gen_ai.usage.completion_tokens": 600,
            "gen_ai.usage.reasoning_tokens": 500,
            "gen_ai.usage.cache_read_input_tokens": 900,
            "llm.usage.total_tokens": 1600,
        }
    )
    assert _tokens(norm(s)) == (1000, 600, 900, 0, 500)


def test_total_reveals_exclusive_input() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 2000,  # raw, but larger than the cache read
            "gen_ai.usage.cache_read.input_tokens": 1500,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.total_tokens": 3600,  # 2000 + 1500 + 100
        }
    )
    assert _tokens(norm(s)) == (3500, 100, 1500, 0, 0)


@pytest.mark.parametrize(
    ("dialect_attrs", "scope", "expected_output"),
    [
        (
            {"llm.request.type": "completion"},
            "",
            130,
        ),  # OpenLLMetry passes candidates_token_count: add thoughts
        ({}, "openlit.otel.tracing", 130),  # so does OpenLIT
        ({}, "", 100),  # semconv: gen_ai.usage.output_tokens includes reasoning
    ],
)
def test_gemini_raw_candidates_count_per_dialect(
    dialect_attrs: dict[str, Any], scope: str, expected_output: int
) -> None:
    s = span(
        {
            **dialect_attrs,
            "gen_ai.operation.name": "generate_content",
            "gen_ai.system": "gemini",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.usage.input_tokens": 70,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.reasoning_tokens": 30,
        },
        scope=scope,
    )
    record = norm(s)
    assert record["provider"] == "gcp.gemini"
    assert record["operation"] == "generate_content"
    assert (record["output_tokens"], record["reasoning_tokens"]) == (expected_output, 30)


def test_key_families_are_never_summed() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.prompt_tokens": 100,
            "llm.usage.prompt_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.completion_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 60,
            "gen_ai.usage.cache_read_input_tokens": 60,
            "gen_ai.usage.input_tokens.cached": 60,
            "llm.usage.cache_read_input_tokens": 60,
            "gen_ai.usage.details.cache_read_tokens": 60,
        }
    )
    assert _tokens(norm(s)) == (100, 10, 60, 0, 0)


def test_first_family_wins_when_families_disagree() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.prompt_tokens": 999,
            "gen_ai.usage.output_tokens": 10,
        }
    )
    assert _tokens(norm(s)) == (100, 10, 0, 0, 0)


@pytest.mark.parametrize(
    "attrs",
    [
        {"gen_ai.operation.name": "create_agent", "gen_ai.request.model": "gpt-4o", **AGGREGATED_USAGE},
        {"gen_ai.operation.name": "invoke_workflow", "gen_ai.request.model": "gpt-4o", **AGGREGATED_USAGE},
        {"gen_ai.request.model": "gpt-4o", "gen_ai.aggregated_usage.input_tokens": 9000, **AGGREGATED_USAGE},
        {
            "gen_ai.aggregated_usage.output_tokens": 900,
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
        },
        {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.name": "pipeline",
            "gen_ai.request.model": "m",
            **AGGREGATED_USAGE,
        },
        {
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "step",
            "gen_ai.request.model": "m",
            **AGGREGATED_USAGE,
        },
        {"openinference.span.kind": "CHAIN", "llm.model_name": "gpt-4o", "llm.token_count.prompt": 9000},
        {"openinference.span.kind": "RETRIEVER", "llm.token_count.prompt": 9000},
    ],
)
def test_aggregating_spans_yield_nothing(attrs: dict[str, Any]) -> None:
    assert norm(span(attrs)) is None


@pytest.mark.parametrize(
    ("attrs", "name", "scope", "expected_name"),
    [
        (
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "planner",
                "gen_ai.request.model": "gpt-4o",
                **AGGREGATED_USAGE,
            },
            "invoke_agent planner",
            "",
            "planner",
        ),
        (
            {"openinference.span.kind": "AGENT", "agent.name": "researcher", "llm.token_count.prompt": 5},
            "x",
            "",
            "researcher",
        ),
        (
            {"traceloop.span.kind": "agent", "traceloop.entity.name": "triage", **AGGREGATED_USAGE},
            "triage.agent",
            "",
            "triage",
        ),
        (
            {"agent_name": "support", "model_name": "gpt-4o", **AGGREGATED_USAGE},
            "agent run",
            "pydantic-ai",
            "support",
        ),
        ({"gen_ai.operation.name": "agent", "telemetry.sdk.name": "openlit"}, "crew agent", "", "crew agent"),
        ({**AGGREGATED_USAGE, "gen_ai.request.model": "gpt-4o"}, "invoke_agent", "", "invoke_agent"),
    ],
)
def test_agent_invocations_yield_agent_tool_spans(
    attrs: dict[str, Any], name: str, scope: str, expected_name: str
) -> None:
    assert norm(span(attrs, name=name, scope=scope)) == tool(kind="agent", name=expected_name)


# ------------------------------------------------------------------------------------------------
# Tool spans


@pytest.mark.parametrize(
    ("attrs", "name", "expected_name"),
    [
        (
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
            "execute_tool get_weather",
            "get_weather",
        ),
        (
            {"openinference.span.kind": "TOOL", "tool.name": "sql_query", "input.value": SECRET},
            "tool",
            "sql_query",
        ),
        (
            {"traceloop.span.kind": "tool", "traceloop.entity.name": "fetch_docs"},
            "fetch_docs.tool",
            "fetch_docs",
        ),
        (
            {"ai.operationId": "ai.toolCall", "ai.toolCall.name": "calc", "ai.toolCall.args": SECRET},
            "ai.toolCall",
            "calc",
        ),
        ({"gen_ai.tool.name": "lookup", "gen_ai.tool.call.id": "c1"}, "running tool", "lookup"),
        ({"gen_ai.operation.name": "execute_tool"}, "execute_tool", "execute_tool"),
    ],
)
def test_tool_spans(attrs: dict[str, Any], name: str, expected_name: str) -> None:
    assert norm(span(attrs, name=name)) == tool(name=expected_name)


def test_tool_span_error_and_timeout() -> None:
    s = span(
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
        status=STATUS_ERROR,
        status_message="tool failed",
        events=[
            SpanEvent(
                "exception", START + 1, {"exception.type": "httpx.ReadTimeout", "exception.message": SECRET}
            )
        ],
        resource={"service.name": "agent-svc"},
    )
    assert norm(s) == tool(
        name="search",
        service="agent-svc",
        environment="",
        status="error",
        error_type="httpx.ReadTimeout",
        is_timeout=True,
    )


def test_llm_span_naming_requested_tools_stays_a_call() -> None:
    """OpenLIT writes the tool calls a model *requested* as gen_ai.tool.name on the chat span."""
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.tool.name": "get_weather",
        },
        scope="openlit.otel.tracing",
    )
    assert "kind" not in norm(s)


# ------------------------------------------------------------------------------------------------
# Unrelated spans


@pytest.mark.parametrize(
    "attrs",
    [
        {
            "http.request.method": "POST",
            "url.full": "https://api.example.com/v1",
            "http.response.status_code": 200,
        },
        {"db.system.name": "postgresql", "db.query.text": "select 1"},
        {"gen_ai.request.model": "gpt-4o"},  # a model but no usage and no LLM operation
        {"gen_ai.usage.input_tokens": 5},  # usage but no model
        {},
    ],
)
def test_unrelated_spans_yield_nothing(attrs: dict[str, Any]) -> None:
    assert norm(span(attrs, name="POST /v1")) is None


def test_unrelated_span_is_not_validated() -> None:
    assert norm(span({"http.request.method": "GET"}, trace_id="", end=START - 1)) is None


def test_model_plus_usage_without_operation_is_a_call() -> None:
    s = span(
        {
            "gen_ai.request.model": "mistral-large",
            "gen_ai.system": "mistralai",
            "gen_ai.usage.input_tokens": 3,
        }
    )
    assert norm(s) == call(
        provider="mistral_ai",
        request_model="mistral-large",
        response_model="mistral-large",
        operation="",
        input_tokens=3,
    )


def test_failed_llm_call_without_usage_is_recorded() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "error.type": "openai.APITimeoutError",
        },
        status=STATUS_ERROR,
        status_message="Request timed out.",
    )
    assert norm(s) == call(
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o",
        status="error",
        error_type="openai.APITimeoutError",
        is_timeout=True,
    )


def test_status_mapping() -> None:
    assert norm(span(CHAT, status=STATUS_OK))["status"] == "ok"
    assert norm(span(CHAT))["status"] == "unset"
    assert norm(span(CHAT, status=STATUS_ERROR))["status"] == "error"
    assert norm(span({**CHAT, "error.type": "RateLimitError"}, status=STATUS_OK))["status"] == "error"


def test_error_type_precedence() -> None:
    boom = SpanEvent("exception", START + 1, {"exception.type": "ValueError", "exception.message": SECRET})
    record = norm(span({**CHAT, "error.type": "429"}, status=STATUS_ERROR, events=[boom]))
    assert (record["error_type"], record["is_timeout"]) == ("429", False)
    record = norm(span(CHAT, status=STATUS_ERROR, events=[boom]))
    assert (record["status"], record["error_type"]) == ("error", "ValueError")
    record = norm(span(CHAT, status=STATUS_ERROR))
    assert (record["status"], record["error_type"]) == ("error", "")


@pytest.mark.parametrize(
    ("extra_attrs", "status_message", "exception_type", "expected"),
    [
        ({"error.type": "TimeoutError"}, "", "", True),
        ({"error.type": "openai.APITimeoutError"}, "", "", True),
        ({"error.type": "httpx.ReadTimeout"}, "", "", True),
        ({"error.type": "timeout"}, "", "", True),
        ({}, "DEADLINE_EXCEEDED", "", True),
        ({}, "Deadline Exceeded", "", True),
        ({}, "Request timed out.", "", True),
        ({}, "", "asyncio.TimeoutError", True),
        ({"http.response.status_code": 504}, "", "", True),
        ({"http.response.status_code": "408"}, "", "", True),
        ({"http.status_code": 504}, "", "", True),
        ({"error.type": "504"}, "", "", True),
        ({"rpc.grpc.status_code": 4}, "", "", True),
        ({"error.type": "RateLimitError"}, "rate limited", "", False),
        ({"http.response.status_code": 500}, "", "", False),
        ({"http.response.status_code": [504]}, "", "", False),
        ({"rpc.grpc.status_code": 14}, "", "", False),
        ({}, "", "", False),
    ],
)
def test_timeouts(
    extra_attrs: dict[str, Any], status_message: str, exception_type: str, expected: bool
) -> None:
    events = [SpanEvent("exception", START + 1, {"exception.type": exception_type})] if exception_type else []
    s = span({**CHAT, **extra_attrs}, status=STATUS_ERROR, status_message=status_message, events=events)
    assert norm(s)["is_timeout"] is expected


# ------------------------------------------------------------------------------------------------
# Providers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("az.ai.openai", "azure.ai.openai"),
        ("azure_openai", "azure.ai.openai"),
        ("azure", "azure.ai.openai"),
        ("Azure", "azure.ai.openai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("mistralai", "mistral_ai"),
        ("mistral", "mistral_ai"),
        ("MistralAI", "mistral_ai"),
        ("xai", "x_ai"),
        ("grok", "x_ai"),
        ("bedrock", "aws.bedrock"),
        ("aws_bedrock", "aws.bedrock"),
        ("AWS", "aws.bedrock"),
        ("google", "gcp.gemini"),
        ("gemini", "gcp.gemini"),
        ("google_genai", "gcp.gemini"),
        ("google.ai.studio", "gcp.gemini"),
        ("vertexai", "gcp.vertex_ai"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("VertexAI", "gcp.vertex_ai"),
        ("ibm", "ibm.watsonx.ai"),
        ("watsonx", "ibm.watsonx.ai"),
        ("ibm.watson.ai", "ibm.watsonx.ai"),
        ("OpenAI", "openai"),
        ("Anthropic", "anthropic"),
        ("anthropic", "anthropic"),
        ("gcp.vertex_ai", "gcp.vertex_ai"),
        ("Ollama", "ollama"),
        (" Groq ", "groq"),
        ("some.custom.provider", "some.custom.provider"),
    ],
)
def test_provider_spellings(raw: str, expected: str) -> None:
    assert normalize_provider(raw) == expected


def test_provider_normalized_end_to_end() -> None:
    s = span({**CHAT, "gen_ai.system": "az.ai.inference", "gen_ai.usage.input_tokens": 1})
    assert norm(s)["provider"] == "azure.ai.inference"
    s = span({**CHAT, "gen_ai.provider.name": "x_ai", "gen_ai.system": "openai"})  # provider.name wins
    assert norm(s)["provider"] == "x_ai"


# ------------------------------------------------------------------------------------------------
# Models


def test_request_model_defaults_to_response_model_and_pricing_uses_response() -> None:
    pricer = FakePricer()
    record = norm(
        span({"gen_ai.operation.name": "chat", "gen_ai.response.model": "gpt-4o-2024-11-20"}), pricer=pricer
    )
    assert (record["request_model"], record["response_model"]) == ("gpt-4o-2024-11-20", "gpt-4o-2024-11-20")
    assert pricer.calls[0][1] == "gpt-4o-2024-11-20"


def test_call_without_model_is_not_priced() -> None:
    pricer = FakePricer()
    record = norm(span({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5}), pricer=pricer)
    assert pricer.calls == []
    assert (record["cost_usd"], record["price_known"], record["cost_source"]) == (
        Decimal(0),
        False,
        "unknown",
    )


# ------------------------------------------------------------------------------------------------
# TTFT


def test_ttft_sources() -> None:
    assert norm(span({**CHAT, "ai.stream.msToFirstChunk": 12}))["ttft_ms"] == 12.0
    assert norm(span({**CHAT, "gen_ai.response.time_to_first_chunk": "0.5"}))["ttft_ms"] == 500.0
    # an unusable value falls through to the next source
    negative = {**CHAT, "gen_ai.response.time_to_first_chunk": -1, "gen_ai.server.time_to_first_token": 0.25}
    assert norm(span(negative))["ttft_ms"] == 250.0
    assert norm(span({**CHAT, "gen_ai.response.time_to_first_chunk": math.nan}))["ttft_ms"] is None
    chunk = SpanEvent("llm.content.completion.chunk", START + 40_000_000)
    assert (
        norm(span(CHAT, events=[chunk, SpanEvent("llm.content.completion.chunk", START + 90_000_000)]))[
            "ttft_ms"
        ]
        == 40.0
    )
    early = SpanEvent("First Token Stream Event", START - 5)
    assert norm(span(CHAT, events=[early]))["ttft_ms"] is None
    bad_time = {**CHAT, "langfuse.observation.completion_start_time": "yesterday"}
    assert norm(span(bad_time))["ttft_ms"] is None


# ------------------------------------------------------------------------------------------------
# Attribution dimensions and their precedence


def test_route_precedence_within_keys_and_span_before_resource() -> None:
    resource = {
        **RESOURCE,
        "tokenpulse.route": "/from-resource",
        "user.id": "res-user",
        "session.id": "res-sess",
    }
    s = span({**CHAT, "app.route": "/from-span", "tokenpulse.route": "/winner"}, resource=resource)
    assert norm(s)["route"] == "/winner"
    # a lower-precedence key on the span beats a higher-precedence key on the resource
    record = norm(span({**CHAT, "app.route": "/from-span", "enduser.id": "span-user"}, resource=resource))
    assert (record["route"], record["user"], record["session"]) == ("/from-span", "span-user", "res-sess")
    # nothing on the span: the resource provides it
    record = norm(span(CHAT, resource=resource))
    assert (record["route"], record["user"]) == ("/from-resource", "res-user")


def test_custom_config_keys_and_extra_dimensions() -> None:
    config = NormalizeConfig(
        route_keys=("my.route",),
        user_keys=("my.user", "user.id"),
        session_keys=(),
        prompt_version_keys=("my.prompt_version",),
        router_name_keys=("my.router",),
        router_escalated_keys=("my.escalated",),
        extra_dimensions={"team": ("my.team", "team"), "tenant": ("tenant.id",), "absent": ("nope",)},
    )
    resource = {**RESOURCE, "team": "payments", "my.user": "res-user", "my.router": "res-router"}
    s = span(
        {
            **CHAT,
            "tokenpulse.route": "/ignored",  # not in this config's route keys
            "my.route": "/custom",
            "user.id": "u-span",
            "gen_ai.conversation.id": "ignored",
            "my.prompt_version": 12,
            "my.escalated": "true",
            "tenant.id": 4411,
        },
        resource=resource,
    )
    record = norm(s, config=config)
    assert record["route"] == "/custom"
    assert record["user"] == "u-span"  # user.id on the span beats my.user on the resource
    assert record["session"] == ""
    assert record["prompt_version"] == "12"
    assert record["router"] == "res-router"
    assert record["escalated"] is True
    assert record["extra"] == {"team": "payments", "tenant": "4411"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("YES", True),
        ("1", True),
        ("no", False),
        (1, True),
        (0, False),
    ],
)
def test_router_escalated_values(value: Any, expected: bool) -> None:
    record = norm(span({**CHAT, "tokenpulse.router": "cheap-first", "tokenpulse.router.escalated": value}))
    assert (record["router"], record["escalated"]) == ("cheap-first", expected)


def test_escalated_from_resource_and_span_override() -> None:
    resource = {**RESOURCE, "tokenpulse.router.escalated": True}
    assert norm(span(CHAT, resource=resource))["escalated"] is True
    assert norm(span({**CHAT, "tokenpulse.router.escalated": False}, resource=resource))["escalated"] is False


def test_dimension_values_are_scalars_only() -> None:
    s = span(
        {
            **CHAT,
            "tokenpulse.route": ["a", "b"],
            "app.route": "/ok",
            "user.id": "u" * 1000,
            "session.id": True,
        }
    )
    record = norm(s)
    assert record["route"] == "/ok"
    assert record["user"] == "u" * 1000  # kept whole: its length is the pipeline's limit (test_limits)
    assert record["session"] == "true"


def test_resource_memo_follows_the_resource() -> None:
    config = NormalizeConfig(extra_dimensions={"region": ("cloud.region",)})
    a = {"service.name": "a", "cloud.region": "eu"}
    b = {"service.name": "b"}
    for resource, service, extra in [(a, "a", {"region": "eu"}), (b, "b", {}), (a, "a", {"region": "eu"})]:
        record = norm(span(CHAT, resource=resource), config=config)
        assert (record["service"], record["extra"]) == (service, extra)


def test_config_via_dataclasses_replace_like_settings_loader() -> None:
    config = dataclasses.replace(NormalizeConfig(), route_keys=["x.route"], extra_dimensions={"t": ["team"]})
    assert config.route_keys == ("x.route",)
    record = norm(span({**CHAT, "x.route": "/r", "team": "core"}), config=config)
    assert (record["route"], record["extra"]) == ("/r", {"t": "core"})


# ------------------------------------------------------------------------------------------------
# Privacy: content never stored


CONTENT_ATTRS = {
    "gen_ai.input.messages": SECRET,
    "gen_ai.output.messages": SECRET,
    "gen_ai.system_instructions": SECRET,
    "gen_ai.prompt.0.content": SECRET,
    "gen_ai.completion.0.content": SECRET,
    "gen_ai.tool.call.arguments": SECRET,
    "gen_ai.tool.call.result": SECRET,
    "llm.input_messages.0.message.content": SECRET,
    "llm.output_messages.0.message.content": SECRET,
    "input.value": SECRET,
    "output.value": SECRET,
    "ai.prompt": SECRET,
    "ai.prompt.messages": SECRET,
    "ai.response.text": SECRET,
    "traceloop.entity.input": SECRET,
    "traceloop.entity.output": SECRET,
    "langfuse.observation.input": SECRET,
    "langfuse.observation.output": SECRET,
}


@pytest.mark.parametrize(
    "attrs",
    [
        {**CHAT, "gen_ai.usage.input_tokens": 1},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"},
        {"gen_ai.operation.name": "invoke_agent"},
        {"ai.operationId": "ai.generateText.doGenerate", "ai.model.id": "gpt-4o"},
        {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o"},
    ],
)
def test_content_is_never_stored(attrs: dict[str, Any]) -> None:
    config = NormalizeConfig(extra_dimensions={"feature": ("feature.name",)})
    s = span(
        {**CONTENT_ATTRS, **attrs, "feature.name": "search"},
        status=STATUS_ERROR,
        status_message="bad request",
        events=[
            SpanEvent("exception", START + 1, {"exception.type": "BadRequest", "exception.message": SECRET})
        ],
        resource={**RESOURCE, "gen_ai.input.messages": SECRET},
    )
    record = norm(s, config=config)
    assert record is not None
    assert SECRET not in repr(record)


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.prompt.0.content",
        "gen_ai.completion.0.content",
        "gen_ai.prompt",
        "gen_ai.system_instructions",
        "llm.input_messages",
        "llm.output_messages.0.message.content",
        "input.value",
        "output.value",
        "ai.prompt",
        "ai.prompt.messages",
        "ai.response.text",
        "ai.toolCall.args",
        "traceloop.entity.input",
        "langfuse.observation.output",
        "my.app.messages",
        "custom.prompt",
        "Input.Value",
    ],
)
def test_content_keys_are_refused_in_config(key: str) -> None:
    assert is_content_key(key)
    with pytest.raises(ValueError, match="content"):
        NormalizeConfig(extra_dimensions={"leak": ("team", key)})
    with pytest.raises(ValueError, match="content"):
        NormalizeConfig(route_keys=(key,))


def test_default_config_keys_are_not_content_keys() -> None:
    config = NormalizeConfig()
    for keys in (
        config.route_keys,
        config.user_keys,
        config.session_keys,
        config.prompt_version_keys,
        config.router_name_keys,
        config.router_escalated_keys,
    ):
        assert not any(is_content_key(k) for k in keys)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 0},
        {"max_tokens": -5},
        {"max_tokens": 1.5},
        {"extra_dimensions": {"": ("team",)}},
        {"extra_dimensions": {"team": ("",)}},
        {"user_keys": ("user.id", 3)},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        NormalizeConfig(**kwargs)


# ------------------------------------------------------------------------------------------------
# Validation: what rejects a span


def _chat(**usage: Any) -> dict[str, Any]:
    return {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", **usage}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trace_id": ""}, "trace_id"),
        ({"trace_id": "0" * 32}, "trace_id"),
        ({"span_id": ""}, "span_id"),
        ({"span_id": "0" * 16}, "span_id"),
        ({"trace_id": "ab" * 17}, "trace_id must be 16 bytes"),  # would be stored at any length
        ({"span_id": "ab" * 500}, "span_id"),
        ({"end": START - 1}, "end_time_unix_nano"),
        ({"start": 0, "end": 10}, "start_time_unix_nano"),
    ],
)
def test_invalid_ids_and_times(kwargs: dict[str, Any], message: str) -> None:
    for attrs in (_chat(), {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}):
        with pytest.raises(InvalidSpan, match=message):
            norm(span(attrs, **kwargs))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("gen_ai.usage.input_tokens", -1, "negative"),
        ("gen_ai.usage.input_tokens", "-7", "negative"),
        ("gen_ai.usage.output_tokens", math.nan, "finite integer"),
        ("gen_ai.usage.output_tokens", math.inf, "finite integer"),
        ("gen_ai.usage.output_tokens", 12.5, "finite integer"),
        ("gen_ai.usage.output_tokens", "nan", "finite integer"),
        ("gen_ai.usage.output_tokens", "1e400", "finite integer"),
        ("gen_ai.usage.output_tokens", "12.5", "finite integer"),
        ("gen_ai.usage.input_tokens", True, "must be an integer"),
        ("gen_ai.usage.input_tokens", [1, 2], "must be an integer"),
        ("gen_ai.usage.input_tokens", {"a": 1}, "must be an integer"),
        ("gen_ai.usage.input_tokens", "lots", "not a number"),
        ("gen_ai.usage.input_tokens", 100_000_001, "sanity limit"),
        ("gen_ai.usage.cache_read.input_tokens", -3, "negative"),
        ("gen_ai.usage.cache_creation.input_tokens", 1e12, "sanity limit"),
        ("gen_ai.usage.reasoning.output_tokens", "x", "not a number"),
        ("gen_ai.usage.total_tokens", -1, "negative"),
    ],
)
def test_invalid_token_counts(key: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidSpan, match=message) as error:
        norm(span({**_chat(), key: value}))
    assert key in str(error.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (123, 123),
        (123.0, 123),
        ("123", 123),
        (" 42 ", 42),
        ("1e3", 1000),
        ("7.0", 7),
        (0, 0),
        (100_000_000, 100_000_000),
    ],
)
def test_accepted_token_count_forms(value: Any, expected: int) -> None:
    assert norm(span(_chat(**{"gen_ai.usage.input_tokens": value})))["input_tokens"] == expected


def test_total_smaller_than_input_plus_output_is_rejected() -> None:
    attrs = _chat(
        **{
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.total_tokens": 120,
        }
    )
    with pytest.raises(InvalidSpan, match=r"gen_ai\.usage\.total_tokens.*less than"):
        norm(span(attrs))


def test_add_back_beyond_the_sanity_limit_is_rejected() -> None:
    config = NormalizeConfig(max_tokens=1000)
    attrs = _chat(**{"gen_ai.usage.input_tokens": 600, "gen_ai.usage.cache_read.input_tokens": 700})
    with pytest.raises(InvalidSpan, match="input tokens 1300"):
        norm(span(attrs), config=config)
    attrs = _chat(**{"gen_ai.usage.output_tokens": 600, "gen_ai.usage.reasoning.output_tokens": 700})
    with pytest.raises(InvalidSpan, match="output tokens 1300"):
        norm(span(attrs), config=config)


def test_custom_max_tokens() -> None:
    config = NormalizeConfig(max_tokens=10)
    with pytest.raises(InvalidSpan, match="sanity limit of 10"):
        norm(span(_chat(**{"gen_ai.usage.input_tokens": 11})), config=config)


@pytest.mark.parametrize(
    ("usage_details", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"input": -5}), r"usage_details\.input: token count is negative"),
        (json.dumps({"input": 5, "input_audio_tokens": "many"}), r"usage_details\.input_audio_tokens"),
        (json.dumps({"prompt_tokens": 5.5}), r"usage_details\.prompt_tokens"),
        (json.dumps({"input": 10, "output": 10, "total": 5}), "less than"),
    ],
)
def test_invalid_langfuse_usage(usage_details: str, message: str) -> None:
    s = span({"langfuse.observation.type": "generation", "langfuse.observation.usage_details": usage_details})
    with pytest.raises(InvalidSpan, match=message):
        norm(s)


def test_invalid_usage_on_ignored_spans_does_not_reject() -> None:
    attrs = {"ai.operationId": "ai.generateText", "ai.model.id": "m", "ai.usage.inputTokens": -1}
    assert norm(span(attrs)) is None
    assert (
        norm(span({"gen_ai.operation.name": "execute_tool", "gen_ai.usage.input_tokens": "junk"}))["kind"]
        == "tool"
    )


def test_invalid_span_is_a_value_error() -> None:
    assert issubclass(InvalidSpan, ValueError)


# ------------------------------------------------------------------------------------------------
# Performance guard (the measured figure is in docs/normalization.md; this only catches a pathology)
# ------------------------------------------------------------------------------------------------
# Odds and ends


@pytest.mark.parametrize(
    ("cost_attrs", "expected"),
    [
        ({"llm.cost.total": 0.25}, Decimal("0.25")),
        ({"operation.cost": "0.001"}, Decimal("0.001")),
        ({"langfuse.observation.cost_details": json.dumps({"input": 0.1, "total": 0.3})}, Decimal("0.3")),
        ({"langfuse.observation.cost_details": {"total": 2}}, Decimal(2)),
        ({"langfuse.observation.cost_details": "{broken"}, None),
        ({"gen_ai.usage.cost": -1}, None),
        ({"gen_ai.usage.cost": math.nan}, None),
        ({"gen_ai.usage.cost": "free"}, None),
        ({"gen_ai.usage.cost": [1]}, None),
    ],
)
def test_reported_cost_sources(cost_attrs: dict[str, Any], expected: Decimal | None) -> None:
    record = norm(span({**CHAT, **cost_attrs}), pricer=FakePricer(price=None))
    if expected is None:
        assert (record["cost_usd"], record["price_known"], record["cost_source"]) == (
            Decimal(0),
            False,
            "unknown",
        )
    else:
        assert (record["cost_usd"], record["price_known"], record["cost_source"]) == (
            expected,
            True,
            "reported",
        )


def test_more_ttft_forms() -> None:
    # an unparsable string falls through; a naive ISO completion start is taken as UTC
    attrs = {
        **CHAT,
        "gen_ai.response.time_to_first_chunk": "soon",
        "langfuse.observation.completion_start_time": "2025-06-15T15:06:40.500000",
    }
    assert norm(span(attrs))["ttft_ms"] == 500.0
    assert norm(span({**CHAT, "ai.response.msToFirstChunk": [1]}))["ttft_ms"] is None
    assert norm(span({**CHAT, "langfuse.observation.completion_start_time": 12345}))["ttft_ms"] is None
    first_chunk = SpanEvent("ai.stream.firstChunk", START + 30_000_000, {"ai.stream.msToFirstChunk": "n/a"})
    assert norm(span(CHAT, events=[first_chunk]))["ttft_ms"] == 30.0


def test_single_string_key_is_accepted_in_config() -> None:
    config = NormalizeConfig(route_keys="x.route")  # type: ignore[arg-type]
    assert config.route_keys == ("x.route",)


@pytest.mark.parametrize("flag", ["gen_ai.request.stream", "gen_ai.is_streaming"])
def test_a_request_that_is_not_streamed_has_no_ttft(flag: str) -> None:
    # OpenLIT reports the whole latency of a non-streamed call as gen_ai.server.time_to_first_token
    attrs = {**CHAT, "gen_ai.server.time_to_first_token": 0.095}
    assert norm(span({**attrs, flag: False}))["ttft_ms"] is None
    assert norm(span({**attrs, flag: True}))["ttft_ms"] == 95.0


def test_error_type_written_as_a_python_class_is_its_qualified_name() -> None:
    # opentelemetry-util-genai sets the exception class itself; the SDK stores its str()
    record = norm(span({**CHAT, "error.type": "<class 'openai.APITimeoutError'>"}, status=STATUS_ERROR))
    assert (record["status"], record["error_type"], record["is_timeout"]) == (
        "error",
        "openai.APITimeoutError",
        True,
    )


@pytest.mark.skipif(not is_compiled(normalize), reason="normalize is not compiled (setup.py)")
def test_the_compiled_module_normalizes_as_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension setup.py builds is normalize.py's code: every span the real instrumentation
    libraries exported gives the same record (or the same refusal) through both."""
    pure = source_module(normalize, monkeypatch)
    config, pricer = NormalizeConfig(), Pricer()

    def outcome(module: Any, view: SpanView) -> Any:
        try:
            return module.normalize_span(view, config, pricer)
        except InvalidSpan as error:
            return str(error)

    views = [view for library in FIXTURE_LIBRARIES for view in fixture_spans(library)]
    assert len(views) > 100
    for view in views:
        assert outcome(normalize, view) == outcome(pure, view), view.name
