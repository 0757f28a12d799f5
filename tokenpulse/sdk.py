"""An optional helper for apps: send spans to tokenpulse and attribute LLM calls to routes, users, prompts.

Depends only on the OpenTelemetry API and SDK (and the SDK's stock OTLP exporters)::

    from tokenpulse import sdk

    sdk.configure("support-bot")                 # TracerProvider + OTLP exporter to tokenpulse
    OpenAIInstrumentor().instrument()            # any instrumentation library, unchanged

    with sdk.attribution(route="/chat", user=user.id, prompt_version="v7"):
        client.chat.completions.create(...)      # its LLM span carries tokenpulse.route, .user, ...

``attribution`` works as a context manager and as a decorator (plain and ``async`` functions). It keeps
its values in the OpenTelemetry context, and :class:`AttributionSpanProcessor` (installed by
``configure``, or added to your own TracerProvider) copies them onto every span started inside it: the
LLM spans of whatever instrumentation library made them. The values stay in the process: they are not
put in W3C baggage, which instrumented HTTP clients would send to the LLM provider.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlparse

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.util.types import AttributeValue

__all__ = [
    "AttributionSpanProcessor",
    "attribution",
    "configure",
    "current_attribution",
    "otlp_exporter",
]

DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318/v1/traces"

# The span attributes tokenpulse reads first for each dimension (tokenpulse.collector.normalize).
ROUTE = "tokenpulse.route"
USER = "tokenpulse.user"
SESSION = "tokenpulse.session"
PROMPT_VERSION = "tokenpulse.prompt.version"
ROUTER = "tokenpulse.router.name"
ESCALATED = "tokenpulse.router.escalated"

_CONTEXT_KEY = context.create_key("tokenpulse.attribution")
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
F = TypeVar("F", bound=Callable[..., Any])


def otlp_exporter(endpoint: str | None = None, protocol: str = "grpc") -> SpanExporter:
    """The SDK's stock OTLP span exporter. Without ``endpoint``: the SDK's environment variables when set,
    else tokenpulse's default ports on 127.0.0.1. ``protocol``: ``grpc`` or ``http`` (``http/protobuf``)."""
    env_set = any(
        k in os.environ for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        if endpoint is None and env_set:
            return GrpcExporter()
        url = endpoint or DEFAULT_GRPC_ENDPOINT
        return GrpcExporter(endpoint=url if "://" in url else f"http://{url}")
    if protocol in ("http", "http/protobuf"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        if endpoint is None and env_set:
            return HttpExporter()
        url = endpoint or DEFAULT_HTTP_ENDPOINT
        if "://" not in url:
            url = f"http://{url}"
        if urlparse(url).path in ("", "/"):
            url = url.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=url)
    raise ValueError(f"unknown protocol {protocol!r}: use grpc or http")


def configure(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    exporter: SpanExporter | None = None,
    set_global: bool = True,
) -> TracerProvider:
    """A TracerProvider that batches spans to tokenpulse over OTLP and applies :func:`attribution`.

    ``service_name`` and ``resource_attributes`` (e.g. ``service.version``,
    ``deployment.environment.name``) describe the app; ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
    work as usual. ``protocol`` defaults to ``OTEL_EXPORTER_OTLP_PROTOCOL``, else ``grpc``; ``endpoint`` to
    the ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variables, else tokenpulse's port on 127.0.0.1. ``exporter``
    replaces the OTLP exporter. With ``set_global`` (the default) the provider becomes the global one,
    which is where instrumentation libraries look for it. Call ``shutdown()`` on it (or let the SDK's
    exit hook do it) to flush the last spans.
    """
    attributes = dict(resource_attributes or {})
    if service_name is not None:
        attributes["service.name"] = service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(AttributionSpanProcessor())
    if exporter is None:
        chosen = protocol or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        )
        exporter = otlp_exporter(endpoint, chosen)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


class attribution(contextlib.AbstractContextManager["attribution"]):
    """Attribute every span started inside to a route, user, session, prompt version and router.

    Use as ``with attribution(route="/chat", user="u-42"): ...`` or as a decorator. Nested blocks inherit
    what they do not set; a value given inside wins. ``escalated`` marks the call(s) as a router's
    escalation to a stronger model. ``attributes`` adds any other span attributes (e.g. ones named in
    ``[normalize.extra_dimensions]``).
    """

    def __init__(
        self,
        *,
        route: str | None = None,
        user: str | None = None,
        session: str | None = None,
        prompt_version: str | None = None,
        router: str | None = None,
        escalated: bool | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        given: dict[str, AttributeValue] = dict(attributes or {})
        for key, value in (
            (ROUTE, route),
            (USER, user),
            (SESSION, session),
            (PROMPT_VERSION, prompt_version),
            (ROUTER, router),
            (ESCALATED, escalated),
        ):
            if value is not None:
                given[key] = value
        self.attributes: Mapping[str, AttributeValue] = MappingProxyType(given)
        # The tokens to detach live in the caller's context, so one instance (a decorator, a module-level
        # block) can be entered from many threads and tasks at once.
        self._tokens: ContextVar[tuple[object, ...]] = ContextVar("tokenpulse.attribution.tokens", default=())

    def __enter__(self) -> attribution:
        merged = MappingProxyType({**current_attribution(), **self.attributes})
        token = context.attach(context.set_value(_CONTEXT_KEY, merged))
        self._tokens.set((*self._tokens.get(), token))
        return self

    def __exit__(self, *exc: object) -> None:
        *outer, token = self._tokens.get()
        self._tokens.set(tuple(outer))
        context.detach(token)  # type: ignore[arg-type]

    def __call__(self, function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def run_generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with self:
                    yield from function(*args, **kwargs)

            return run_generator  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]


def current_attribution(ctx: context.Context | None = None) -> Mapping[str, AttributeValue]:
    """The span attributes that :func:`attribution` blocks enclosing ``ctx`` (default: now) set."""
    value = context.get_value(_CONTEXT_KEY, ctx)
    return value if isinstance(value, Mapping) else _EMPTY


class AttributionSpanProcessor(SpanProcessor):
    """Copies the enclosing :class:`attribution` values onto every span when it starts.

    Add it to your own TracerProvider if you do not use :func:`configure`. It reads the context the span
    is started in, so it works with any instrumentation library; an attribute the instrumentation sets
    itself later wins.
    """

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        values = current_attribution(parent_context)
        if values:
            span.set_attributes(values)
