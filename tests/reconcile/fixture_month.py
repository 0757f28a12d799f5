"""A month of LLM traffic across OpenAI, Anthropic and Gemini, and the bill each provider would send for it.

Every call is a span with the attributes an instrumentation writes (semconv keys: the served service tier,
Anthropic's fast mode, the cache writes split by TTL), normalized and priced by tokenpulse like any other.
The bill is computed here on its own, from ``PRICE_SHEET``: the providers' published per-million prices and
tier rules written out by hand (not tokenpulse's pricer, not genai-prices), so the two can disagree. The
month has flex, priority and batch calls, fast mode, 1-hour cache writes and long-context (>200k input)
calls.

``missing_share`` drops that share of one service's calls before tokenpulse sees them (an uninstrumented
service); ``drift`` bills one model at a changed price from a day on (a price change tokenpulse missed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.reconcile.fake_providers import Billed
from tokenpulse.buffer.records import CallRecord
from tokenpulse.collector.normalize import NormalizeConfig, normalize_span
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import STATUS_OK, SpanView
from tokenpulse.reconcile.reports import ProviderRow

D = Decimal
MTOK = 1_000_000


@dataclass(frozen=True)
class Sheet:
    """A model's published prices, USD per million tokens; above ``long_from`` input tokens a call is
    billed at the ``long`` prices instead (all of its tokens)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    long_from: int | None = None
    long: tuple[Decimal, Decimal, Decimal, Decimal, Decimal] | None = None  # same order as above


# The providers' price lists (openai.com/api/pricing, docs.anthropic.com pricing, ai.google.dev pricing).
PRICE_SHEET: dict[tuple[str, str], Sheet] = {
    ("openai", "gpt-5"): Sheet(D("1.25"), D(10), D("0.125"), D("1.25"), D("1.25")),
    ("openai", "gpt-5-mini"): Sheet(D("0.25"), D(2), D("0.025"), D("0.25"), D("0.25")),
    ("anthropic", "claude-opus-4-6"): Sheet(D(5), D(25), D("0.5"), D("6.25"), D(10)),
    ("anthropic", "claude-sonnet-4-5"): Sheet(
        D(3), D(15), D("0.3"), D("3.75"), D(6), 200_000, (D(6), D("22.5"), D("0.6"), D("7.5"), D(12))
    ),
    ("gcp.gemini", "gemini-2.5-pro"): Sheet(
        D("1.25"),
        D(10),
        D("0.125"),
        D("1.25"),
        D("1.25"),
        200_000,
        (D("2.5"), D(15), D("0.25"), D("2.5"), D("2.5")),
    ),
}
# What each provider bills on top of the list for what it served (its documentation's rules).
TIER_BILLING: dict[tuple[str, str, str], Decimal] = {
    ("openai", "service_tier", "flex"): D("0.5"),
    ("openai", "service_tier", "batch"): D("0.5"),
    ("openai", "service_tier", "priority"): D(2),  # gpt-5: $2.50 / $20
    ("anthropic", "service_tier", "batch"): D("0.5"),
    ("anthropic", "speed", "fast"): D(6),  # Opus 4.6 fast mode: $30 / $150
    ("gcp.gemini", "service_tier", "flex"): D("0.5"),
    ("gcp.gemini", "service_tier", "priority"): D("1.8"),
}
MODEL_TIER_BILLING = {("openai", "gpt-5-mini", "priority"): D("1.8")}  # $0.45 / $3.60


@dataclass(frozen=True)
class Traffic:
    """One kind of call the month holds: who makes it, what is served, and its token shape."""

    service: str
    provider: str
    model: str
    per_day: int
    tier: str = "standard"
    speed: str = ""
    input_range: tuple[int, int] = (2_000, 40_000)
    cache_read_share: float = 0.0
    cache_write_share: float = 0.0
    one_hour_share: float = 0.0  # of the cache writes
    output_range: tuple[int, int] = (200, 3_000)
    project: str = "proj_main"


TRAFFIC: tuple[Traffic, ...] = (
    Traffic("chat", "openai", "gpt-5", 40, cache_read_share=0.4),
    Traffic("reports", "openai", "gpt-5", 10),  # a tenth of gpt-5's requests: the uninstrumented service
    Traffic("chat", "openai", "gpt-5", 15, tier="flex"),
    Traffic("checkout", "openai", "gpt-5", 10, tier="priority", cache_read_share=0.2),
    Traffic("nightly", "openai", "gpt-5", 25, tier="batch"),
    Traffic("checkout", "openai", "gpt-5-mini", 30, tier="priority"),
    Traffic("agent", "anthropic", "claude-opus-4-6", 20, cache_read_share=0.5, cache_write_share=0.2,
            one_hour_share=0.7, project="wrkspc_agents"),
    Traffic("agent", "anthropic", "claude-opus-4-6", 6, speed="fast", cache_write_share=0.1,
            project="wrkspc_agents"),
    Traffic("nightly", "anthropic", "claude-opus-4-6", 10, tier="batch", project="wrkspc_agents"),
    Traffic("research", "anthropic", "claude-sonnet-4-5", 8, input_range=(150_000, 400_000),
            cache_read_share=0.3, cache_write_share=0.1, one_hour_share=1.0),
    Traffic("research", "gcp.gemini", "gemini-2.5-pro", 12, input_range=(100_000, 350_000),
            cache_read_share=0.2),
    Traffic("search", "gcp.gemini", "gemini-2.5-pro", 20, tier="flex"),
    Traffic("search", "gcp.gemini", "gemini-2.5-pro", 8, tier="priority"),
)  # fmt: skip

START = date(2026, 10, 1)
DAYS = 31


@dataclass(frozen=True)
class Call:
    """One call of the month: its usage and what the provider charged for it."""

    day: date
    at_ns: int
    traffic: Traffic
    uncached: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    output: int
    reasoning: int
    input_cost: Decimal
    output_cost: Decimal

    @property
    def input_tokens(self) -> int:
        return self.uncached + self.cache_read + self.cache_write_5m + self.cache_write_1h


def bill(
    t: Traffic, uncached: int, cr: int, cw5: int, cw1h: int, out: int, day: date, drift: Any
) -> tuple[Decimal, Decimal]:
    """(input dollars, output dollars) as the provider bills the call."""
    sheet = PRICE_SHEET[(t.provider, t.model)]
    prices = (sheet.input, sheet.output, sheet.cache_read, sheet.cache_write_5m, sheet.cache_write_1h)
    total_input = uncached + cr + cw5 + cw1h
    if sheet.long_from is not None and total_input > sheet.long_from:
        assert sheet.long is not None
        prices = sheet.long
    inp, outp, read, w5, w1h = prices
    multiplier = D(1)
    for dimension, value in (("service_tier", t.tier), ("speed", t.speed)):
        multiplier *= MODEL_TIER_BILLING.get((t.provider, t.model, value)) or TIER_BILLING.get(
            (t.provider, dimension, value), D(1)
        )
    if drift is not None and drift[0] == t.model and day >= drift[1]:
        multiplier *= drift[2]
    input_cost = (uncached * inp + cr * read + cw5 * w5 + cw1h * w1h) / MTOK * multiplier
    return input_cost, out * outp / MTOK * multiplier


def month(seed: int = 14, drift: tuple[str, date, Decimal] | None = None) -> list[Call]:
    """Every call of the month, in time order."""
    rng = random.Random(seed)
    calls = []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**9
        for t in TRAFFIC:
            for _ in range(t.per_day):
                total = rng.randint(*t.input_range)
                cr = int(total * t.cache_read_share * rng.random())
                cw = int(total * t.cache_write_share * rng.random())
                cw1h = int(cw * t.one_hour_share)
                cw5 = cw - cw1h
                uncached = total - cr - cw
                out = rng.randint(*t.output_range)
                reasoning = rng.randint(0, out // 2) if t.provider == "openai" else 0
                at = midnight + rng.randint(60, 86_000) * 10**9
                cost = bill(t, uncached, cr, cw5, cw1h, out, day, drift)
                calls.append(Call(day, at, t, uncached, cr, cw5, cw1h, out, reasoning, *cost))
    return sorted(calls, key=lambda c: c.at_ns)


def span_of(call: Call, number: int) -> SpanView:
    """The span an instrumentation would export for ``call`` (semconv keys)."""
    t = call.traffic
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": t.provider,
        "gen_ai.request.model": t.model,
        "gen_ai.response.model": t.model,
        "gen_ai.usage.input_tokens": call.input_tokens,  # inclusive of the cache, as semconv says
        "gen_ai.usage.output_tokens": call.output,
        "gen_ai.usage.cache_read.input_tokens": call.cache_read,
        "gen_ai.usage.reasoning.output_tokens": call.reasoning,
    }
    if call.cache_write_5m or call.cache_write_1h:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = call.cache_write_5m + call.cache_write_1h
        attrs["gen_ai.usage.cache_creation.ephemeral_5m_input_tokens"] = call.cache_write_5m
        attrs["gen_ai.usage.cache_creation.ephemeral_1h_input_tokens"] = call.cache_write_1h
    if t.provider == "openai":
        attrs["openai.response.service_tier"] = {"standard": "default"}.get(t.tier, t.tier)
    elif t.tier != "standard":
        attrs["tokenpulse.service_tier"] = t.tier  # Anthropic usage.service_tier / Gemini, via the SDK helper
    if t.speed:
        attrs["anthropic.response.speed"] = t.speed
    return SpanView(
        f"{number + 1:032x}", f"{number + 1:016x}", "", "chat", call.at_ns, call.at_ns + 2 * 10**9, attrs,
        {"service.name": t.service}, status_code=STATUS_OK,
    )  # fmt: skip


def records(
    calls: list[Call], missing_share: float = 0.0, missing_service: str = "checkout"
) -> list[CallRecord]:
    """What tokenpulse receives: every call normalized and priced, less the share of ``missing_service``'s
    calls an uninstrumented deployment never exported."""
    pricer = Pricer()
    config = NormalizeConfig()
    rng = random.Random(7)
    out: list[CallRecord] = []
    for number, call in enumerate(calls):
        if call.traffic.service == missing_service and rng.random() < missing_share:
            continue
        record = normalize_span(span_of(call, number), config, pricer)
        assert record is not None and "input_tokens" in record
        out.append(record)  # type: ignore[arg-type]
    return out


def billed(calls: list[Call]) -> list[Billed]:
    """The providers' view of the month (OpenAI and Anthropic: served by the fake APIs)."""
    rows: dict[tuple[Any, ...], list[Call]] = {}
    for c in calls:
        if c.traffic.provider in ("openai", "anthropic"):
            key = (c.day, c.traffic.provider, c.traffic.model, c.traffic.project, c.traffic.tier)
            rows.setdefault(key, []).append(c)
    return [
        Billed(*key, len(cs), sum(c.uncached for c in cs), sum(c.cache_read for c in cs),
               sum(c.cache_write_5m for c in cs), sum(c.cache_write_1h for c in cs),
               sum(c.output for c in cs), sum((c.input_cost for c in cs), D(0)),
               sum((c.output_cost for c in cs), D(0)))
        for key, cs in sorted(rows.items())
    ]  # fmt: skip


def gemini_export(calls: list[Call]) -> dict[str, Any]:
    """Gemini's side as the flat report shape (a billing export reshaped per day x model x tier)."""
    rows: dict[tuple[Any, ...], list[Call]] = {}
    for c in calls:
        if c.traffic.provider == "gcp.gemini":
            rows.setdefault((c.day, c.traffic.model, c.traffic.tier), []).append(c)
    return {
        "rows": [
            {
                "day": day.isoformat(),
                "provider": "gcp.gemini",
                "model": model,
                "project": "gcp-project",
                "service_tier": tier,
                "calls": len(cs),
                "input_tokens": sum(c.input_tokens for c in cs),
                "cache_read_tokens": sum(c.cache_read for c in cs),
                "cache_write_tokens": 0,
                "output_tokens": sum(c.output for c in cs),
                "cost_usd": str(sum((c.input_cost + c.output_cost for c in cs), D(0))),
            }
            for (day, model, tier), cs in sorted(rows.items())
        ]
    }


def provider_rows(calls: list[Call]) -> Iterator[ProviderRow]:
    """Exact per day x model dollars of the bill (the test's yardstick, unrounded)."""
    for c in calls:
        yield ProviderRow(c.day, c.traffic.provider, c.traffic.model, cost_usd=c.input_cost + c.output_cost)
