"""The semconv dialect (collector/dialects/semconv.py): every canonical field of its spans."""

from __future__ import annotations

from tests.collector.normalize_helpers import (
    SECRET,
    FakePricer,
    call,
    norm,
    span,
)
from tokenpulse.collector.spans import STATUS_OK


def test_semconv_openai_chat() -> None:
    pricer = FakePricer()
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1200,  # includes the 1024 cached tokens (OpenAI semantics)
            "gen_ai.usage.output_tokens": 300,  # includes the 120 reasoning tokens
            "gen_ai.usage.cache_read.input_tokens": 1024,
            "gen_ai.usage.reasoning.output_tokens": 120,
            "gen_ai.response.time_to_first_chunk": 0.35,
            "gen_ai.conversation.id": "conv-42",
            "gen_ai.input.messages": SECRET,
            "gen_ai.output.messages": SECRET,
            "tokenpulse.route": "/chat",
            "user.id": "u-1",
            "server.address": "api.openai.com",
        },
        name="chat gpt-4o",
        status=STATUS_OK,
    )
    assert norm(s, pricer=pricer) == call(
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        input_tokens=1200,
        output_tokens=300,
        cache_read_tokens=1024,
        reasoning_tokens=120,
        ttft_ms=350.0,
        status="ok",
        route="/chat",
        user="u-1",
        session="conv-42",
    )
    # Pricing uses the response model and the canonical (inclusive) counts.
    assert pricer.calls == [
        (
            "openai",
            "gpt-4o-2024-08-06",
            {
                "input_tokens": 1200,
                "output_tokens": 300,
                "cache_read_tokens": 1024,
                "cache_write_tokens": 0,
                "reasoning_tokens": 120,
            },
        )
    ]


def test_semconv_deprecated_keys_and_system() -> None:
    s = span(
        {
            "gen_ai.operation.name": "text_completion",
            "gen_ai.system": "az.ai.openai",
            "gen_ai.request.model": "gpt-35-turbo-instruct",
            "gen_ai.usage.prompt_tokens": 40,
            "gen_ai.usage.completion_tokens": 9,
        },
        resource={"service.name": "legacy", "deployment.environment": "staging"},
    )
    assert norm(s) == call(
        service="legacy",
        service_version="",
        environment="staging",
        provider="azure.ai.openai",
        request_model="gpt-35-turbo-instruct",
        response_model="gpt-35-turbo-instruct",
        operation="text_completion",
        input_tokens=40,
        output_tokens=9,
    )
