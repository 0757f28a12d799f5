"""Normalization micro-benchmark: CPU µs per span of ``normalize_span`` for typical spans of each kind.

    python bench/normalize.py [--iterations 20000] [--repeat 7]

The code measured is the checkout in the working directory (run it from another checkout's root with
this file's path to compare). CPU time (``time.process_time``), best of ``--repeat`` runs: on a shared
machine the wall clock measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from typing import Any

sys.path.insert(0, os.getcwd())

from tokenpulse.collector.normalize import NormalizeConfig, normalize_span
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import SpanView

CONTENT = {f"gen_ai.input.messages.{i}": "a prompt, never read" for i in range(6)}
SPANS: dict[str, tuple[str, dict[str, Any]]] = {
    "semconv chat": (
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1500,
            "gen_ai.response.time_to_first_chunk": 0.4,
            "gen_ai.response.finish_reasons": "stop",
            "server.address": "api.openai.com",
            "tokenpulse.route": "/chat",
            "tokenpulse.user": "user-7",
            "tokenpulse.prompt.version": "v7",
            "gen_ai.conversation.id": "conv-1",
            **CONTENT,
        },
    ),
    "openinference llm": (
        "ChatCompletion",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 2000,
            "llm.token_count.completion": 300,
            "llm.token_count.prompt_details.cache_read": 1500,
            "llm.token_count.total": 2300,
            **{f"llm.input_messages.{i}.message.content": "a prompt, never read" for i in range(12)},
        },
    ),
    "vercel doStream": (
        "ai.streamText.doStream",
        {
            "ai.operationId": "ai.streamText.doStream",
            "ai.model.id": "gpt-4o",
            "ai.model.provider": "openai.chat",
            "ai.usage.inputTokens": 2000,
            "ai.usage.outputTokens": 300,
            "ai.usage.cachedInputTokens": 1500,
            "ai.response.msToFirstChunk": 412.5,
            "ai.telemetry.functionId": "support-chat",
            "ai.prompt.messages": "a prompt, never read",
        },
    ),
    "http (ignored)": (
        "GET /v1/items",
        {
            "http.request.method": "GET",
            "url.full": "https://inventory.internal/v1/items",
            "http.response.status_code": 200,
            "server.address": "inventory.internal",
            "server.port": 443,
            "network.protocol.version": "1.1",
            "user_agent.original": "python-httpx/0.28",
            "http.route": "/v1/items",
        },
    ),
}


class FixedPricer(Pricer):
    """A pricer that answers at once, to see normalization without the price lookup. A Pricer, since the
    compiled normalize_span takes no other type; there, its Python ``price`` is called through the
    interpreter and costs more than the compiled Pricer's cached lookup."""

    def __init__(self) -> None:  # no price data to load
        pass

    def price(self, provider: str, model: str, **tokens: int) -> tuple[Decimal, str]:
        return Decimal("0.01"), "genai-prices"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    config = NormalizeConfig()
    resource = {"service.name": "bench", "deployment.environment.name": "prod"}
    results: dict[str, float] = {}
    for pricer_name, pricer in (("fixed pricer", FixedPricer()), ("real Pricer", Pricer())):
        for label, (name, attributes) in SPANS.items():
            span = SpanView(
                "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "", name,
                1_750_000_000_000_000_000, 1_750_000_001_500_000_000, attributes, resource,
            )  # fmt: skip
            normalize_span(span, config, pricer)  # type: ignore[arg-type]
            best = float("inf")
            for _ in range(args.repeat):
                started = time.process_time()
                for _ in range(args.iterations):
                    normalize_span(span, config, pricer)  # type: ignore[arg-type]
                best = min(best, time.process_time() - started)
            results[f"{label}, {pricer_name}"] = round(best / args.iterations * 1e6, 2)
    print(json.dumps({"code": os.getcwd(), "cpu_us_per_span": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
