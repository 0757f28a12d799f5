"""An app instrumented by ONE instrumentation library calls the fake LLM servers through the real SDKs.

Run in its own process per (library, transport), because the instrumentors patch the same SDK classes:

    python -m tests.interop.driver LIBRARY TRANSPORT ENDPOINT [--capture FILE]

It exports over OTLP (``http``: ENDPOINT is the OTLP/HTTP base URL; ``grpc``: host:port) the way a user
sets the library up, attributes each call with ``tokenpulse.sdk.attribution``, optionally also writes
every span as OTLP JSON lines to FILE (the fixtures), and prints one JSON object:
``{"scenarios": {name: {"parent_span_id": hex, "raised": exception class}}, "served": [name, ...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.interop.scenarios import CLIENT_TIMEOUT_S, SCENARIO_HEADER, SCENARIO_SPAN_PREFIX, SCENARIOS

LIBRARIES = ("openllmetry", "openai-v2", "openinference", "openlit", "pydantic-ai", "langfuse")
TRANSPORTS = ("http", "grpc")
SECRET = "4111 1111 1111 1111"
PROMPT = f"Where is my order? My card number is {SECRET}."  # prompt content: must never be stored
SERVICE_PREFIX = "interop-"

# Which providers each library instruments (openai-v2 is OpenAI only).
PROVIDERS: dict[str, tuple[str, ...]] = {
    "openllmetry": ("openai", "anthropic"),
    "openai-v2": ("openai",),
    "openinference": ("openai", "anthropic"),
    "openlit": ("openai", "anthropic"),
    "pydantic-ai": ("openai", "anthropic"),
    "langfuse": ("openai",),  # its drop-in OpenAI client
    "vercel-ai": ("openai", "anthropic"),  # JavaScript: tests/interop/vercel, fixtures only
}
# Every library with fixtures: the Python ones above and the Vercel AI SDK (captured with Node.js).
FIXTURE_LIBRARIES = (*LIBRARIES, "vercel-ai")


def scenarios_of(library: str) -> list[str]:
    """The scenarios a library's app runs (a Pydantic AI agent makes chat calls, not embeddings)."""
    return [
        name
        for name, s in SCENARIOS.items()
        if s.provider in PROVIDERS[library] and not (library == "pydantic-ai" and s.operation == "embeddings")
    ]


def service_name(library: str, transport: str) -> str:
    return f"{SERVICE_PREFIX}{library}-{transport}"


def setup(library: str, transport: str, endpoint: str, fake_url: str) -> Any:
    """Instrument the SDKs with ``library`` exporting to ``endpoint``; return the TracerProvider.

    Every library but OpenLIT gets its provider from ``tokenpulse.sdk.configure``; OpenLIT builds its own,
    to which the attribution processor is added.
    """
    from opentelemetry import trace

    from tokenpulse import sdk

    service = service_name(library, transport)
    if library == "openlit":
        # OpenLIT builds its own provider and exporter; the protocol comes from the standard variable.
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc" if transport == "grpc" else "http/protobuf"
        import openlit

        url = f"http://{endpoint}" if transport == "grpc" else endpoint
        openlit.init(
            application_name=service,
            environment="test",
            otlp_endpoint=url,
            disable_metrics=True,
            disable_events=True,
            # a local price list: by default OpenLIT downloads one from GitHub at init
            pricing_json=str(Path(__file__).with_name("openlit_pricing.json")),
        )
        provider = trace.get_tracer_provider()
        provider.add_span_processor(sdk.AttributionSpanProcessor())  # type: ignore[attr-defined]
        return provider

    provider = sdk.configure(service, endpoint=endpoint, protocol=transport)
    if library == "openllmetry":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
        AnthropicInstrumentor().instrument()
    elif library == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
    elif library == "openinference":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
        AnthropicInstrumentor().instrument()
    elif library == "pydantic-ai":
        from pydantic_ai import Agent

        Agent.instrument_all()
    elif library == "langfuse":
        from langfuse import Langfuse

        # Langfuse adds its own exporter (to its server, here the fake one, which refuses it) to the
        # provider; the app's exporter sends the same spans to tokenpulse.
        Langfuse(
            public_key="pk-lf-fake", secret_key="sk-lf-fake", base_url=fake_url, tracer_provider=provider
        )
    else:
        raise ValueError(f"unknown library {library!r}")
    return provider


def _calls(base_url: str, library: str) -> dict[str, Callable[[], Any]]:
    """One SDK call per scenario, as an app makes it."""
    import anthropic

    if library == "langfuse":
        from langfuse import openai
    else:
        import openai

    oa = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-fake", max_retries=0)
    an = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-fake", max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]

    def header(name: str) -> dict[str, str]:
        return {SCENARIO_HEADER: name}

    def openai_chat(name: str) -> Callable[[], Any]:
        s = SCENARIOS[name]
        client = oa.with_options(timeout=CLIENT_TIMEOUT_S) if s.stall else oa
        if s.stream:
            return lambda: list(
                client.chat.completions.create(
                    model=s.request_model, messages=messages, stream=True,
                    stream_options={"include_usage": True}, extra_headers=header(name),
                )
            )  # fmt: skip
        return lambda: client.chat.completions.create(
            model=s.request_model, messages=messages, extra_headers=header(name)
        )

    def anthropic_message(name: str) -> Callable[[], Any]:
        s = SCENARIOS[name]
        client = an.with_options(timeout=CLIENT_TIMEOUT_S) if s.stall else an
        if s.stream:
            return lambda: list(
                client.messages.create(
                    model=s.request_model, max_tokens=1024, messages=messages, stream=True,
                    extra_headers=header(name),
                )
            )  # fmt: skip
        return lambda: client.messages.create(
            model=s.request_model, max_tokens=1024, messages=messages, extra_headers=header(name)
        )

    calls: dict[str, Callable[[], Any]] = {}
    for name, s in SCENARIOS.items():
        if s.provider == "anthropic":
            calls[name] = anthropic_message(name)
        elif s.operation == "embeddings":
            calls[name] = lambda s=s, name=name: oa.embeddings.create(
                model=s.request_model, input="where is my order", extra_headers=header(name)
            )
        else:
            calls[name] = openai_chat(name)
    return calls


def _agent_calls(base_url: str, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], Any]]:
    """One Pydantic AI agent run per scenario, on the SDKs' async clients (how Pydantic AI uses them)."""
    import anthropic
    import openai
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    def agent_for(name: str) -> Agent:
        s = SCENARIOS[name]
        options: dict[str, Any] = {
            "api_key": "sk-fake",
            "max_retries": 0,
            "default_headers": {SCENARIO_HEADER: name},
            "timeout": CLIENT_TIMEOUT_S if s.stall else 30,
        }
        if s.provider == "anthropic":
            client = anthropic.AsyncAnthropic(base_url=base_url, **options)
            return Agent(AnthropicModel(s.request_model, provider=AnthropicProvider(anthropic_client=client)))
        oa = openai.AsyncOpenAI(base_url=f"{base_url}/v1", **options)
        return Agent(OpenAIChatModel(s.request_model, provider=OpenAIProvider(openai_client=oa)))

    async def stream(agent: Agent) -> None:
        async with agent.run_stream(PROMPT) as result:
            async for _ in result.stream_text():
                pass

    def call(name: str) -> Callable[[], Any]:
        agent = agent_for(name)
        if SCENARIOS[name].stream:
            return lambda: loop.run_until_complete(stream(agent))
        return lambda: loop.run_until_complete(agent.run(PROMPT))

    return {name: call(name) for name in scenarios_of("pydantic-ai")}


def run(library: str, transport: str, endpoint: str, capture: Path | None) -> dict[str, Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from tests.interop.fake_llm import FakeLLMServer
    from tokenpulse import sdk
    from tokenpulse.simulate.emit import JsonLinesExporter

    results: dict[str, Any] = {}
    loop = asyncio.new_event_loop()  # one loop for all of Pydantic AI's async calls
    with FakeLLMServer() as fake:
        provider = setup(library, transport, endpoint, fake.base_url)
        if capture is not None:
            provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(capture)))
        tracer = trace.get_tracer("tests.interop.driver")
        calls = (
            _agent_calls(fake.base_url, loop) if library == "pydantic-ai" else _calls(fake.base_url, library)
        )
        for name in scenarios_of(library):
            scenario = SCENARIOS[name]
            with (
                tracer.start_as_current_span(SCENARIO_SPAN_PREFIX + name) as parent,
                sdk.attribution(**scenario.attribution),  # type: ignore[arg-type]
            ):
                raised = None
                try:
                    calls[name]()
                except Exception as error:  # the error scenarios: the app sees the SDK's exception
                    raised = type(error).__name__
                results[name] = {
                    "parent_span_id": format(parent.get_span_context().span_id, "016x"),
                    "raised": raised,
                }
        served = sorted({s for s, _ in fake.requests})
        if not provider.force_flush(30_000):  # while the fake server still answers Langfuse's exporter
            raise SystemExit("the exporter did not flush in 30 s")
        provider.shutdown()
    loop.close()
    return {"scenarios": results, "served": served}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("transport", choices=TRANSPORTS)
    parser.add_argument("endpoint")
    parser.add_argument("--capture", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.library, args.transport, args.endpoint, args.capture)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
