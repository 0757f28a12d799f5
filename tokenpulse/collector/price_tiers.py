"""What a call costs beyond its model's standard price list: service tiers, batch, fast mode, geography.

genai-prices prices a call at the provider's standard rates (with long-context tiers and cache TTL units,
which ``collector.pricing`` applies per call). What the provider *served* changes the bill on top of that:
OpenAI's flex and batch at half price, its priority tier at a higher list, Gemini's batch/flex/priority,
Anthropic's batch, fast mode and US-only inference. Each is one row of ``TIER_RATES``: a multiplier on the
call's whole standard price, keyed on what the provider reported it served (``service_tier``, ``speed``,
``inference_geo`` on the call), with where the figure comes from and when it was read. A user replaces or
adds rows in ``[[prices.tiers]]`` (see ``tier_rate``); a value the table does not know is billed at the
standard price (multiplier 1) and the stored tier shows which calls those were.

The figures were transcribed from the providers' pricing documentation named in each row, without network
access at the time of writing: the ``as_of`` date is when they were last read, and a row whose provider
changed its prices is corrected by a ``[[prices.tiers]]`` entry until the table is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "DIMENSIONS",
    "TIER_RATES",
    "TierRate",
    "TierTable",
    "canonical_tier",
    "tier_rate",
]

# The call attributes a tier rate can be keyed on (CallRecord fields).
DIMENSIONS = ("service_tier", "speed", "inference_geo")

# Spellings of the served service tier -> the canonical value stored on the call. OpenAI reports the
# standard tier as "default", Vertex AI as "ON_DEMAND"; anything else is kept, lowercased.
_TIER_ALIASES = {"default": "standard", "on_demand": "standard", "standard_only": "standard"}


def canonical_tier(raw: str) -> str:
    """The canonical spelling of a served service tier, speed or geography value ("" stays "")."""
    low = raw.strip().lower()
    return _TIER_ALIASES.get(low, low)


@dataclass(frozen=True, slots=True)
class TierRate:
    """One documented multiplier on a call's standard price.

    ``providers``: canonical provider names (``normalize.normalize_provider``). ``dimension``: one of
    ``DIMENSIONS``; ``value``: its canonical value. ``models``: model-name prefixes it is limited to (the
    longest matching prefix wins; ``()`` applies to every model of the providers). ``multiplier`` applies
    to every token kind of the call (input, cache reads and writes, output).
    """

    providers: tuple[str, ...]
    dimension: str
    value: str
    multiplier: Decimal
    models: tuple[str, ...] = ()
    source: str = ""
    as_of: str = ""

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise ValueError(
                f"tier rate: dimension must be one of {', '.join(DIMENSIONS)}, not {self.dimension!r}"
            )
        if not self.providers or not self.value:
            raise ValueError("tier rate: providers and value are required")
        m = self.multiplier
        if not isinstance(m, Decimal) or not m.is_finite() or m < 0:
            raise ValueError(
                f"tier rate {self.dimension}={self.value}: multiplier must be a finite Decimal >= 0"
            )


_OPENAI_PRICING = "https://platform.openai.com/docs/pricing (Priority tab)"
_READ = "2026-12-03, offline"  # transcribed without network access: verify against the page

TIER_RATES: tuple[TierRate, ...] = (
    # OpenAI: the tier served is the response's service_tier; flex and batch are billed at Batch rates.
    TierRate(
        ("openai", "azure.ai.openai"),
        "service_tier",
        "batch",
        Decimal("0.5"),
        source="https://platform.openai.com/docs/guides/batch (50% lower cost than the synchronous APIs)",
        as_of=_READ,
    ),
    TierRate(
        ("openai",),
        "service_tier",
        "flex",
        Decimal("0.5"),
        source="https://platform.openai.com/docs/guides/flex-processing (billed at Batch API rates)",
        as_of=_READ,
    ),
    # Priority is its own price list; per model it is these multiples of the standard list.
    TierRate(("openai",), "service_tier", "priority", Decimal("2"), source=_OPENAI_PRICING, as_of=_READ),
    TierRate(
        ("openai",),
        "service_tier",
        "priority",
        Decimal("1.8"),
        models=("gpt-5-mini",),
        source=_OPENAI_PRICING + ": $0.45/$3.60 vs $0.25/$2.00",
        as_of=_READ,
    ),
    TierRate(
        ("openai",),
        "service_tier",
        "priority",
        Decimal("1.75"),
        models=("gpt-4.1", "o3"),
        source=_OPENAI_PRICING + ": gpt-4.1 $3.50/$14 vs $2/$8; o3 $3.50/$14 vs $2/$8",
        as_of=_READ,
    ),
    TierRate(
        ("openai",),
        "service_tier",
        "priority",
        Decimal("1.7"),
        models=("gpt-4o",),
        source=_OPENAI_PRICING + ": $4.25/$17 vs $2.50/$10",
        as_of=_READ,
    ),
    # Anthropic: usage.service_tier says "batch" for Message Batches results.
    TierRate(
        ("anthropic",),
        "service_tier",
        "batch",
        Decimal("0.5"),
        source="https://docs.anthropic.com/en/docs/build-with-claude/batch-processing#pricing (50% off)",
        as_of=_READ,
    ),
    # Priority Tier is a committed-capacity contract billed by the commitment, not a per-token rate.
    TierRate(
        ("anthropic",),
        "service_tier",
        "priority",
        Decimal("1"),
        source="https://docs.anthropic.com/en/api/service-tiers (committed spend, standard token prices)",
        as_of=_READ,
    ),
    TierRate(
        ("anthropic",),
        "speed",
        "fast",
        Decimal("6"),
        models=("claude-opus-4-6",),
        source="https://docs.anthropic.com/en/docs/build-with-claude/fast-mode ($30/$150 vs $5/$25 per MTok)",
        as_of=_READ,
    ),
    TierRate(
        ("anthropic",),
        "inference_geo",
        "us",
        Decimal("1.1"),
        models=("claude-opus-4-6",),
        source="https://docs.anthropic.com/en/docs/build-with-claude/data-residency (US-only: 1.1x)",
        as_of=_READ,
    ),
    # Google Gemini API / Vertex AI.
    TierRate(
        ("gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"),
        "service_tier",
        "batch",
        Decimal("0.5"),
        source="https://ai.google.dev/gemini-api/docs/batch-mode (50% of the interactive price)",
        as_of=_READ,
    ),
    TierRate(
        ("gcp.gemini", "gcp.gen_ai"),
        "service_tier",
        "flex",
        Decimal("0.5"),
        source="https://ai.google.dev/gemini-api/docs/pricing (Flex: Batch rates)",
        as_of=_READ,
    ),
    TierRate(
        ("gcp.gemini", "gcp.gen_ai"),
        "service_tier",
        "priority",
        Decimal("1.8"),
        source="https://ai.google.dev/gemini-api/docs/pricing (Priority: 1.8x standard)",
        as_of=_READ,
    ),
)


class TierTable:
    """The tier rates in effect (the built-in table with the user's rows over it), looked up per call."""

    def __init__(self, overrides: Iterable[TierRate] = (), base: Iterable[TierRate] = TIER_RATES) -> None:
        # (provider, dimension, value) -> [(model prefix, rate)], longest prefix first; "" matches all.
        self._rates: dict[tuple[str, str, str], dict[str, TierRate]] = {}
        for rate in (*base, *overrides):  # a later row for the same key and models replaces the earlier
            for provider in rate.providers:
                slot = self._rates.setdefault((provider, rate.dimension, rate.value), {})
                for prefix in rate.models or ("",):
                    slot[prefix] = rate
        self._sorted = {
            key: sorted(slot.items(), key=lambda item: -len(item[0])) for key, slot in self._rates.items()
        }
        self._memo: dict[tuple[str, str, str, str, str], Decimal] = {}

    def rate(self, provider: str, model: str, dimension: str, value: str) -> TierRate | None:
        """The rate for one served value, or None when the table does not price it."""
        for prefix, rate in self._sorted.get((provider, dimension, value), ()):
            if model.startswith(prefix):
                return rate
        return None

    def multiplier(
        self, provider: str, model: str, service_tier: str, speed: str, inference_geo: str
    ) -> Decimal:
        """The product of the multipliers of what was served (1 for a value without a row)."""
        key = (provider, model, service_tier, speed, inference_geo)
        found = self._memo.get(key)
        if found is None:
            found = Decimal(1)
            for dimension, value in zip(DIMENSIONS, key[2:], strict=True):
                if value:
                    rate = self.rate(provider, model, dimension, value)
                    if rate is not None:
                        found *= rate.multiplier
            if len(self._memo) >= 10_000:  # model names come from spans: keep the memo bounded
                self._memo.clear()
            self._memo[key] = found
        return found

    def rows(self) -> list[TierRate]:
        """Every rate in effect, once each (for documentation and `config check`)."""
        seen: dict[int, TierRate] = {}
        for slot in self._rates.values():
            for rate in slot.values():
                seen.setdefault(id(rate), rate)
        return list(seen.values())


def tier_rate(entry: Mapping[str, Any]) -> TierRate:
    """A ``[[prices.tiers]]`` entry as a TierRate; ValueError names what is wrong.

    ``provider`` (or ``providers``), ``dimension``, ``value`` and ``multiplier`` are required;
    ``models`` (model-name prefixes) and ``source`` are optional.
    """
    known = {"provider", "providers", "dimension", "value", "multiplier", "models", "source", "as_of"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    providers = entry.get("providers", entry.get("provider"))
    if isinstance(providers, str):
        providers = [providers]
    if not isinstance(providers, list) or not all(isinstance(p, str) and p for p in providers):
        raise ValueError("provider must be a provider name (or providers a list of them)")
    models = entry.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ValueError("models must be a list of model-name prefixes")
    raw = entry.get("multiplier")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError("multiplier is required: a number >= 0")
    try:
        multiplier = Decimal(str(raw))
    except ArithmeticError:
        raise ValueError(f"multiplier {raw!r} is not a number") from None
    return TierRate(
        tuple(providers),
        str(entry.get("dimension", "")),
        canonical_tier(str(entry.get("value", ""))),
        multiplier,
        models=tuple(models),
        source=str(entry.get("source", "[prices.tiers]")),
        as_of=str(entry.get("as_of", "")),
    )


def markdown_table(rates: Iterable[TierRate] = TIER_RATES) -> str:
    """The tier table as the README shows it (``tests/collector/test_price_tiers.py`` keeps them equal)."""
    lines = ["| provider | served | models | multiplier | source (read) |", "|---|---|---|---|---|"]
    for r in rates:
        models = ", ".join(f"`{m}`*" for m in r.models) or "all"
        lines.append(
            f"| {', '.join(f'`{p}`' for p in r.providers)} | `{r.dimension}={r.value}` | {models} | "
            f"{r.multiplier}x | {r.source} ({r.as_of}) |"
        )
    return "\n".join(lines) + "\n"
