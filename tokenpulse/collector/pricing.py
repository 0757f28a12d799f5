"""Price normalized LLM calls in USD, from pricing overrides or the `genai-prices` data.

Token arguments follow ``records.py``: ``input_tokens`` includes cache reads and writes, ``output_tokens``
includes reasoning. genai-prices uses the same inclusive model (its ``cache_*_tokens`` and
``output_reasoning_tokens`` are descendants of ``input_tokens``/``output_tokens`` and are subtracted from
them when they have their own price), so counts pass through unchanged.

genai-prices' own ``calc_price`` costs ~65 µs a call, far too slow at 30k+ spans/s. So each model's
prices are compiled once into flat rate cards and a call costs a dict lookup plus a few Decimal operations.
``tests/collector/test_pricing.py`` checks the compiled cards against genai-prices' ``calc_price`` for every
model in the bundled data.

Per call, the tier band is chosen by that call's input tokens (long-context prices apply per call, as the
providers bill them), 1-hour cache writes get their own rate (genai-prices' ``cache_write_1h_mtok``; the
5-minute rate where a model has none), and what the provider served (service tier, fast mode,
geography) multiplies the result through ``collector.price_tiers``.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, TieredPrices, calc_unit_price

from tokenpulse.collector.compiled import mypyc_attr
from tokenpulse.collector.price_tiers import TierRate, TierTable

__all__ = ["Pricer", "TokenPrice"]

logger = logging.getLogger(__name__)

_MILLION = 1_000_000
_QUANTUM = Decimal("1e-12")
_ZERO = Decimal(0)
# A cost whose scaled sum has fewer digits than this is computed exactly by the Decimal arithmetic too
# (28 digits of precision), so the integer route gives the very same Decimal; a larger one takes the
# Decimal route.
_MAX_EXACT = 10**26
# Model names come from untrusted spans; bound the cache so a flood of distinct names can't grow it forever.
_MAX_CACHE = 10_000

# OTel GenAI provider names (`gen_ai.provider.name`, older `gen_ai.system`) -> genai-prices provider ids.
# A name not listed goes through genai-prices' own provider matching; if that finds no provider either
# (or the name is empty), the model is matched by name alone. A known provider never falls back.
_PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}

# Price keys whose usage this module reports; any other priced unit (audio, images, searches, ...) gets a
# zero count, exactly as genai-prices bills it when that usage isn't reported.
_TOKEN_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_reasoning_mtok",
)


@mypyc_attr(native_class=False)  # settings hold it, and workers unpickle their settings
@dataclass(frozen=True, slots=True)
class TokenPrice:
    """A pricing override, in USD per 1 million tokens of each kind."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None  # None -> billed as input
    cache_write: Decimal | None = None  # None -> billed as input
    reasoning: Decimal | None = None  # None -> billed as output
    cache_write_1h: Decimal | None = None  # None -> billed as cache_write


@dataclass(frozen=True, slots=True)
class _Rates:
    """Flat USD-per-million rates; a kind without its own price already carries its parent's rate."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    reasoning: Decimal
    per_request: Decimal  # USD per call (genai-prices `requests_kcount` / 1000)
    # The same rates as integers, for pricing a call in integer arithmetic (``Pricer.price``): None when
    # a rate is not a finite Decimal.
    scaled: _ScaledRates | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scaled", _scaled_rates(self))


@dataclass(frozen=True, slots=True)
class _ScaledRates:
    """``_Rates`` in units of 10**-digits USD a token (per call for ``per_request``), all exact
    integers; ``unit`` is 10**(digits - 12), one unit of the 12-place quantum a cost is rounded to."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    reasoning: int
    per_request: int
    unit: int


def _scaled_rates(rates: _Rates) -> _ScaledRates | None:
    per_token = (
        rates.input, rates.output, rates.cache_read, rates.cache_write, rates.cache_write_1h, rates.reasoning
    )  # fmt: skip
    every = (*per_token, rates.per_request)
    if not all(isinstance(rate, Decimal) and rate.is_finite() for rate in every):
        return None
    # Enough decimal places that every rate is an integer (a token rate is per million tokens) and at
    # least the 12 a cost is rounded to.
    places = max(12, 6 - min(map(_exponent, per_token)), -_exponent(rates.per_request))
    shifts = (*(places - 6 for _ in per_token), places)
    scaled = [int(rate.scaleb(shift)) for rate, shift in zip(every, shifts, strict=True)]
    if any(Decimal(n).scaleb(-shift) != rate for n, rate, shift in zip(scaled, every, shifts, strict=True)):
        return None  # a rate of more than 28 digits: rounded by scaleb, not exact
    # Each rate named: the build (mypy) checks the constructor's arguments, which a starred list hides.
    input_, output, cache_read, cache_write, cache_write_1h, reasoning, per_request = scaled
    return _ScaledRates(
        input_, output, cache_read, cache_write, cache_write_1h, reasoning, per_request, 10 ** (places - 12)
    )


def _exponent(rate: Decimal) -> int:
    """The exponent of a finite Decimal (its last digit's place)."""
    return int(rate.as_tuple().exponent)


@dataclass(frozen=True, slots=True)
class _Card:
    """Rates per tier band: ``bands[i]`` applies when exactly ``i`` of ``thresholds`` are < input tokens."""

    thresholds: tuple[int, ...]
    bands: tuple[_Rates, ...]


class _Timed:
    """A model whose genai-prices price depends on the request time (price changes, off-peak windows)."""

    __slots__ = ("_cards", "_model")

    def __init__(self, model: ModelInfo, cards: dict[int, _Card]) -> None:
        self._model = model
        self._cards = cards  # keyed by id() of the ModelPrice objects the model holds for its lifetime

    def card(self) -> _Card:
        # genai-prices picks the active price itself, so its constraint rules are not duplicated here.
        return self._cards[id(self._model.get_prices(datetime.now(UTC)))]


# (source, prices): a _Timed when the price depends on the request time.
_Entry = tuple[str, _Card | _Timed]


# Compiled (setup.py), normalize_span calls a Pricer's price natively: ~0.9 us a call less than through
# Python. Subclasses stay allowed (tests' fixed-price doubles) and still take that call.
@mypyc_attr(allow_interpreted_subclasses=True)
class Pricer:
    """Prices LLM calls; resolved prices are cached per (provider, model), unknown models included."""

    def __init__(
        self, overrides: Mapping[str, TokenPrice] | None = None, tiers: Iterable[TierRate] = ()
    ) -> None:
        """Create a pricer.

        ``overrides`` are keyed by model name or by ``"provider/model"`` (provider as it arrives on the
        span); the provider-qualified key wins. Overrides take precedence over genai-prices. ``tiers``
        are tier rates replacing or added to the built-in table (``price_tiers.TIER_RATES``).
        """
        self._overrides = {key: _override_card(key, price) for key, price in (overrides or {}).items()}
        self._cache: dict[tuple[str, str], _Entry | None] = {}
        self.tiers = TierTable(tiers)

    def price(
        self,
        provider: str,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
        cache_write_1h_tokens: int = 0,
        service_tier: str = "",
        speed: str = "",
        inference_geo: str = "",
    ) -> tuple[Decimal, str] | None:
        """Return ``(cost_usd, source)`` for one call, or None when the model's price is unknown.

        ``source`` is ``"override"`` or ``"genai-prices"``. Token counts are inclusive: cache reads and
        writes are part of ``input_tokens``, reasoning is part of ``output_tokens``, 1-hour cache writes
        part of ``cache_write_tokens``. ``service_tier``, ``speed`` and ``inference_geo`` (canonical, as
        served) multiply the standard price by their tier rates. The cost is quantized to 12 decimal
        places (ROUND_HALF_EVEN).
        """
        key = (provider, model)
        try:
            entry = self._cache[key]
        except KeyError:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            entry = self._cache[key] = self._resolve(provider, model)
        if entry is None:
            return None
        source, card = entry
        if isinstance(card, _Timed):
            card = card.card()

        cached = cache_read_tokens + cache_write_tokens
        # Exporters occasionally report subsets larger than the total; widen the total rather than bill a
        # negative remainder (genai-prices would raise).
        if input_tokens < cached:
            input_tokens = cached
        if output_tokens < reasoning_tokens:
            output_tokens = reasoning_tokens
        if cache_write_1h_tokens > cache_write_tokens:
            cache_write_1h_tokens = cache_write_tokens
        rates = card.bands[bisect_left(card.thresholds, input_tokens)]
        scaled = rates.scaled
        if scaled is not None and not (service_tier or speed or inference_geo):
            # The usual call, in integers: the same exact sum and the same half-even rounding as the
            # Decimal arithmetic below (~0.25 us of ~1.25 a call saved, measured).
            units = (
                (input_tokens - cached) * scaled.input
                + (output_tokens - reasoning_tokens) * scaled.output
                + cache_read_tokens * scaled.cache_read
                + (cache_write_tokens - cache_write_1h_tokens) * scaled.cache_write
                + cache_write_1h_tokens * scaled.cache_write_1h
                + reasoning_tokens * scaled.reasoning
                + scaled.per_request
            )
            if units < _MAX_EXACT:
                quanta, rest = divmod(units, scaled.unit)
                if rest * 2 > scaled.unit or (rest * 2 == scaled.unit and quanta & 1):
                    quanta += 1
                return Decimal(quanta).scaleb(-12), source
        # int * Decimal is exact, and at 28 digits of precision so is the sum for any realistic count; a
        # term of no tokens adds an exact zero, so it is skipped (Decimal arithmetic is most of the cost).
        usd = (input_tokens - cached) * rates.input + (output_tokens - reasoning_tokens) * rates.output
        if cache_read_tokens:
            usd += cache_read_tokens * rates.cache_read
        if cache_write_tokens:
            usd += (cache_write_tokens - cache_write_1h_tokens) * rates.cache_write
            if cache_write_1h_tokens:
                usd += cache_write_1h_tokens * rates.cache_write_1h
        if reasoning_tokens:
            usd += reasoning_tokens * rates.reasoning
        usd = usd / _MILLION + rates.per_request
        if service_tier or speed or inference_geo:
            usd *= self.tiers.multiplier(provider, model, service_tier, speed, inference_geo)
        return usd.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN), source

    def _resolve(self, provider: str, model: str) -> _Entry | None:
        card = self._overrides.get(f"{provider}/{model}") or self._overrides.get(model)
        if card is not None:
            return "override", card
        entry = _genai_prices_entry(provider, model)
        if entry is None:
            logger.warning(
                "no price for provider=%r model=%r; its calls are stored with an unknown cost "
                "(add a pricing override to price it)",
                provider,
                model,
            )
        return entry


def _genai_prices_entry(provider: str, model: str) -> _Entry | None:
    """Match the model in genai-prices (the slow part, done once per key) and compile its prices."""
    snapshot = get_snapshot()
    provider_id = _PROVIDER_IDS.get(provider)
    if provider_id is None and provider:
        found = find_provider_by_id(snapshot.providers, provider)
        provider_id = found.id if found is not None else None
    try:
        _, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    if isinstance(info.prices, ModelPrice):
        card = _compile(info.prices)
        return None if card is None else ("genai-prices", card)
    cards: dict[int, _Card] = {}
    for conditional in info.prices:
        card = _compile(conditional.prices)
        if card is None:
            return None
        cards[id(conditional.prices)] = card
    return "genai-prices", _Timed(info, cards)


def _compile(model_price: ModelPrice) -> _Card | None:
    """Flatten a genai-prices ModelPrice into per-tier-band rates; None if tokens can't price it."""
    prices = {key: getattr(model_price, key) for key in (*_TOKEN_KEYS, "requests_kcount")}
    # A model priced only per audio hour, page, character... gets no cost from token counts: unknown, not
    # $0. A ModelPrice with no prices at all is how genai-prices marks a free model, so $0 is right there.
    no_token_price = prices["input_mtok"] is None and prices["output_mtok"] is None
    if no_token_price and any(value is not None for value in vars(model_price).values()):
        return None
    thresholds = sorted(
        {tier.start for p in prices.values() if isinstance(p, TieredPrices) for tier in p.tiers}
    )
    bands = []
    # Band 0 is priced at 0 input tokens (base rates), band i just above the i-th threshold. Tiers are
    # selected by total input tokens for every unit, as genai-prices does ("cliff" pricing); its own
    # calc_unit_price picks the tier so the rule isn't re-implemented here.
    for total_input in (0, *(start + 1 for start in thresholds)):
        rate = {k: None if p is None else calc_unit_price(p, 1, total_input, 1) for k, p in prices.items()}
        input_rate = _or(rate["input_mtok"], _ZERO)
        output_rate = _or(rate["output_mtok"], _ZERO)
        cache_write_rate = _or(rate["cache_write_mtok"], input_rate)
        bands.append(
            _Rates(
                input=input_rate,
                output=output_rate,
                cache_read=_or(rate["cache_read_mtok"], input_rate),
                cache_write=cache_write_rate,
                cache_write_1h=_or(rate["cache_write_1h_mtok"], cache_write_rate),
                reasoning=_or(rate["output_reasoning_mtok"], output_rate),
                per_request=_or(rate["requests_kcount"], _ZERO) / 1000,
            )
        )
    return _Card(tuple(thresholds), tuple(bands))


def _override_card(key: str, price: TokenPrice) -> _Card:
    """Compile an override; reject floats and negatives up front so pricing never silently drifts."""
    for value in (
        price.input,
        price.output,
        price.cache_read,
        price.cache_write,
        price.reasoning,
        price.cache_write_1h,
    ):
        if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value < 0):
            raise ValueError(f"pricing override {key!r}: prices must be finite, non-negative Decimals")
    rates = _Rates(
        input=price.input,
        output=price.output,
        cache_read=_or(price.cache_read, price.input),
        cache_write=_or(price.cache_write, price.input),
        cache_write_1h=_or(price.cache_write_1h, _or(price.cache_write, price.input)),
        reasoning=_or(price.reasoning, price.output),
        per_request=_ZERO,
    )
    return _Card((), (rates,))


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    # Not `value or default`: an explicit Decimal(0) price (free cache reads) must stay 0.
    return default if value is None else value
