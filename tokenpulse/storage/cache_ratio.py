"""The prompt-cache hit ratio: one definition for detectors, the API, the page, dashboards and runbooks.

Providers report prompt caching in one of two shapes:

- **reads and writes** (Anthropic, Claude on Bedrock or Vertex AI, Bedrock's other cached models): a
  cacheable prefix is either read from the cache or written to it, and the tokens after the last cache
  breakpoint are neither. The tokens that could have been read are reads + writes.
- **reads only** (OpenAI, Gemini, DeepSeek, xAI, gateways that speak OpenAI's API): caching is automatic
  and no write is reported. Any input token could have been read: the tokens that could have been read
  are the input tokens.

The hit ratio is the sum of cache reads over the sum of *cacheable* tokens, where each call's cacheable
tokens follow its provider's shape. The shape is decided per call by who served it (provider, model),
never per window: a warm Anthropic cache has windows without one write, and reads over input there reads
~0.35 on a route that hits 95% of its prefix. The sum is additive, so the same ratio holds over a minute,
a window, a rollup group or a mix of providers.
"""

from __future__ import annotations

# Providers (OTel ``gen_ai.provider.name`` values, as the normalizer writes them) whose usage reports
# cache writes. Vertex AI serves Claude (writes reported) and Gemini (reads only): decided by the model.
WRITE_REPORTING_PROVIDERS = ("anthropic", "aws.bedrock")
WRITE_REPORTING_MODEL_MARKER = "claude"


def reports_cache_writes(provider: str, model: str) -> bool:
    """Whether calls served by ``provider`` / ``model`` report cache writes (reads-and-writes shape)."""
    return provider in WRITE_REPORTING_PROVIDERS or (
        provider == "gcp.vertex_ai" and WRITE_REPORTING_MODEL_MARKER in model.lower()
    )


def cacheable_tokens(
    provider: str, model: str, input_tokens: int, cache_read_tokens: int, cache_write_tokens: int
) -> int:
    """The tokens of a call (or of calls of one provider and model) that could have been cache reads."""
    if reports_cache_writes(provider, model):
        return cache_read_tokens + cache_write_tokens
    return input_tokens


def hit_ratio(cache_read_tokens: float, cacheable: float) -> float | None:
    """Cache reads over cacheable tokens; None when nothing was cacheable."""
    return cache_read_tokens / cacheable if cacheable else None


def _reports_writes_sql(provider: str, model: str) -> str:
    providers = ", ".join(f"'{p}'" for p in WRITE_REPORTING_PROVIDERS)
    return (
        f"({provider} IN ({providers}) OR ({provider} = 'gcp.vertex_ai' "
        f"AND positionCaseInsensitive({model}, '{WRITE_REPORTING_MODEL_MARKER}') > 0))"
    )


def cacheable_tokens_sql(
    provider: str = "provider",
    model: str = "model",
    input_tokens: str = "input_tokens",
    cache_read_tokens: str = "cache_read_tokens",
    cache_write_tokens: str = "cache_write_tokens",
) -> str:
    """SQL for one row's cacheable tokens (``reports_cache_writes`` and ``cacheable_tokens`` in SQL). Over
    ``calls`` or ``calls_1m`` alike (both have provider and model); wrap in ``sum()`` to aggregate."""
    return (
        f"if({_reports_writes_sql(provider, model)}, {cache_read_tokens} + {cache_write_tokens}, "
        f"{input_tokens})"
    )


def hit_ratio_sql(**columns: str) -> str:
    """SQL for the hit ratio of a group of rows: sum(reads) / sum(cacheable), NULL when nothing was
    cacheable. ``columns`` rename the columns as ``cacheable_tokens_sql`` takes them."""
    reads = columns.get("cache_read_tokens", "cache_read_tokens")
    return f"sum({reads}) / nullIf(sum({cacheable_tokens_sql(**columns)}), 0)"
