"""The openinference dialect (collector/dialects/openinference.py): every canonical field of its spans."""

from __future__ import annotations

from tests.collector.normalize_helpers import (
    SECRET,
    START,
    call,
    norm,
    span,
)
from tokenpulse.collector.spans import SpanEvent


def test_openinference_llm() -> None:
    s = span(
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "azure",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 2000,
            "llm.token_count.completion": 150,
            "llm.token_count.total": 2150,
            "llm.token_count.prompt_details.cache_read": 1500,
            "llm.token_count.completion_details.reasoning": 50,
            "session.id": "sess-1",
            "user.id": "bob",
            "llm.prompt_template.version": "3.1",
            "input.value": SECRET,
            "output.value": SECRET,
            "llm.input_messages.0.message.content": SECRET,
            "llm.output_messages.0.message.content": SECRET,
        },
        name="ChatCompletion",
        events=[SpanEvent("First Token Stream Event", START + 180_000_000)],
    )
    assert norm(s) == call(
        provider="azure.ai.openai",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini",
        input_tokens=2000,
        output_tokens=150,
        cache_read_tokens=1500,
        reasoning_tokens=50,
        ttft_ms=180.0,
        user="bob",
        session="sess-1",
        prompt_version="3.1",
        dialect="openinference",
    )


def test_openinference_embedding() -> None:
    s = span(
        {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "llm.system": "openai",
            "llm.token_count.prompt": 12,
            "llm.token_count.total": 12,
            "embedding.embeddings.0.embedding.text": SECRET,
        }
    )
    assert norm(s) == call(
        provider="openai",
        request_model="text-embedding-3-small",
        response_model="text-embedding-3-small",
        operation="embeddings",
        input_tokens=12,
        dialect="openinference",
    )


def test_openinference_request_and_response_model_names() -> None:
    s = span(
        {
            "openinference.span.kind": "LLM",
            "llm.request.model_name": "gpt-4o",
            "llm.response.model_name": "gpt-4o-2024-08-06",
            "llm.model_name": "gpt-4o-2024-08-06",
        }
    )
    record = norm(s)
    assert (record["request_model"], record["response_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
