"""`tokenpulse serve`: the receivers and the API in one process, stopped cleanly by SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
from datetime import UTC, datetime, timedelta

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from tokenpulse.alerts.api import alerts_router
from tokenpulse.alerts.service import AlertService
from tokenpulse.api import create_api_app
from tokenpulse.auth import ApiKeys, RequireApiKey, check_bind, is_loopback
from tokenpulse.collector.grpc_receiver import start_grpc_server
from tokenpulse.collector.http_receiver import create_otlp_http_app
from tokenpulse.collector.pipeline import LocalRequestLog
from tokenpulse.config import Settings
from tokenpulse.detectors.api import coverage_router
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.service import DetectorService
from tokenpulse.errors import UserError
from tokenpulse.memory import StoreMemoryCollector, freeze_heap, tune_allocator
from tokenpulse.reconcile.command import daily_import
from tokenpulse.runtime import Runtime
from tokenpulse.workers import QuietServer, SummedRegistry, WorkerPool, WorkerStartFailed, check_port_free

log = logging.getLogger(__name__)


class PortInUse(UserError):
    """A listening port cannot be bound: most often another tokenpulse (or another collector) holds it."""


def _cannot_listen(what: str, setting: str, host: str, port: int, error: OSError) -> PortInUse:
    reason = "address already in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
    return PortInUse(
        f"cannot listen for {what} on {host}:{port}: {reason}; is another tokenpulse or collector running? "
        f"Stop it or choose another port ({setting} in the config file, "
        f"TOKENPULSE_{setting.upper()}, --{setting.replace('_', '-')})"
    )


def bind_listener(what: str, setting: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` or PortInUse naming the setting that chose the port.

    Bound here rather than by uvicorn so that a taken port is one clear error before anything is
    announced as serving (uvicorn logs it and exits the process from inside the event loop).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart may bind at once over the last run's TIME_WAIT connections.
        # SO_REUSEADDR does not let two live listeners share the port on Linux (SO_REUSEPORT would).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise _cannot_listen(what, setting, host, port, error) from None
    sock.set_inheritable(True)
    return sock


def worker_count(settings: Settings) -> int:
    """The processes receiving OTLP: ``workers``, or one per core this process may run on."""
    return settings.workers or len(os.sched_getaffinity(0))


async def _serve(runtime: Runtime, detectors: DetectorService, alerts: AlertService, keys: ApiKeys) -> None:
    settings = runtime.settings
    workers = worker_count(settings)
    grpc_server = None
    try:
        if workers == 1:
            grpc_server = start_grpc_server(
                runtime.pipeline, f"{settings.host}:{settings.otlp_grpc_port}",
                settings.max_decompressed_bytes, keys,
            )  # fmt: skip
        else:
            # The workers bind it together (SO_REUSEPORT); first make sure nobody else holds it.
            check_port_free(settings.host, settings.otlp_grpc_port)
    except OSError as error:
        raise _cannot_listen(
            "OTLP/gRPC", "otlp_grpc_port", settings.host, settings.otlp_grpc_port, error
        ) from None
    sockets: list[socket.socket] = []
    try:
        for what, setting in (("OTLP/HTTP", "otlp_http_port"), ("the API", "api_port")):
            sockets.append(bind_listener(what, setting, settings.host, getattr(settings, setting)))
    except PortInUse:
        for sock in sockets:
            sock.close()
        if grpc_server is not None:
            grpc_server.stop(grace=None)
        raise
    if workers > 1:
        await _serve_with_workers(runtime, detectors, alerts, keys, workers, sockets)
        return
    otlp_app = create_otlp_http_app(
        runtime.pipeline, settings.max_request_bytes, settings.max_decompressed_bytes, keys
    )
    api_app = _api_app(runtime, detectors, alerts, keys)
    servers = [
        QuietServer(uvicorn.Config(app, host=settings.host, port=port, log_level="warning", access_log=False))
        for app, port in ((otlp_app, settings.otlp_http_port), (api_app, settings.api_port))
    ]
    _stop_on_signals(servers)
    log.info(
        "tokenpulse serving: OTLP/gRPC %s:%d, OTLP/HTTP %s:%d, API http://%s:%d, storage %s, %s",
        settings.host, settings.otlp_grpc_port, settings.host, settings.otlp_http_port,
        settings.host, settings.api_port, settings.clickhouse_url or f"chdb in {settings.data_dir}/chdb",
        _authentication(settings, keys),
    )  # fmt: skip
    try:
        await asyncio.gather(
            *(server.serve(sockets=[sock]) for server, sock in zip(servers, sockets, strict=True))
        )
    finally:
        assert grpc_server is not None
        grpc_server.stop(grace=5).wait()


def _authentication(settings: Settings, keys: ApiKeys) -> str:
    if keys.enabled:
        return f"API keys of {len(set(settings.api_keys.values()))} tenant(s)"
    return "no authentication (loopback)" if is_loopback(settings.host) else "no authentication (allowed)"


def _api_app(
    runtime: Runtime,
    detectors: DetectorService,
    alerts: AlertService,
    keys: ApiKeys,
    metrics_registry: Collector = REGISTRY,
) -> FastAPI:
    states = detectors.engine.states
    api_app = create_api_app(
        runtime.store, runtime.wal, runtime.writer, states, alerts.watch(states), metrics_registry
    )
    api_app.include_router(alerts_router(runtime.store, states, alerts.store, service=alerts))
    api_app.include_router(coverage_router(detectors.engine))
    api_app.add_middleware(RequireApiKey, keys=keys, protect_metrics=runtime.settings.protect_metrics)
    return api_app


def _stop_on_signals(servers: list[QuietServer]) -> None:
    def shutdown() -> None:
        log.info("shutting down: refusing new data, writing what was acknowledged")
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown)


async def _serve_with_workers(
    runtime: Runtime,
    detectors: DetectorService,
    alerts: AlertService,
    keys: ApiKeys,
    workers: int,
    sockets: list[socket.socket],
) -> None:
    """Serve the API here while ``workers`` processes receive OTLP (tokenpulse.workers) and buffer
    into this process's log."""
    settings = runtime.settings
    http_socket, api_socket = sockets
    request_log = runtime.pipeline.log
    assert isinstance(request_log, LocalRequestLog)  # the daemon's process holds the log
    pool = WorkerPool(settings, workers, http_socket, request_log)
    try:
        pool.start()
    except WorkerStartFailed as error:
        for sock in sockets:
            sock.close()
        raise UserError(f"cannot start the OTLP workers: {error}") from None
    api = QuietServer(
        uvicorn.Config(
            _api_app(runtime, detectors, alerts, keys, SummedRegistry(REGISTRY, pool.metrics)),
            host=settings.host, port=settings.api_port, log_level="warning", access_log=False,
        )
    )  # fmt: skip
    _stop_on_signals([api])
    log.info(
        "tokenpulse serving: %d workers (pids %s) on OTLP/gRPC %s:%d and OTLP/HTTP %s:%d, one writer; "
        "API http://%s:%d, storage %s, %s",
        workers, ", ".join(map(str, pool.pids())), settings.host, settings.otlp_grpc_port, settings.host,
        settings.otlp_http_port, settings.host, settings.api_port,
        settings.clickhouse_url or f"chdb in {settings.data_dir}/chdb", _authentication(settings, keys),
    )  # fmt: skip
    try:
        await api.serve(sockets=[api_socket])
    finally:
        # The workers first: each finishes its requests, whose appends this process still answers.
        await asyncio.to_thread(pool.stop)
        http_socket.close()


def start_detectors(runtime: Runtime, service: DetectorService) -> BackgroundScheduler:
    """Run every enabled detector on an interval; a failed cycle is logged and retried next interval."""
    settings = runtime.settings
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        service.cycle,
        IntervalTrigger(seconds=settings.detector_interval_seconds),
        id="detectors",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    return scheduler


def serve(settings: Settings) -> None:
    """Run the daemon until SIGINT/SIGTERM."""
    keys = ApiKeys.of(settings.api_keys)
    check_bind(settings.host, keys, settings.allow_unauthenticated)
    tune_allocator()  # before chDB, gRPC and the writer start their threads (arenas are per thread)
    runtime = Runtime.open(settings)
    scheduler = None
    alerts = None
    store_memory = StoreMemoryCollector(runtime.store)
    REGISTRY.register(store_memory)
    try:
        catalog = build_detectors(settings.detectors)
        alerts = AlertService.from_settings(settings)
        detectors = DetectorService(
            runtime.store,
            catalog,
            settings.data_dir / "alerts.json",
            settings.runbooks,
            on_transitions=alerts.on_transitions,
            storage_problem=lambda: (
                None
                if runtime.writer.healthy
                else ("inserts into storage are failing; acknowledged data waits in the write-ahead log")
            ),
        )
        alerts.start()
        if settings.run_detectors:
            scheduler = start_detectors(runtime, detectors)
            if settings.openai_admin_key or settings.anthropic_admin_key:
                # The providers' usage and cost reports, once a day (first a minute after start), for
                # reconcile and coverage_gap; an unconfigured provider is never called.
                scheduler.add_job(
                    daily_import,
                    IntervalTrigger(hours=24),
                    args=(runtime.store, settings),
                    id="reconcile",
                    max_instances=1,
                    coalesce=True,
                    next_run_time=datetime.now(UTC) + timedelta(minutes=1),
                )
        else:
            # Another collector writing to the same ClickHouse runs them (README, "Scale-out"): two
            # schedulers would page twice for every alert.
            log.info("detectors off here (run_detectors = false): another tokenpulse runs them")
        freeze_heap()
        asyncio.run(_serve(runtime, detectors, alerts, keys))
    finally:
        REGISTRY.unregister(store_memory)
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if alerts is not None:
            alerts.stop()
        runtime.close()
