"""API keys: ingest and API reads need a key, each key's data is its tenant's, keys never leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.daemon import Daemon
from tests.otlp_builders import export_request, llm_span
from tests.test_e2e_sdk import run_app
from tokenpulse.auth import ApiKeys, check_bind, parse_key_list
from tokenpulse.config import load_settings
from tokenpulse.storage.store import Store

ACME_KEY = "acme-0123456789abcdef"
GLOBEX_KEY = "globex-0123456789abcdef"
KEYS = {ACME_KEY: "acme", GLOBEX_KEY: "globex"}


def test_a_key_maps_to_its_tenant_and_nothing_else_does() -> None:
    keys = ApiKeys.of(KEYS)
    assert keys.tenant_for(f"Bearer {ACME_KEY}") == "acme"
    assert keys.tenant_for(f"bearer  {GLOBEX_KEY} ") == "globex"
    wrong = (None, "", ACME_KEY, f"Basic {ACME_KEY}", f"Bearer {ACME_KEY}x", "Bearer ", "Bearer acme")
    assert [keys.tenant_for(presented) for presented in wrong] == [None] * len(wrong)
    assert not ApiKeys().enabled and ApiKeys().tenant_for(f"Bearer {ACME_KEY}") is None
    assert ACME_KEY not in repr(keys)
    with pytest.raises(ValueError, match="at least 16 characters"):
        ApiKeys.of({"short": "acme"})


def test_keys_come_from_the_config_file_or_the_environment(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text(f'[auth]\nprotect_metrics = true\nkeys = [{{key = "{ACME_KEY}", tenant = "acme"}}]\n')
    settings = load_settings(config)
    assert settings.api_keys == {ACME_KEY: "acme"} and settings.protect_metrics
    assert ACME_KEY not in repr(settings)
    monkeypatch.setenv("TOKENPULSE_API_KEYS", f"acme:{ACME_KEY}, globex:{GLOBEX_KEY}")
    monkeypatch.setenv("TOKENPULSE_ALLOW_UNAUTHENTICATED", "true")
    settings = load_settings()
    assert settings.api_keys == KEYS and settings.allow_unauthenticated
    with pytest.raises(ValueError, match="tenant:key"):
        parse_key_list("no-tenant-here")
    config.write_text('[auth]\nkeys = [{key = "k"}]\n')
    with pytest.raises(ValueError, match=r"\[auth\] takes"):
        load_settings(config)


def test_a_network_address_needs_keys_unless_explicitly_allowed() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        check_bind(host, ApiKeys(), allow_unauthenticated=False)
    with pytest.raises(SystemExit, match=r"refusing to listen on 0\.0\.0\.0 without API keys"):
        check_bind("0.0.0.0", ApiKeys(), allow_unauthenticated=False)
    check_bind("0.0.0.0", ApiKeys(), allow_unauthenticated=True)
    check_bind("0.0.0.0", ApiKeys.of(KEYS), allow_unauthenticated=False)


def test_serve_refuses_a_network_bind_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", "serve", "--data", str(tmp_path / "data"),
         "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "without API keys" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {"TOKENPULSE_API_KEYS": f"acme:{ACME_KEY},globex:{GLOBEX_KEY}"}
    running = Daemon(tmp_path_factory.mktemp("secured") / "data", env).start()
    yield running
    if running.process and running.process.poll() is None:
        running.kill()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_ingest_without_a_valid_key_is_rejected_on_both_transports(secured: Daemon) -> None:
    body = export_request(llm_span()).SerializeToString()
    url = f"{secured.otlp_http}/v1/traces"
    for headers in ({}, bearer("not-a-key-0123456789"), {"authorization": ACME_KEY}):
        headers = {"content-type": "application/x-protobuf", **headers}
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == 401
        assert "API key" in response.text  # a google.rpc.Status body
    with grpc.insecure_channel(f"127.0.0.1:{secured.grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as rejected:
            export(body, timeout=10)
        assert rejected.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert isinstance(export(body, timeout=10, metadata=(("authorization", f"Bearer {ACME_KEY}"),)),
                          ExportTraceServiceResponse)  # fmt: skip


def summary(daemon: Daemon, key: str | None, **params: str) -> httpx.Response:
    headers = bearer(key) if key else {}
    return httpx.get(f"{daemon.api}/api/v1/summary", params=params, headers=headers, timeout=30)


def calls_of(daemon: Daemon, key: str, expected: int) -> int:
    deadline = time.monotonic() + 30
    while True:
        groups = summary(daemon, key).json()["groups"]
        calls = groups[0]["calls"] if groups else 0
        if calls >= expected or time.monotonic() > deadline:
            return calls
        time.sleep(0.2)


def test_each_tenant_sends_with_its_key_and_reads_only_its_own_data(secured: Daemon) -> None:
    # acme over OTLP/HTTP, globex over OTLP/gRPC, both the stock exporters with the standard headers.
    run_app(HttpExporter(endpoint=f"{secured.otlp_http}/v1/traces", headers=bearer(ACME_KEY), timeout=10))
    run_app(GrpcExporter(endpoint=f"127.0.0.1:{secured.grpc_port}", insecure=True,
                         headers=bearer(GLOBEX_KEY), timeout=10))  # fmt: skip
    run_app(GrpcExporter(endpoint=f"127.0.0.1:{secured.grpc_port}", insecure=True,
                         headers=bearer(GLOBEX_KEY), timeout=10))  # fmt: skip
    # The gRPC acme request of the previous test counts too: 1 + 2 calls for acme, 4 for globex.
    assert calls_of(secured, ACME_KEY, 3) == 3
    assert calls_of(secured, GLOBEX_KEY, 4) == 4
    # A key cannot read another tenant's data, whatever it asks for.
    stolen = summary(secured, ACME_KEY, tenant="globex", group_by="tenant").json()["groups"]
    assert [(g["key"]["tenant"], g["calls"]) for g in stolen] == [("acme", 3)]

    # The commands that call the API send the key from TOKENPULSE_API_KEY.
    command = [sys.executable, "-m", "tokenpulse.cli", "summary", "--api", secured.api, "--json"]
    environment = {k: v for k, v in os.environ.items() if k != "TOKENPULSE_API_KEY"}
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    assert "set TOKENPULSE_API_KEY" in refused.stderr  # what to do, not the API's JSON
    signed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True,
                            env={**environment, "TOKENPULSE_API_KEY": GLOBEX_KEY})  # fmt: skip
    assert sum(group["calls"] for group in json.loads(signed.stdout)["groups"]) == 4

    assert summary(secured, None).status_code == 401
    assert summary(secured, "not-a-key-0123456789").status_code == 401
    assert httpx.get(f"{secured.api}/api/v1/alerts", timeout=10).status_code == 401
    assert httpx.get(f"{secured.api}/healthz", timeout=10).status_code == 200  # probes stay open
    # A runbook link clicked from Slack opens without a key, but the alert's context (data) needs one.
    runbook = f"{secured.api}/runbooks/cache_hit_collapse?alert=0123456789abcdef"
    anonymous = httpx.get(runbook, timeout=10)
    signed = httpx.get(runbook, headers=bearer(ACME_KEY), timeout=10)
    assert anonymous.status_code == signed.status_code == 200
    assert "No alert 0123456789abcdef" in signed.text and "0123456789abcdef" not in anonymous.text
    assert httpx.get(f"{secured.api}/metrics", timeout=10).status_code == 200  # unless protect_metrics

    assert secured.stop() == 0
    store = Store.open(secured.data_dir)
    try:
        rows = store.rows("SELECT tenant, count() FROM calls GROUP BY tenant ORDER BY tenant")
        rolled = store.rows("SELECT tenant, sum(calls) FROM calls_1m GROUP BY tenant ORDER BY tenant")
        tools = store.rows("SELECT tenant, count() FROM tool_spans GROUP BY tenant ORDER BY tenant")
    finally:
        store.close()
    assert rows == rolled == [("acme", 3), ("globex", 4)]
    assert tools == [("acme", 1), ("globex", 2)]
    log = secured.log()
    assert ACME_KEY not in log and GLOBEX_KEY not in log and "API keys of 2 tenant(s)" in log
