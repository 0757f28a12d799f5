"""The vercel_ai dialect (collector/dialects/vercel_ai.py): every canonical field of its spans."""

from __future__ import annotations

import pytest

from tests.collector.normalize_helpers import (
    AGGREGATED_USAGE,
    SECRET,
    START,
    call,
    norm,
    span,
)
from tokenpulse.collector.normalize import (
    normalize_provider,
)
from tokenpulse.collector.spans import SpanEvent


def test_vercel_ai_sdk_do_stream() -> None:
    s = span(
        {
            "ai.operationId": "ai.streamText.doStream",
            "operation.name": "ai.streamText.doStream summarize",
            "ai.model.id": "claude-sonnet-4-5",
            "ai.model.provider": "anthropic.messages",
            "ai.response.model": "claude-sonnet-4-5-20250929",
            "ai.usage.inputTokens": 2000,  # includes the cached input tokens
            "ai.usage.outputTokens": 100,
            "ai.usage.cachedInputTokens": 1500,
            "ai.usage.totalTokens": 2100,
            "gen_ai.system": "anthropic.messages",
            "gen_ai.usage.input_tokens": 2000,  # the same count again: never summed
            "gen_ai.usage.output_tokens": 100,
            "ai.response.msToFirstChunk": 250.5,
            "ai.telemetry.functionId": "summarize",
            "ai.telemetry.metadata.userId": "carol",
            "ai.telemetry.metadata.sessionId": "thread-7",
            "ai.prompt.messages": SECRET,
            "ai.response.text": SECRET,
        },
        name="ai.streamText.doStream",
        scope="ai",
    )
    assert norm(s) == call(
        provider="anthropic",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5-20250929",
        input_tokens=2000,
        output_tokens=100,
        cache_read_tokens=1500,
        ttft_ms=250.5,
        route="summarize",
        user="carol",
        session="thread-7",
        dialect="vercel-ai",
    )


def test_vercel_ai_sdk_v6_details_and_embed() -> None:
    generate = span(
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.id": "gpt-5",
            "ai.model.provider": "openai.responses",
            "ai.usage.inputTokens": 5000,
            "ai.usage.inputTokenDetails.cacheReadTokens": 4000,
            "ai.usage.inputTokenDetails.cacheWriteTokens": 0,
            "ai.usage.outputTokens": 900,
            "ai.usage.outputTokenDetails.reasoningTokens": 700,
            "ai.usage.reasoningTokens": 700,
        },
        name="ai.generateText.doGenerate",
        events=[SpanEvent("ai.stream.firstChunk", START + 5, {"ai.stream.msToFirstChunk": 75})],
    )
    assert norm(generate) == call(
        provider="openai",
        request_model="gpt-5",
        response_model="gpt-5",
        input_tokens=5000,
        output_tokens=900,
        cache_read_tokens=4000,
        reasoning_tokens=700,
        ttft_ms=75.0,
        dialect="vercel-ai",
    )
    embed = span(
        {
            "ai.operationId": "ai.embedMany.doEmbed",
            "ai.model.id": "text-embedding-3-small",
            "ai.model.provider": "openai.embedding",
            "ai.usage.tokens": 64,
            "ai.values": [SECRET],
            "ai.embeddings": ["[0.1,0.2]"],
        },
        name="ai.embedMany.doEmbed",
    )
    assert norm(embed) == call(
        provider="openai",
        request_model="text-embedding-3-small",
        response_model="text-embedding-3-small",
        operation="embeddings",
        input_tokens=64,
        dialect="vercel-ai",
    )


@pytest.mark.parametrize(
    "root",
    ["ai.generateText", "ai.streamText", "ai.generateObject", "ai.streamObject", "ai.embed", "ai.embedMany"],
)
def test_vercel_root_spans_yield_nothing(root: str) -> None:
    s = span(
        {
            "ai.operationId": root,
            "ai.model.id": "gpt-4o",
            "ai.model.provider": "openai.chat",
            "ai.usage.inputTokens": 9000,
            "ai.usage.outputTokens": 900,
            **AGGREGATED_USAGE,
        },
        name=root,
    )
    assert norm(s) is None


def test_vercel_root_detected_by_name_without_operation_id() -> None:
    s = span(
        {"ai.model.id": "gpt-4o", "ai.usage.promptTokens": 10, "ai.usage.completionTokens": 2},
        name="ai.generateText",
    )
    assert norm(s) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("openai.chat", "openai"),
        ("openai.responses", "openai"),
        ("anthropic.messages", "anthropic"),
        ("google.generative-ai", "gcp.gemini"),
        ("google.vertex.chat", "gcp.vertex_ai"),
        ("amazon-bedrock", "aws.bedrock"),
        ("azure-openai.chat", "azure.ai.openai"),
        ("mistral.chat", "mistral_ai"),
        ("xai.chat", "x_ai"),
        ("groq.chat", "groq"),
        ("together.chat", "together"),
        ("azure.ai.openai", "azure.ai.openai"),
    ],
)
def test_vercel_provider_spellings(raw: str, expected: str) -> None:
    assert normalize_provider(raw, dotted_suffix=True) == expected
