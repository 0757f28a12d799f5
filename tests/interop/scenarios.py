"""The LLM calls of the interop suite: what the fake servers answer and what tokenpulse must store.

Pure data, no SDK imports: the fixture regression tests use it without the instrumentation libraries.
Every call is made inside an app span named ``scenario <name>``, so a stored call is matched to its
scenario through its parent span.

Usage is given the way each provider reports it (OpenAI: prompt counts include cached tokens and
completion counts include reasoning; Anthropic: ``input_tokens`` excludes cache reads and writes), and
``expected`` gives tokenpulse's canonical counts (input includes the cache, output includes reasoning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADERS_DELAY_S = 0.1  # the fake server answers a stream's headers this long after the request
FIRST_TOKEN_DELAY_S = 0.35  # and its first event this long after the request
CHUNK_DELAY_S = 0.01  # and spaces the following chunks
CLIENT_TIMEOUT_S = 0.4  # the SDK clients' timeout in the timeout scenarios
SERVER_STALL_S = 1.5  # how long the fake server stalls in the timeout scenarios (> CLIENT_TIMEOUT_S)
SCENARIO_HEADER = "x-scenario"  # the request header that tells the fake server which scenario it serves
SCENARIO_SPAN_PREFIX = "scenario "


@dataclass(frozen=True)
class Scenario:
    """One SDK call against a fake server and its exact outcome."""

    name: str
    provider: str  # "openai" | "anthropic"
    operation: str  # "chat" | "embeddings"
    request_model: str
    response_model: str
    stream: bool = False
    # the provider's own usage fields, as sent on the wire
    usage: dict[str, int] = field(default_factory=dict)
    # canonical (input, output, cache_read, cache_write, reasoning)
    tokens: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    http_status: int = 200  # an error status makes the call fail
    stall: bool = False  # the server stalls past the client's timeout
    raises: str | None = None  # the exception class the SDK raises to the app

    @property
    def failed(self) -> bool:
        return self.raises is not None

    @property
    def attribution(self) -> dict[str, str | bool]:
        """What the app attributes the call to (``tokenpulse.sdk.attribution`` keyword arguments)."""
        return {
            "route": "/" + self.name.replace("_", "-"),
            "user": "user-7",
            "session": f"session-{self.provider}",
            "prompt_version": "v3",
            "router": "triage",
            "escalated": self.name == "openai_chat_reasoning",  # the router sent this one to o4-mini
        }


OPENAI_SCENARIOS = (
    Scenario(
        name="openai_chat_cached",
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        usage={"prompt_tokens": 2006, "completion_tokens": 300, "cached_tokens": 1920, "reasoning_tokens": 0},
        tokens=(2006, 300, 1920, 0, 0),
    ),
    Scenario(
        name="openai_chat_reasoning",
        provider="openai",
        operation="chat",
        request_model="o4-mini",
        response_model="o4-mini-2025-04-16",
        usage={
            "prompt_tokens": 1500,
            "completion_tokens": 900,
            "cached_tokens": 1024,
            "reasoning_tokens": 640,
        },
        tokens=(1500, 900, 1024, 0, 640),
    ),
    Scenario(
        name="openai_chat_stream",
        provider="openai",
        operation="chat",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        stream=True,
        usage={"prompt_tokens": 1200, "completion_tokens": 42, "cached_tokens": 1024, "reasoning_tokens": 0},
        tokens=(1200, 42, 1024, 0, 0),
    ),
    Scenario(
        name="openai_embeddings",
        provider="openai",
        operation="embeddings",
        request_model="text-embedding-3-small",
        response_model="text-embedding-3-small",
        usage={"prompt_tokens": 8},
        tokens=(8, 0, 0, 0, 0),
    ),
    Scenario(
        name="openai_rate_limited",
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini",
        http_status=429,
        raises="RateLimitError",
    ),
    Scenario(
        name="openai_timeout",
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini",
        stall=True,
        raises="APITimeoutError",
    ),
)

ANTHROPIC_SCENARIOS = (
    Scenario(
        name="anthropic_message_cached",
        provider="anthropic",
        operation="chat",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5-20250929",
        usage={
            "input_tokens": 12,
            "cache_read_input_tokens": 3000,
            "cache_creation_input_tokens": 500,
            "output_tokens": 200,
        },
        tokens=(3512, 200, 3000, 500, 0),
    ),
    Scenario(
        name="anthropic_message_stream",
        provider="anthropic",
        operation="chat",
        request_model="claude-haiku-4-5",
        response_model="claude-haiku-4-5-20251001",
        stream=True,
        usage={
            "input_tokens": 9,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 2048,
            "output_tokens": 150,
        },
        tokens=(2057, 150, 0, 2048, 0),
    ),
    Scenario(
        name="anthropic_overloaded",
        provider="anthropic",
        operation="chat",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5",
        http_status=529,
        raises="OverloadedError",
    ),
    Scenario(
        name="anthropic_timeout",
        provider="anthropic",
        operation="chat",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5",
        stall=True,
        raises="APITimeoutError",
    ),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in OPENAI_SCENARIOS + ANTHROPIC_SCENARIOS}
