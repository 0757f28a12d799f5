"""The simulated fleet: models, tools, services with their routes, and users.

Numbers are plausible production values (mid-2025 models), chosen so that the per-route distributions look
like real traffic: heavy system prompts that get cached, short user messages, lognormal outputs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

CacheKind = Literal["explicit", "implicit", "none"]


@dataclass(frozen=True, slots=True)
class LogNormal:
    """A lognormal distribution given by its median and the sigma of its logarithm."""

    median: float
    sigma: float

    def draw(self, rng: random.Random) -> float:
        """One sample."""
        return self.median * math.exp(rng.gauss(0.0, self.sigma))

    def mean(self) -> float:
        """The expected value."""
        return self.median * math.exp(self.sigma * self.sigma / 2)


@dataclass(frozen=True, slots=True)
class Model:
    """An LLM as the instrumentation reports it, with its caching behaviour and speed."""

    name: str  # gen_ai.request.model
    provider: str  # gen_ai.provider.name
    response_model: str  # gen_ai.response.model: providers answer with a dated snapshot
    cache: CacheKind  # explicit: Anthropic cache_control (reads and writes); implicit: reads only
    cache_min_tokens: int  # prompts shorter than this are never cached
    cache_hit_prob: float  # implicit caching: the chance the request lands on a warm cache
    ttft_s: float  # median time to first token for a short prompt
    tokens_per_s: float  # output throughput, reasoning included
    reasoning: bool = False
    max_output: int = 16_384
    finish: tuple[str, str, str] = ("stop", "tool_calls", "length")  # done, tool call, cut off
    errors: tuple[str, ...] = ("RateLimitError", "InternalServerError", "APIConnectionError")
    pass_prob: float = 0.91  # the share of its answers an LLM judge passes


_ANTHROPIC_FINISH = ("end_turn", "tool_use", "max_tokens")
_ANTHROPIC_ERRORS = ("RateLimitError", "OverloadedError", "InternalServerError")
_GEMINI_FINISH = ("STOP", "STOP", "MAX_TOKENS")
_GEMINI_ERRORS = ("ResourceExhausted", "ServiceUnavailable", "InternalServerError")

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("gpt-4o", "openai", "gpt-4o-2024-08-06", "implicit", 1024, 0.95, 0.42, 85),
        Model("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", "implicit", 1024, 0.95, 0.32, 110),
        Model("o3", "openai", "o3-2025-04-16", "implicit", 1024, 0.95, 0.9, 140, True, 100_000),
        Model("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5-20250929", "explicit", 1024, 1.0, 0.48, 70,
              finish=_ANTHROPIC_FINISH, errors=_ANTHROPIC_ERRORS),
        # Haiku 4.5 only caches prompts of 4096+ tokens.
        Model("claude-haiku-4-5", "anthropic", "claude-haiku-4-5-20251001", "explicit", 4096, 1.0, 0.36, 150,
              finish=_ANTHROPIC_FINISH, errors=_ANTHROPIC_ERRORS),
        Model("gemini-2.5-flash", "gcp.gemini", "gemini-2.5-flash", "implicit", 1024, 0.75, 0.38, 210,
              finish=_GEMINI_FINISH, errors=_GEMINI_ERRORS),
        # Only used by the `new_model` confounder: a handful of calls an hour on a model never seen before.
        Model("gemini-3-pro-preview", "gcp.gemini", "gemini-3-pro-preview", "implicit", 1024, 0.75, 1.1, 95,
              finish=_GEMINI_FINISH, errors=_GEMINI_ERRORS),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the agent can call; some call an LLM themselves (summarize, re-rank, extract)."""

    name: str
    latency: LogNormal  # seconds, excluding inner LLM calls
    result_tokens: LogNormal  # what the tool returns into the conversation
    inner_model: str | None = None
    inner_calls: int = 0
    inner_system_tokens: int = 0
    inner_prompt_tokens: LogNormal = LogNormal(1, 0)
    inner_output_tokens: LogNormal = LogNormal(1, 0)
    prompt_version: str = ""
    timeout_s: float = 10.0


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("search_kb", LogNormal(0.12, 0.5), LogNormal(700, 0.5)),
        Tool("summarize_ticket", LogNormal(0.05, 0.4), LogNormal(200, 0.3), "claude-haiku-4-5", 1, 600,
             LogNormal(2500, 0.5), LogNormal(180, 0.4), "summarize-ticket-v2"),
        Tool("lookup_order", LogNormal(0.08, 0.4), LogNormal(450, 0.4)),
        Tool("recommend_products", LogNormal(0.15, 0.4), LogNormal(350, 0.3), "gpt-4o", 1, 1200,
             LogNormal(900, 0.4), LogNormal(220, 0.4), "recommend-v3"),
        Tool("web_search", LogNormal(0.6, 0.5), LogNormal(600, 0.3), "gemini-2.5-flash", 1, 500,
             LogNormal(3500, 0.4), LogNormal(300, 0.4), "web-summarize-v6"),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Router:
    """A model router: the cheap model by default, the expensive one for requests it deems hard."""

    name: str
    cheap: str
    expensive: str
    escalate_prob: float


@dataclass(frozen=True, slots=True)
class Route:
    """One feature of a service: its model, prompt, conversation shape and tools."""

    name: str
    weight: float  # share of the service's sessions
    model: str
    prompt_version: str
    streaming: bool  # streamed answers report TTFT
    system_tokens: int  # static prefix shared by every session: cached across sessions
    user_tokens: LogNormal
    output_tokens: LogNormal
    mean_turns: float = 1.0
    context_tokens: LogNormal | None = None  # per-session context sent once (profile, cart, ticket)
    reasoning_tokens: LogNormal | None = None
    think_s: LogNormal = LogNormal(40, 0.7)  # the user's pause between turns
    # "conversation": the breakpoint sits on the last message, each turn reads the previous prefix and
    # writes the new tail (Anthropic multi-turn); "system": only the system prompt is cached.
    cache_breakpoint: Literal["conversation", "system"] = "conversation"
    tool_prob: float = 0.0
    tools: tuple[tuple[str, float], ...] = ()
    router: Router | None = None
    timeout_s: float = 30.0
    history_limit: int = 16_000  # older turns are dropped beyond this many tokens
    # An LLM judge scores this share of the route's answers (``judge`` is its evaluation name); the
    # answer passes with the model's ``pass_prob``.
    judged: float = 0.0
    judge: str = "judge_pass"

    def calls_per_turn(self) -> float:
        """Expected LLM calls per turn: the answer, plus a follow-up and inner calls when a tool runs."""
        if not self.tools:
            return 1.0
        total = sum(w for _, w in self.tools)
        inner = sum(w * TOOLS[name].inner_calls for name, w in self.tools) / total
        return 1.0 + self.tool_prob * (1.0 + inner)


@dataclass(frozen=True, slots=True)
class Service:
    """A deployed application: its deploy version is the resource's ``service.version``."""

    name: str
    version: str
    weight: float  # share of all sessions
    routes: tuple[Route, ...] = field(default_factory=tuple)

    def route(self, name: str) -> Route:
        """The route called ``name``."""
        return next(r for r in self.routes if r.name == name)


SERVICES: tuple[Service, ...] = (
    Service("support-bot", "3.14.2", 0.41, (
        Route("/chat", 0.29, "claude-sonnet-4-5", "v7", True, 2600, LogNormal(70, 0.7), LogNormal(230, 0.5),
              mean_turns=5, context_tokens=LogNormal(500, 0.4), think_s=LogNormal(45, 0.7), tool_prob=0.4,
              tools=(("search_kb", 0.75), ("summarize_ticket", 0.25)), timeout_s=60, history_limit=24_000),
        # A long rubric with few-shot examples, cached; only the ticket text changes.
        Route("/triage", 0.47, "claude-haiku-4-5", "v3", False, 4600, LogNormal(350, 0.6), LogNormal(25, 0.3),
              cache_breakpoint="system", timeout_s=20),
        Route("/summarize", 0.24, "gemini-2.5-flash", "v2", False, 700, LogNormal(3200, 0.6),
              LogNormal(260, 0.4)),
    )),
    Service("checkout-assistant", "2.8.0", 0.23, (
        Route("/assist", 0.5, "gpt-4o-mini", "v12", True, 1900, LogNormal(45, 0.6), LogNormal(160, 0.5),
              mean_turns=4, context_tokens=LogNormal(300, 0.5), think_s=LogNormal(35, 0.7), tool_prob=0.5,
              tools=(("lookup_order", 0.6), ("recommend_products", 0.4)),
              router=Router("complexity-router", "gpt-4o-mini", "gpt-4o", 0.2), judged=0.3),
        Route("/order-status", 0.5, "gpt-4o-mini", "v4", True, 1150, LogNormal(30, 0.5), LogNormal(120, 0.4),
              mean_turns=2.5, context_tokens=LogNormal(250, 0.4), tool_prob=0.7, tools=(("lookup_order", 1),),
              history_limit=6000),
    )),
    Service("search", "1.22.0", 0.36, (
        Route("/answer", 0.55, "gpt-4o", "v5", True, 1350, LogNormal(25, 0.5), LogNormal(320, 0.5),
              mean_turns=2, tool_prob=0.6, tools=(("web_search", 1),), judged=0.3),
        # Background research jobs: o3 thinks for thousands of tokens, nobody waits on a stream.
        Route("/deep-research", 0.11, "o3", "v2", False, 1600, LogNormal(5500, 0.5), LogNormal(900, 0.5),
              reasoning_tokens=LogNormal(2600, 0.7), timeout_s=1800),
        # Search-as-you-type: a few independent suggestion calls a second apart while the user types.
        Route("/suggest", 0.34, "gpt-4o-mini", "v9", False, 600, LogNormal(20, 0.4), LogNormal(18, 0.3),
              mean_turns=4, think_s=LogNormal(1.5, 0.5), timeout_s=10, history_limit=0),
    )),
)  # fmt: skip

SERVICES_BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}
MODELS_BY_RESPONSE: dict[str, Model] = {m.response_model: m for m in MODELS.values()}

ENVIRONMENT = "prod"
USER_COUNT = 400
ZIPF_EXPONENT = 1.05


def calls_per_session() -> float:
    """Expected LLM calls per session over the whole fleet, used to turn a call rate into session arrivals."""
    return sum(
        service.weight * route.weight * route.mean_turns * route.calls_per_turn()
        for service in SERVICES
        for route in service.routes
    )


def make_users(seed: int) -> list[str]:
    """User ids by activity rank (index 0 is the most active); ids are random so rank is not visible."""
    rng = random.Random(f"{seed}:users")
    ids: set[str] = set()
    ranked: list[str] = []
    while len(ranked) < USER_COUNT:
        user = f"u-{rng.getrandbits(24):06x}"
        if user not in ids:
            ids.add(user)
            ranked.append(user)
    return ranked


def zipf_weights(count: int = USER_COUNT, exponent: float = ZIPF_EXPONENT) -> list[float]:
    """Normalized Zipf weights: rank ``i`` (0-based) is active in proportion to ``(i + 1) ** -exponent``."""
    raw = [1.0 / (i + 1) ** exponent for i in range(count)]
    total = sum(raw)
    return [w / total for w in raw]
