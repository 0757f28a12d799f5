"""The same Anthropic call, as each instrumentation library reports it, ends up with the same tokens and cost.

Sent over OTLP/HTTP to a running daemon and read back from `tokenpulse summary`. The call: 10 uncached
prompt tokens, 3,000 read from the cache, 500 written to it, 200 output tokens. claude-sonnet-4-5 costs
$3/M input, $0.30/M cache read, $3.75/M cache write, $15/M output:
10 * 3 + 3000 * 0.30 + 500 * 3.75 + 200 * 15 = $5,805 per million calls = $0.005805.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from tests.daemon import Daemon
from tests.otlp_builders import export_request, span_with

EXACT = (3510, 3000, 500, 200, "0.005805")

DIALECTS: dict[str, tuple[dict, tuple]] = {
    "semconv": (
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 3510,
            "gen_ai.usage.cache_read.input_tokens": 3000,
            "gen_ai.usage.cache_creation.input_tokens": 500,
            "gen_ai.usage.output_tokens": 200,
        },
        EXACT,
    ),
    "openllmetry": (
        {
            "llm.request.type": "chat",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 3510,  # OpenLLMetry adds the cache back
            "gen_ai.usage.cache_read_input_tokens": 3000,
            "gen_ai.usage.cache_creation_input_tokens": 500,
            "gen_ai.usage.output_tokens": 200,
            "llm.usage.total_tokens": 3710,
        },
        EXACT,
    ),
    "openlit": (
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 10,  # Anthropic's raw count: the cache is left out
            "gen_ai.usage.cache_read_input_tokens": 3000,
            "gen_ai.usage.cache_creation_input_tokens": 500,
            "gen_ai.usage.output_tokens": 200,
        },
        EXACT,
    ),
    "openinference": (
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "anthropic",
            "llm.model_name": "claude-sonnet-4-5",
            "llm.token_count.prompt": 3510,
            "llm.token_count.prompt_details.cache_read": 3000,
            "llm.token_count.prompt_details.cache_write": 500,
            "llm.token_count.completion": 200,
            "llm.token_count.total": 3710,
        },
        EXACT,
    ),
    "pydantic-ai": (
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 3510,
            "gen_ai.usage.details.cache_read_tokens": 3000,
            "gen_ai.usage.details.cache_write_tokens": 500,
            "gen_ai.usage.output_tokens": 200,
        },
        EXACT,
    ),
    "vercel-ai": (
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.id": "claude-sonnet-4-5",
            "ai.model.provider": "anthropic.messages",
            "ai.usage.inputTokens": 3510,
            "ai.usage.cachedInputTokens": 3000,  # the AI SDK reports no cache writes: billed as input
            "ai.usage.outputTokens": 200,
        },
        (3510, 3000, 0, 200, "0.00543"),
    ),
    "langfuse": (
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "claude-sonnet-4-5",
            "langfuse.observation.usage_details": json.dumps(
                {"input": 10, "input_cache_read": 3000, "input_cache_creation": 500, "output": 200}
            ),
        },
        EXACT,
    ),
}


@pytest.fixture(scope="module")
def summary_by_service(shared_daemon: Daemon) -> dict[str, dict]:
    for dialect, (attributes, _) in DIALECTS.items():
        body = export_request(span_with(attributes), service=f"dialect-{dialect}").SerializeToString()
        response = httpx.post(
            f"{shared_daemon.otlp_http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert response.status_code == 200 and not response.content, response.content
    deadline = time.monotonic() + 30
    while True:
        cli = subprocess.run(
            [sys.executable, "-m", "tokenpulse.cli", "summary", "--api", shared_daemon.api,
             "--group-by", "service", "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        groups = {g["key"]["service"]: g for g in json.loads(cli.stdout)["groups"]}
        if all(f"dialect-{d}" in groups for d in DIALECTS) or time.monotonic() > deadline:
            return groups
        time.sleep(0.2)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialect_tokens_and_cost_in_summary(summary_by_service: dict[str, dict], dialect: str) -> None:
    group = summary_by_service[f"dialect-{dialect}"]
    tokens = (
        group["input_tokens"],
        group["cache_read_tokens"],
        group["cache_write_tokens"],
        group["output_tokens"],
    )
    assert (*tokens, group["cost_usd"]) == DIALECTS[dialect][1]
    assert group["calls"] == 1
