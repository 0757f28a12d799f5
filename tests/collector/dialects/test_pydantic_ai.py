"""The pydantic_ai dialect (collector/dialects/pydantic_ai.py): every canonical field of its spans."""

from __future__ import annotations

from tests.collector.normalize_helpers import (
    SECRET,
    call,
    norm,
    span,
)


def test_pydantic_ai_gemini() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "google-gla",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.response.model": "gemini-2.5-flash",
            "gen_ai.usage.input_tokens": 800,
            "gen_ai.usage.output_tokens": 500,  # genai-prices semantics: includes the 300 thoughts
            "gen_ai.usage.details.cache_read_tokens": 600,
            "gen_ai.usage.details.thoughts_tokens": 300,
            "gen_ai.client.operation.time_to_first_chunk": 0.9,
            "logfire.span_type": "span",
            "logfire.msg": SECRET,
            "pydantic_ai.all_messages": SECRET,
        },
        name="chat gemini-2.5-flash",
        scope="pydantic-ai",
    )
    assert norm(s) == call(
        provider="gcp.gemini",
        request_model="gemini-2.5-flash",
        response_model="gemini-2.5-flash",
        input_tokens=800,
        output_tokens=500,
        cache_read_tokens=600,
        reasoning_tokens=300,
        ttft_ms=900.0,
        dialect="pydantic-ai",
    )


def test_pydantic_ai_anthropic_cache_write_details() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-haiku-4-5",
            "gen_ai.usage.input_tokens": 1300,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_creation.input_tokens": 1000,
            "gen_ai.usage.details.cache_write_tokens": 1000,  # same figure, other family: not summed
        },
        scope="pydantic-ai",
    )
    assert norm(s) == call(
        provider="anthropic",
        request_model="claude-haiku-4-5",
        response_model="claude-haiku-4-5",
        input_tokens=1300,
        output_tokens=20,
        cache_write_tokens=1000,
        dialect="pydantic-ai",
    )
