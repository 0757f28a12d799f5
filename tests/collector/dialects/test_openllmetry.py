"""The openllmetry dialect (collector/dialects/openllmetry.py): every canonical field of its spans."""

from __future__ import annotations

from tests.collector.normalize_helpers import (
    CHAT,
    SECRET,
    START,
    call,
    norm,
    span,
)
from tokenpulse.collector.spans import SpanEvent


def test_openllmetry_anthropic() -> None:
    s = span(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            # OpenLLMetry adds cache reads and writes back: 10 uncached + 3000 read + 500 written.
            "gen_ai.usage.input_tokens": 3510,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.cache_read_input_tokens": 3000,
            "gen_ai.usage.cache_creation_input_tokens": 500,
            "llm.usage.total_tokens": 3710,
            "traceloop.workflow.name": "support-bot",
            "traceloop.association.properties.user_id": "alice",
            "traceloop.association.properties.session_id": "s-9",
            "traceloop.association.properties.prompt_version": "v7",
            "gen_ai.prompt.0.content": SECRET,
            "gen_ai.completion.0.content": SECRET,
        },
        name="anthropic.chat",
        scope="opentelemetry.instrumentation.anthropic",
    )
    assert norm(s) == call(
        provider="anthropic",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5-20250929",
        input_tokens=3510,
        output_tokens=200,
        cache_read_tokens=3000,
        cache_write_tokens=500,
        route="support-bot",
        user="alice",
        session="s-9",
        prompt_version="v7",
        dialect="openllmetry",
    )


def test_openllmetry_chunk_events_give_ttft() -> None:
    chunks = [SpanEvent("gen_ai.content.completion.chunk", START + ms * 1_000_000) for ms in (364, 378)]
    assert norm(span({**CHAT, "gen_ai.is_streaming": True}, events=chunks))["ttft_ms"] == 364.0
