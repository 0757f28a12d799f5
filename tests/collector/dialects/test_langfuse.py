"""The langfuse dialect (collector/dialects/langfuse.py): every canonical field of its spans."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.collector.normalize_helpers import (
    SECRET,
    START,
    call,
    norm,
    span,
    tool,
)


def test_langfuse_generation_exclusive_usage_details() -> None:
    completion_start = "2025-06-15T15:06:40.250Z"  # START is 2025-06-15T15:06:40Z
    assert START == 1_750_000_000_000_000_000
    s = span(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4.1",
            # Langfuse buckets are additive: input excludes the cached part, output excludes reasoning.
            "langfuse.observation.usage_details": json.dumps(
                {
                    "input": 100,
                    "input_cached_tokens": 900,
                    "output": 50,
                    "output_reasoning_tokens": 20,
                    "total": 1070,
                }
            ),
            "langfuse.observation.completion_start_time": json.dumps(completion_start),
            "langfuse.user.id": "dave",
            "langfuse.session.id": "lf-session",
            "langfuse.observation.prompt.version": 3,
            "langfuse.observation.input": SECRET,
            "langfuse.observation.output": SECRET,
        },
        name="generation",
    )
    assert norm(s) == call(
        request_model="gpt-4.1",
        response_model="gpt-4.1",
        input_tokens=1000,
        output_tokens=70,
        cache_read_tokens=900,
        reasoning_tokens=20,
        ttft_ms=250.0,
        user="dave",
        session="lf-session",
        prompt_version="3",
        dialect="langfuse",
    )


def test_langfuse_openai_schema_usage_is_inclusive() -> None:
    s = span(
        {
            "langfuse.observation.type": "generation",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "langfuse.observation.usage_details": {
                "prompt_tokens": 1000,
                "completion_tokens": 80,
                "total_tokens": 1080,
                "prompt_tokens_details": {"cached_tokens": 600},
                "completion_tokens_details": {"reasoning_tokens": 30},
            },
        }
    )
    assert norm(s) == call(
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o",
        input_tokens=1000,
        output_tokens=80,
        cache_read_tokens=600,
        reasoning_tokens=30,
        dialect="langfuse",
    )


def test_langfuse_native_other_buckets_and_cache_write() -> None:
    s = span(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "claude-sonnet-4-5",
            "langfuse.observation.usage_details": {
                "input": 10,
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 500,
                "input_audio_tokens": 5,
                "output": 200,
                "output_audio_tokens": 7,
            },
        }
    )
    record = norm(s)
    assert (record["input_tokens"], record["cache_read_tokens"], record["cache_write_tokens"]) == (
        3515,
        3000,
        500,
    )
    assert (record["output_tokens"], record["reasoning_tokens"]) == (207, 0)


@pytest.mark.parametrize(
    ("observation_type", "expected"),
    [("span", None), ("chain", None), ("event", None), ("retriever", None)],
)
def test_langfuse_non_generation_types_are_ignored(observation_type: str, expected: Any) -> None:
    s = span(
        {
            "langfuse.observation.type": observation_type,
            "gen_ai.usage.input_tokens": 5,
            "gen_ai.request.model": "m",
        }
    )
    assert norm(s) is expected


def test_langfuse_usage_without_observation_type() -> None:
    s = span(
        {"langfuse.observation.model.name": "gpt-4o", "langfuse.observation.usage_details": {"input": 3}}
    )
    assert norm(s) == call(
        request_model="gpt-4o", response_model="gpt-4o", operation="", input_tokens=3, dialect="langfuse"
    )


def test_langfuse_tool_and_agent() -> None:
    t = span(
        {"langfuse.observation.type": "tool", "langfuse.observation.name": "search_web"}, name="tool-span"
    )
    assert norm(t) == tool(name="search_web")
    a = span(
        {"langfuse.observation.type": "agent", "langfuse.observation.usage_details": "{}"}, name="planner"
    )
    assert norm(a) == tool(kind="agent", name="planner")
