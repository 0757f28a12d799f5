"""Langfuse SDK: ``langfuse.observation.*``; usage as one ``usage_details`` object."""

from __future__ import annotations

import json
from typing import Any

from tokenpulse.collector import dialects as d

USAGE_KEY = "langfuse.observation.usage_details"
_PREFIX = USAGE_KEY + "."
_CACHE_READ = (
    "input_cached_tokens",
    "cache_read_input_tokens",
    "input_cache_read",
    "cached_tokens",
    "input_cached",
    "cache_read",
)
_CACHE_WRITE = (
    "cache_creation_input_tokens",
    "input_cache_creation",
    "input_cache_write",
    "cache_write_input_tokens",
    "cache_creation",
    "cache_write",
)
_REASONING = ("output_reasoning_tokens", "reasoning_tokens", "output_reasoning", "reasoning")
_KNOWN = frozenset(("input", "output", "total", *_CACHE_READ, *_CACHE_WRITE, *_REASONING))


def _pick(usage: dict[str, Any], keys: tuple[str, ...], limit: int) -> int:
    for key in keys:
        value = usage.get(key)
        if value is not None:
            return d.token_count(value, key, limit, _PREFIX)
    return 0


def usage_details(raw: Any, limit: int) -> tuple[int, int, int, int, int, int | None, bool]:
    """(input, output, cache_read, cache_write, reasoning, total, exclusive) from usage_details.

    Langfuse-native buckets are additive (Langfuse sums them into the total), i.e. *exclusive*: ``input``
    excludes the cache buckets and ``output`` excludes reasoning. The OpenAI usage schemas it also accepts
    (``prompt_tokens``/``completion_tokens``, ``input_tokens``/``output_tokens`` with ``*_details``) are
    inclusive.
    """
    if type(raw) is str:
        try:
            raw = json.loads(raw)
        except ValueError:
            raise d.InvalidSpan(f"{USAGE_KEY}: not valid JSON") from None
    if not isinstance(raw, dict):
        raise d.InvalidSpan(f"{USAGE_KEY}: expected a JSON object")
    if (
        "prompt_tokens" in raw
        or "completion_tokens" in raw
        or "input_tokens" in raw
        or "output_tokens" in raw
    ):
        openai_chat = "prompt_tokens" in raw or "completion_tokens" in raw
        in_key, out_key = (
            ("prompt_tokens", "completion_tokens") if openai_chat else ("input_tokens", "output_tokens")
        )
        in_details = raw.get("prompt_tokens_details" if openai_chat else "input_tokens_details")
        out_details = raw.get("completion_tokens_details" if openai_chat else "output_tokens_details")
        inp = _pick(raw, (in_key,), limit)
        out = _pick(raw, (out_key,), limit)
        cr = _pick(in_details, ("cached_tokens",), limit) if isinstance(in_details, dict) else 0
        rsn = _pick(out_details, ("reasoning_tokens",), limit) if isinstance(out_details, dict) else 0
        total = (
            d.token_count(raw["total_tokens"], "total_tokens", limit, _PREFIX)
            if "total_tokens" in raw
            else None
        )
        return inp, out, cr, 0, rsn, total, False
    inp = _pick(raw, ("input",), limit)
    out = _pick(raw, ("output",), limit)
    cr = _pick(raw, _CACHE_READ, limit)
    cw = _pick(raw, _CACHE_WRITE, limit)
    rsn = _pick(raw, _REASONING, limit)
    for key, value in raw.items():  # other buckets (audio, image...) are part of input/output too
        if value is None or key in _KNOWN or type(key) is not str:
            continue
        if "input" in key:
            inp += d.token_count(value, key, limit, _PREFIX)
        elif "output" in key:
            out += d.token_count(value, key, limit, _PREFIX)
    total = _pick(raw, ("total",), limit) if "total" in raw else None
    return inp, out, cr, cw, rsn, total, True


DIALECT = d.Dialect(
    name="langfuse",
    order=20,
    markers=d.Markers(keys=("langfuse.observation.type", USAGE_KEY)),
    rules=(
        d.ByValue(
            "langfuse.observation.type",
            {
                "generation": d.call("chat"),
                "completion": d.call("text_completion"),
                "embedding": d.call("embeddings"),
                "tool": d.tool(),
                "agent": d.agent(),
                **{
                    t: d.non_leaf() for t in ("span", "chain", "event", "retriever", "evaluator", "guardrail")
                },
            },
            normalize="lower",
            decisive=True,  # any other type: the generic rules decide
        ),
    ),
    keys=d.Keys(
        request_model=("langfuse.observation.model.name",),
        completion_start_time=("langfuse.observation.completion_start_time",),
        reported_cost_details=("langfuse.observation.cost_details",),
        tool_name=("langfuse.observation.name",),
        agent_name=("langfuse.observation.name",),
    ),
    usage_reader=d.UsageReader("usage_details object", USAGE_KEY, usage_details),
)
