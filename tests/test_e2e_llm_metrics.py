"""The LLM figures at a live daemon's /metrics, promtool-clean."""

from __future__ import annotations

import shutil
import subprocess

import httpx

from tests.daemon import Daemon
from tests.otlp_builders import export_request, llm_span


def test_live_metrics_carry_the_llm_figures_and_pass_promtool(daemon: Daemon) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required; .ci/run installs it"
    request = export_request(
        *(llm_span(**{"gen_ai.usage.cache_read.input_tokens": 40}) for _ in range(3)), service="shop"
    )
    response = httpx.post(
        f"{daemon.otlp_http}/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    exposition = httpx.get(f"{daemon.api}/metrics").text
    assert 'tokenpulse_llm_calls_total{model="gpt-4o",service="shop",status="unset"} 3.0' in exposition
    assert 'tokenpulse_llm_tokens_total{kind="input",model="gpt-4o",service="shop"} 300.0' in exposition
    assert 'tokenpulse_llm_cost_usd_total{model="gpt-4o",service="shop"}' in exposition
    assert 'tokenpulse_llm_call_duration_seconds_count{model="gpt-4o",service="shop"} 3.0' in exposition
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
        checked.stdout + checked.stderr
    )
