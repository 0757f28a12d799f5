"""An optional helper for apps: send spans to tokenpulse and attribute LLM calls to routes, users, prompts.

Depends only on the OpenTelemetry API and SDK (and the SDK's stock OTLP exporters)::

    from tokenpulse import sdk

    sdk.configure("support-bot")                 # TracerProvider + OTLP exporter to tokenpulse
    OpenAIInstrumentor().instrument()            # any instrumentation library, unchanged

    with sdk.attribution(route="/chat", user=user.id, prompt_version="v7"):
        client.chat.completions.create(...)      # its LLM span carries tokenpulse.route, .user, ...

Evaluation results (an LLM judge, user feedback, a task check) go to tokenpulse as the semconv event
``gen_ai.evaluation.result``, parented to the evaluated call's span, through the OTel logs SDK::

    sdk.configure_logs("support-bot")            # LoggerProvider + OTLP log exporter to tokenpulse

    with sdk.llm_calls() as calls:               # the LLM spans any instrumentation starts inside
        answer = client.chat.completions.create(...)
    sdk.record_evaluation("judge_pass", score=0.8, label="pass", span=calls[-1])

``attribution`` works as a context manager and as a decorator (plain and ``async`` functions). It keeps
its values in the OpenTelemetry context, and :class:`AttributionSpanProcessor` (installed by
``configure``, or added to your own TracerProvider) copies them onto every span started inside it: the
LLM spans of whatever instrumentation library made them. The values stay in the process: they are not
put in W3C baggage, which instrumented HTTP clients would send to the LLM provider.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TypeVar, overload
from urllib.parse import urlparse

from opentelemetry import context, trace
from opentelemetry._logs import Logger, get_logger, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.util.types import AttributeValue

__all__ = [
    "AttributionSpanProcessor",
    "LlmCalls",
    "attribution",
    "configure",
    "configure_logs",
    "current_attribution",
    "llm_calls",
    "otlp_exporter",
    "otlp_log_exporter",
    "record_evaluation",
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
_CALLS_KEY = context.create_key("tokenpulse.llm_calls")
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
F = TypeVar("F", bound=Callable[..., Any])


# The SDK's stock OTLP exporters, by (signal, protocol); imported when asked for.
_EXPORTERS = {
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("traces", "http"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
}


def _stock_exporter(signal: str, endpoint: str | None, protocol: str) -> Any:
    """The SDK's OTLP exporter of ``signal`` (traces, logs). Without ``endpoint``: the SDK's environment
    variables when set, else tokenpulse's default ports on 127.0.0.1."""
    protocol = "http" if protocol == "http/protobuf" else protocol
    if protocol not in ("grpc", "http"):
        raise ValueError(f"unknown protocol {protocol!r}: use grpc or http")
    module, name = _EXPORTERS[(signal, protocol)]
    exporter = getattr(importlib.import_module(module), name)
    env_set = any(
        k in os.environ
        for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )
    if endpoint is None and env_set:
        return exporter()
    if protocol == "grpc":
        url = endpoint or DEFAULT_GRPC_ENDPOINT
        return exporter(endpoint=url if "://" in url else f"http://{url}")
    url = endpoint or f"http://127.0.0.1:4318/v1/{signal}"
    if "://" not in url:
        url = f"http://{url}"
    if urlparse(url).path in ("", "/"):
        url = url.rstrip("/") + f"/v1/{signal}"
    return exporter(endpoint=url)


def otlp_exporter(endpoint: str | None = None, protocol: str = "grpc") -> SpanExporter:
    """The SDK's stock OTLP span exporter. Without ``endpoint``: the SDK's environment variables when set,
    else tokenpulse's default ports on 127.0.0.1. ``protocol``: ``grpc`` or ``http`` (``http/protobuf``)."""
    return _stock_exporter("traces", endpoint, protocol)  # type: ignore[no-any-return]


def otlp_log_exporter(endpoint: str | None = None, protocol: str = "grpc") -> LogRecordExporter:
    """The SDK's stock OTLP log exporter, chosen as :func:`otlp_exporter` chooses the span exporter."""
    return _stock_exporter("logs", endpoint, protocol)  # type: ignore[no-any-return]


def _resource(service_name: str | None, attributes: Mapping[str, AttributeValue] | None) -> Resource:
    values = dict(attributes or {})
    if service_name is not None:
        values["service.name"] = service_name
    return Resource.create(values)


def _protocol(signal: str, protocol: str | None) -> str:
    """``protocol``, else the SDK's variable for ``signal``, else the general one, else grpc."""
    general = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    return protocol or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", general)


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
    provider = TracerProvider(resource=_resource(service_name, resource_attributes))
    provider.add_span_processor(AttributionSpanProcessor())
    if exporter is None:
        exporter = otlp_exporter(endpoint, _protocol("traces", protocol))
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
        calls = context.get_value(_CALLS_KEY, parent_context)
        if isinstance(calls, LlmCalls):
            calls.started.append(span)  # inside ``llm_calls``: an LLM call once it says so


# -- evaluations -------------------------------------------------------------------------------------

EVALUATION_EVENT = "gen_ai.evaluation.result"
_SCOPE = "tokenpulse.sdk"
# What makes a span an LLM call for ``llm_calls`` (the semconv attribute every GenAI instrumentation sets).
_OPERATION = "gen_ai.operation.name"
# Copied from the evaluated call onto its evaluation, so tokenpulse groups the evaluation with its call's
# route, model and prompt version without a join (tokenpulse.collector.evaluations).
_COPIED = ("gen_ai.response.model", "gen_ai.request.model", ROUTE, PROMPT_VERSION)


def configure_logs(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    exporter: LogRecordExporter | None = None,
    set_global: bool = True,
) -> LoggerProvider:
    """A LoggerProvider that batches log records (evaluation results) to tokenpulse over OTLP; the
    arguments are :func:`configure`'s. Call ``shutdown()`` on it to flush the last records."""
    provider = LoggerProvider(resource=_resource(service_name, resource_attributes))
    if exporter is None:
        exporter = otlp_log_exporter(endpoint, _protocol("logs", protocol))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    if set_global:
        set_logger_provider(provider)
    return provider


class LlmCalls(Sequence[Span]):
    """The LLM spans started inside an :func:`llm_calls` block, in start order. A span counts once it
    carries ``gen_ai.operation.name``, which instrumentations may set after starting it: the spans are
    sorted out when read, not when started."""

    def __init__(self) -> None:
        self.started: list[Span] = []

    def _calls(self) -> list[Span]:
        return [span for span in self.started if span.attributes and _OPERATION in span.attributes]

    @overload
    def __getitem__(self, index: int) -> Span: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Span]: ...
    def __getitem__(self, index: int | slice) -> Span | Sequence[Span]:
        return self._calls()[index]

    def __len__(self) -> int:
        return len(self._calls())


@contextlib.contextmanager
def llm_calls() -> Iterator[LlmCalls]:
    """Collect the LLM spans started inside the block (by any instrumentation library, on a provider
    with :class:`AttributionSpanProcessor`): the spans an evaluation is parented to."""
    calls = LlmCalls()
    token = context.attach(context.set_value(_CALLS_KEY, calls))
    try:
        yield calls
    finally:
        context.detach(token)


def record_evaluation(
    name: str,
    *,
    score: float | None = None,
    label: str | None = None,
    span: trace.Span | None = None,
    response_id: str | None = None,
    error_type: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    logger_provider: LoggerProvider | None = None,
) -> None:
    """Record an evaluation of an LLM call: the ``gen_ai.evaluation.result`` event, parented to ``span``
    (the call's span, e.g. from :func:`llm_calls`; default: the current span).

    ``name`` says what was judged (``judge_pass``, ``relevance``...); ``score`` (in [0, 1] for tokenpulse
    to read a verdict from it) and ``label`` (``pass`` / ``fail``...) are the result. The call's model,
    route and prompt version are copied onto the event. No explanation is sent: it is free text that
    may quote the user, and tokenpulse never stores it.
    """
    span = span or trace.get_current_span()
    values: dict[str, AttributeValue] = {}
    called = getattr(span, "attributes", None) or {}
    values |= {key: called[key] for key in _COPIED if key in called}
    values |= {key: value for key, value in current_attribution().items() if key in _COPIED}
    values["gen_ai.evaluation.name"] = name
    for key, value in (
        ("gen_ai.evaluation.score.value", score),
        ("gen_ai.evaluation.score.label", label),
        ("gen_ai.response.id", response_id),
        ("error.type", error_type),
    ):
        if value is not None:
            values[key] = value
    values |= dict(attributes or {})
    logger: Logger = get_logger(_SCOPE, logger_provider=logger_provider)
    logger.emit(event_name=EVALUATION_EVENT, attributes=values, context=trace.set_span_in_context(span))
