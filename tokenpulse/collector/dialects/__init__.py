"""Instrumentation dialects as data: one module per dialect, each declaring ``DIALECT = Dialect(...)``.

A declaration says which spans the dialect claims (:class:`Markers`), which attribute keys hold each
canonical field (:class:`Keys`), how its span-kind attributes classify a span (:class:`ByValue`,
:class:`ByKey`, :class:`ByName` rules giving a :class:`Verdict`) and which of its quirks need a named
fix-up. ``tokenpulse.collector.normalize`` compiles the declarations found here once into per-dialect
key -> field dispatch tables and applies them; adding a dialect is adding a module to this package.

This module holds only the declaration types and the few primitives fix-ups share (``InvalidSpan``,
``token_count``); it imports no dialect, so dialect modules import from it freely.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import ModuleType
from typing import Any

__all__ = [
    "AGENT",
    "CALL",
    "SKIP",
    "TOOL",
    "ByKey",
    "ByName",
    "ByValue",
    "Dialect",
    "ImpliedCall",
    "InvalidSpan",
    "Keys",
    "Markers",
    "MetadataReader",
    "Rank",
    "UsageReader",
    "Verdict",
    "agent",
    "call",
    "load_dialects",
    "non_leaf",
    "token_count",
    "tool",
    "weak_non_leaf",
    "weak_tool",
]


class InvalidSpan(ValueError):
    """The span is an LLM call whose data cannot be trusted; ``str(error)`` names the offending attribute."""


def token_count(value: Any, key: str, limit: int, prefix: str = "") -> int:
    """A token count as an int, or InvalidSpan naming the attribute (``prefix + key``)."""
    kind = type(value)
    if kind is int:
        n = value
    elif kind is float:
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidSpan(f"{prefix}{key}: token count must be a finite integer, got {value!r}")
        n = int(value)
    elif kind is str:
        text = value.strip()
        try:
            n = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise InvalidSpan(f"{prefix}{key}: token count is not a number: {value[:40]!r}") from None
            if not math.isfinite(number) or not number.is_integer():
                raise InvalidSpan(
                    f"{prefix}{key}: token count must be a finite integer, got {value[:40]!r}"
                ) from None
            n = int(number)
    else:
        raise InvalidSpan(f"{prefix}{key}: token count must be an integer, got {kind.__name__}")
    if n < 0:
        raise InvalidSpan(f"{prefix}{key}: token count is negative ({n})")
    if n > limit:
        raise InvalidSpan(f"{prefix}{key}: token count {n} exceeds the sanity limit of {limit}")
    return n


# --------------------------------------------------------------------------------------------------
# Classification: rules give verdicts; of all the verdicts a span's rules give, the lowest rank wins
# (ties: the first rule, dialects in detection order).

SKIP, CALL, TOOL, AGENT = "skip", "call", "tool", "agent"


class Rank(IntEnum):
    """Which verdict wins when several rules match one span, strongest first."""

    OWN = 0  # the claiming dialect's own span-kind attribute (``ByValue(decisive=True)``): final
    TOOL = 1  # a tool execution, whatever else the span says
    AGENT = 2  # an agent invocation: its usage is the sum of the calls below it, never a call
    NON_LEAF = 3  # workflow, chain, aggregated usage: never a call
    CALL = 4  # a leaf LLM call
    WEAK_NON_LEAF = 5  # not a call unless a rule above says so (OpenLLMetry's ``task``)
    USAGE = 6  # (the engine) a model and a usage attribute and nothing above: a call
    WEAK_TOOL = 7  # names a tool and nothing above says what the span is (OpenLIT names the tools a
    # model *requested* on its chat spans, so this must lose to USAGE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a rule says a span is: ``kind`` (SKIP/CALL/TOOL/AGENT), the call's default ``operation``
    (a ``gen_ai.operation.name`` on the span wins over it) and the ``rank`` deciding between rules."""

    kind: str
    rank: Rank
    operation: str = ""


def call(operation: str) -> Verdict:
    """A leaf LLM call; ``operation`` unless the span names its own."""
    return Verdict(CALL, Rank.CALL, operation)


def tool() -> Verdict:
    """A tool execution."""
    return Verdict(TOOL, Rank.TOOL)


def agent() -> Verdict:
    """An agent invocation."""
    return Verdict(AGENT, Rank.AGENT)


def non_leaf() -> Verdict:
    """A workflow/chain/aggregating span: nothing is stored."""
    return Verdict(SKIP, Rank.NON_LEAF)


def weak_non_leaf() -> Verdict:
    """Not a call unless a call rule also matches."""
    return Verdict(SKIP, Rank.WEAK_NON_LEAF)


def weak_tool() -> Verdict:
    """A tool unless any other rule, or model + usage, says otherwise."""
    return Verdict(TOOL, Rank.WEAK_TOOL)


_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "exact": lambda text: text,
    "lower": str.lower,
    "upper": str.upper,
    "strip-lower": lambda text: text.strip().lower(),
}


@dataclass(frozen=True)
class ByValue:
    """A span-kind attribute: its string value, spelled canonically, picks a verdict.

    ``aliases`` map raw spellings first; any other value goes through ``normalize`` (one of
    ``exact``, ``lower``, ``upper``, ``strip-lower``). ``other`` is the verdict of any other non-empty
    value. ``names_operation``: the canonical value is the span's operation (``gen_ai.operation.name``).
    ``decisive``: the dialect's own kind attribute, decided before any other rule (its verdicts get
    ``Rank.OWN``) and only read on spans the dialect claimed. ``or_span_name``: a span whose key is not
    a string is read by its name instead (AI SDK spans detected by name).
    """

    key: str
    values: Mapping[str, Verdict]
    normalize: str = "exact"
    aliases: Mapping[str, str] = field(default_factory=dict)
    other: Verdict | None = None
    names_operation: bool = False
    decisive: bool = False
    or_span_name: bool = False

    def __post_init__(self) -> None:
        if self.normalize not in _NORMALIZERS:
            raise ValueError(f"ByValue({self.key!r}): normalize must be one of {sorted(_NORMALIZERS)}")

    def canonical(self, raw: Any) -> str:
        """The value as the verdict table spells it ("" when it is not a string)."""
        if type(raw) is not str:
            return ""
        return self.aliases.get(raw) or _NORMALIZERS[self.normalize](raw)

    def verdict(self, value: str) -> Verdict | None:
        """The verdict for an already canonical value."""
        if not value:
            return None
        found = self.values.get(value, self.other)
        if found is not None and self.decisive:
            return Verdict(found.kind, Rank.OWN, found.operation)
        return found


@dataclass(frozen=True)
class ByKey:
    """The presence of any of ``keys`` (whatever the value) gives ``verdict``; ``claimed_only``: only on
    spans the declaring dialect claimed."""

    keys: tuple[str, ...]
    verdict: Verdict
    claimed_only: bool = False


@dataclass(frozen=True)
class ByName:
    """A span name equal to one of ``names`` or starting with one of ``prefixes`` gives ``verdict``."""

    verdict: Verdict
    prefixes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    claimed_only: bool = False

    def matches(self, name: str) -> bool:
        """True when ``name`` is one this rule speaks for."""
        return name in self.names or (bool(self.prefixes) and name.startswith(self.prefixes))


Rule = ByValue | ByKey | ByName


# --------------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class Markers:
    """What claims a span for a dialect; any one suffices. Dialects are tried in ``Dialect.order``.

    ``keys``: an attribute present. ``string_keys``: an attribute holding a string.
    ``name_prefix_and_key``: a span name starting with the prefix *and* the key present.
    ``scope_prefixes`` / ``scope_contains``: the instrumentation scope name. ``attribute_values``: an
    attribute (on the span or its resource) equal to the value, e.g. ``telemetry.sdk.name``.
    """

    keys: tuple[str, ...] = ()
    string_keys: tuple[str, ...] = ()
    name_prefix_and_key: tuple[tuple[str, str], ...] = ()
    scope_prefixes: tuple[str, ...] = ()
    scope_contains: tuple[str, ...] = ()
    attribute_values: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------------------------------
# Key tables

# Fields read in the claiming dialect's spelling: its keys first, then the fallback dialect's.
OWN_FIELDS = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "reasoning",
    "total",
    "provider",
    "cache_write_5m",
    "cache_write_1h",
)
# Fields read in every dialect's spelling: the fallback dialect's keys first, then the claiming
# dialect's, then the other dialects' in detection order.
SHARED_FIELDS = (
    "request_model",
    "response_model",
    "ttft_seconds",
    "ttft_ms",
    "stream_flag",
    "completion_start_time",
    "reported_cost",
    "reported_cost_details",
    "tool_name",
    "agent_name",
    "service_tier",
    "speed",
    "inference_geo",
)


@dataclass(frozen=True)
class Keys:
    """The attribute keys of each canonical field, in precedence order: the first key present wins and
    key families that mean the same thing are never summed.

    Tokens: ``input`` (every prompt token), ``output``, ``cache_read``, ``cache_write``, ``reasoning``,
    ``total`` (checks only). ``provider``: the provider's name. ``request_model``/``response_model``.
    ``ttft_seconds``/``ttft_ms``: time to first token in that unit. ``stream_flag``: false means the call
    was not streamed (no TTFT then). ``completion_start_time``: ISO time of the first token.
    ``reported_cost``: the instrumentation's own cost; ``reported_cost_details``: a JSON object whose
    ``total`` is that cost. ``tool_name``/``agent_name``: a tool or agent span's name.
    ``cache_write_5m``/``cache_write_1h``: the cache writes by TTL (subsets of ``cache_write``; Anthropic
    bills 1-hour writes at 2x input, 5-minute ones at 1.25x). ``service_tier``: the tier the provider
    *served* (not the one requested); ``speed``: Anthropic's fast mode; ``inference_geo``: where Anthropic
    ran the call. These three key the tier price table (``collector.price_tiers``).
    """

    input: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
    cache_read: tuple[str, ...] = ()
    cache_write: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()
    total: tuple[str, ...] = ()
    provider: tuple[str, ...] = ()
    request_model: tuple[str, ...] = ()
    response_model: tuple[str, ...] = ()
    ttft_seconds: tuple[str, ...] = ()
    ttft_ms: tuple[str, ...] = ()
    stream_flag: tuple[str, ...] = ()
    completion_start_time: tuple[str, ...] = ()
    reported_cost: tuple[str, ...] = ()
    reported_cost_details: tuple[str, ...] = ()
    tool_name: tuple[str, ...] = ()
    agent_name: tuple[str, ...] = ()
    cache_write_5m: tuple[str, ...] = ()
    cache_write_1h: tuple[str, ...] = ()
    service_tier: tuple[str, ...] = ()
    speed: tuple[str, ...] = ()
    inference_geo: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# Named fix-ups: quirks of one instrumentation that no key table expresses


@dataclass(frozen=True)
class UsageReader:
    """An attribute holding the whole usage as one object, read by ``read(value, limit)`` into
    ``(input, output, cache_read, cache_write, reasoning, total or None, exclusive)``; when present it
    is the only usage source of the span (the token key tables are not read)."""

    name: str
    key: str
    read: Callable[[Any, int], tuple[int, int, int, int, int, int | None, bool]]


# The fields a MetadataReader may fill: what the provider served and billed.
METADATA_FIELDS = frozenset(
    ("service_tier", "speed", "inference_geo", "cache_write_5m", "cache_write_1h", "reported_cost")
)


@dataclass(frozen=True)
class MetadataReader:
    """An attribute holding the provider's own response metadata as one JSON object, read by
    ``read(value)`` into ``{field: value}`` for fields of ``METADATA_FIELDS``. A field a key table
    already filled keeps that value; an unreadable object gives nothing (it is never a reason to reject
    the span)."""

    name: str
    key: str
    read: Callable[[Any], Mapping[str, Any]]


@dataclass(frozen=True)
class ImpliedCall:
    """A failed call span that carries no attributes, recognized by ``implies(attributes, name,
    scope_name)`` returning the attributes it implies (or None). Only tried on ERROR spans that no rule
    classified and whose scope starts with ``scope_prefix``."""

    name: str
    scope_prefix: str
    implies: Callable[[Mapping[str, Any], str, str], dict[str, str] | None]


@dataclass(frozen=True)
class Dialect:
    """One instrumentation dialect, declared as data. See the module docstring."""

    name: str
    order: int  # detection precedence, lowest first; the fallback dialect is tried last whatever it says
    markers: Markers = Markers()
    keys: Keys = Keys()
    rules: tuple[Rule, ...] = ()
    fallback: bool = False  # claims every span no other dialect claimed; its OWN_FIELDS keys back all
    # Fix-ups, each named for the quirk it handles.
    reads_operation_name: bool = True  # False: a gen_ai.operation.name on its spans is not read
    provider_has_suffix: bool = False  # "openai.chat": try ever shorter dot-prefixes
    input_excludes_cache_for: frozenset[str] = frozenset()  # providers whose input count leaves cache out
    output_excludes_reasoning_for: frozenset[str] = frozenset()  # ... whose output count leaves
    # reasoning out (applied when no reported total decides)
    usage_reader: UsageReader | None = None
    metadata_reader: MetadataReader | None = None
    implied_call: ImpliedCall | None = None
    first_token_events: Mapping[str, str | None] = field(default_factory=dict)  # event name -> the
    # event attribute holding the ms to first token (None: the event's time is the first token's)
    notes: str = ""  # what the docs say about it

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a dialect needs a name")
        if self.fallback and self.markers != Markers():
            raise ValueError(f"dialect {self.name!r}: the fallback dialect claims by elimination, no markers")


def load_dialects(package: ModuleType | None = None) -> tuple[Dialect, ...]:
    """Every ``DIALECT`` declared by a module of ``package`` (default: this one), in detection order.

    Raises ValueError when two declarations share a name or an order, or when there is not exactly one
    fallback dialect.
    """
    if package is None:
        package = importlib.import_module(__name__)
    found: list[Dialect] = []
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        declared = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "DIALECT", None)
        if isinstance(declared, Dialect):
            found.append(declared)
    return check_dialects(found)


def check_dialects(dialects: list[Dialect] | tuple[Dialect, ...]) -> tuple[Dialect, ...]:
    """``dialects`` in detection order (the fallback last), after checking they can be compiled."""
    names = [d.name for d in dialects]
    orders = [d.order for d in dialects if not d.fallback]
    if len(set(names)) != len(names):
        raise ValueError(f"two dialects share a name: {sorted(names)}")
    if len(set(orders)) != len(orders):
        raise ValueError(f"two dialects share a detection order: {sorted(orders)}")
    fallbacks = [d.name for d in dialects if d.fallback]
    if len(fallbacks) != 1:
        raise ValueError(f"exactly one dialect must be the fallback, found {fallbacks}")
    return tuple(sorted(dialects, key=lambda d: (d.fallback, d.order)))
