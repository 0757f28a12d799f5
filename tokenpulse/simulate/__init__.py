"""`tokenpulse simulate`: realistic LLM traffic with injected incidents, sent through the OpenTelemetry SDK.

- ``catalog``: the simulated fleet (models, services, routes, tools, users).
- ``diurnal``: the daily load curve.
- ``incidents``: incident and confounder kinds, their effects, and the scenario layouts.
- ``traffic``: the pure, seeded traffic model producing ``spec.Turn`` descriptions of traces.
- ``emit``: the only part doing I/O: real SDK spans with historical timestamps, exported over OTLP or to
  an OTLP JSON lines file.
- ``command``: the CLI subcommand.
"""
