"""`serve --workers N`: N processes receive, decode and normalize; the daemon's own process keeps the log.

Normalizing is most of a span's cost (~55 of ~66 us measured on bench/ingest.py's requests) and depends
on its request only, so it runs in worker processes. What depends on every request stays in the one
daemon process, exactly as without workers: the write-ahead log, the memory of the requests it holds and
the writer. A worker sends each request's encoded frame over a pipe; the daemon appends it (sharing
fsyncs with every other worker's frames) and answers with the offset, or "duplicate" when the log holds
that request already. The worker acknowledges only then. Hence:

- ack = fsynced: the exporter is answered after the daemon's append returned;
- exporter retries are dropped whichever worker they reach: there is one retry memory;
- a worker killed mid-request: each of its requests was appended (and remembered: the exporter's retry
  is a duplicate) or not (the retry is stored); the daemon starts a new worker in its place;
- the daemon killed: its workers die with it (PR_SET_PDEATHSIG) and a restart is as without workers;
- backpressure: WalFull and WalClosed come back through the pipe and answer 429 / RESOURCE_EXHAUSTED;
- limits: a request's limits are checked in its worker; the cardinality cap is per worker, so at most
  N x max_dimension_values distinct values per dimension per tenant per hour reach storage;
- /metrics: each worker sends its tokenpulse_* samples every second (and as it stops); the API sums
  them with the daemon's own (``SummedRegistry``); a killed worker's last samples are kept.

Listening: the daemon binds the OTLP/HTTP socket as without workers (no SO_REUSEPORT, so another daemon
is refused) and every worker accepts on it. gRPC cannot be handed a socket, so the workers bind its port
with SO_REUSEPORT, after the daemon checked by binding it plainly that nobody holds it; another daemon's
plain bind then fails while the workers hold the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import uvicorn
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from tokenpulse.auth import ApiKeys
from tokenpulse.buffer.wal import WalClosed, WalFull
from tokenpulse.collector.grpc_receiver import start_grpc_server
from tokenpulse.collector.http_receiver import create_otlp_http_app
from tokenpulse.collector.pipeline import RequestLog, pipeline_for
from tokenpulse.config import Settings

log = logging.getLogger(__name__)

METRICS_SECONDS = 1.0  # how often a worker sends its metric samples
READY_SECONDS = 120.0  # a worker that does not listen within this is a failed start (a loaded host)
STOP_SECONDS = 30.0  # a stopping worker finishes its requests within this, or is killed
_PR_SET_PDEATHSIG = 1


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the signal handlers to its process (the daemon or a worker)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# -- the worker's side -----------------------------------------------------------------------------------


@dataclass
class _Reply:
    done: threading.Event = field(default_factory=threading.Event)
    end: int | None = None
    error: str = ""  # "full", "closed", "error" or "" (appended, or a duplicate when end is None)
    message: str = ""


class RemoteRequestLog:
    """A worker's RequestLog: every append is decided by the daemon's log (``LogServer``).

    Many threads (HTTP and gRPC requests) append at once over the one pipe; a reader thread hands each
    answer to the thread waiting for it.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # the pipe's sending end, the pending replies and _closed
        self._pending: dict[int, _Reply] = {}
        self._ids = itertools.count()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="tokenpulse-log-client", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def seen(self, digest: bytes) -> bool:
        # No early answer: the daemon knows, and asking costs a round trip for every request to spare
        # normalizing the rare retry. ``append`` drops a retry.
        return False

    def append(self, frame: bytes, digest: bytes) -> int | None:
        reply = _Reply()
        with self._lock:
            if self._closed:
                raise WalClosed("the daemon's write-ahead log is gone")
            number = next(self._ids)
            self._pending[number] = reply
            try:
                self._conn.send(("append", number, digest, frame))
            except (OSError, ValueError):
                del self._pending[number]
                raise WalClosed("the daemon's write-ahead log is gone") from None
        reply.done.wait()
        if reply.error == "full":
            raise WalFull(reply.message)
        if reply.error == "closed":
            raise WalClosed(reply.message)
        if reply.error:
            raise RuntimeError(f"the daemon could not append to its write-ahead log: {reply.message}")
        return reply.end

    def send(self, message: tuple[Any, ...]) -> bool:
        """Send a message other than an append (readiness, metrics); False once the daemon is gone."""
        with self._lock:
            if self._closed:
                return False
            try:
                self._conn.send(message)
            except (OSError, ValueError):
                return False
        return True

    def _read(self) -> None:
        try:
            while True:
                _, number, end, error, message = self._conn.recv()
                with self._lock:
                    reply = self._pending.pop(number)
                reply.end, reply.error, reply.message = end, error, message
                reply.done.set()
        except (EOFError, OSError):
            with self._lock:
                self._closed = True
                pending, self._pending = self._pending, {}
            # Whether these were appended is unknown: unanswered, the exporters will retry them.
            for reply in pending.values():
                reply.error, reply.message = "closed", "the daemon's write-ahead log is gone"
                reply.done.set()


def metric_samples(registry: Collector = REGISTRY) -> list[tuple[str, str, str, str, list[Any]]]:
    """This process's tokenpulse_* metric families as plain tuples, to be summed in the daemon.

    ``_created`` samples are left out: a sum of creation times means nothing."""
    families = []
    for family in registry.collect():
        if family.name.startswith("tokenpulse_"):
            samples = [
                (s.name, tuple(sorted(s.labels.items())), s.value)
                for s in family.samples
                if not s.name.endswith("_created")
            ]
            families.append((family.name, family.type, family.documentation, family.unit, samples))
    return families


def _die_with_parent(daemon_pid: int) -> None:
    # A worker outliving a killed daemon would hold the gRPC port and accept requests nobody appends.
    # The signal comes when the thread that started the worker ends: WorkerPool's threads outlive
    # their workers.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != daemon_pid:  # the daemon died before the setting took
        os._exit(1)


def worker_main(
    settings: Settings, slot: int, http_socket: socket.socket, conn: Connection, daemon_pid: int
) -> None:
    """A worker process: serve OTLP/HTTP on the daemon's socket and OTLP/gRPC on the shared port until
    SIGTERM/SIGINT, buffering through the daemon's log."""
    _die_with_parent(daemon_pid)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s worker-{slot} %(name)s: %(message)s"
    )
    from tokenpulse.memory import freeze_heap, reuse_request_buffers, tune_allocator

    tune_allocator()
    reuse_request_buffers()
    remote = RemoteRequestLog(conn)
    remote.start()
    pipeline = pipeline_for(settings, remote)
    keys = ApiKeys.of(settings.api_keys)
    address = f"{settings.host}:{settings.otlp_grpc_port}"
    try:
        grpc_server = start_grpc_server(
            pipeline, address, settings.max_decompressed_bytes, keys, reuse_port=True
        )
    except OSError as error:
        remote.send(("failed", slot, f"cannot listen for OTLP/gRPC on {address}: {error}"))
        raise SystemExit(1) from None
    app = create_otlp_http_app(pipeline, settings.max_request_bytes, settings.max_decompressed_bytes, keys)
    server = QuietServer(uvicorn.Config(app, host=settings.host, log_level="warning", access_log=False))
    stopped = threading.Event()
    freeze_heap()

    def push_metrics() -> None:
        while not stopped.wait(METRICS_SECONDS):
            remote.send(("metrics", slot, metric_samples()))

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        remote.send(("ready", slot, ""))
        await server.serve(sockets=[http_socket])

    pusher = threading.Thread(target=push_metrics, name="tokenpulse-metrics-push", daemon=True)
    pusher.start()
    try:
        asyncio.run(serve())
    finally:
        grpc_server.stop(grace=5).wait()
        stopped.set()
        remote.send(("metrics", slot, metric_samples()))  # what this worker counted, to the last request
        conn.close()


# -- the daemon's side -----------------------------------------------------------------------------------


class WorkerMetrics:
    """The latest metric samples of each worker, and the last ones of workers that died (counters do
    not go back when a worker is replaced)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[int, list[Any]] = {}
        self._retired: dict[int, list[Any]] = {}
        self._retirements = itertools.count(-1, -1)

    def update(self, slot: int, families: list[Any]) -> None:
        with self._lock:
            self._current[slot] = families

    def retire(self, slot: int) -> None:
        """The worker in ``slot`` is gone: its samples stay in the sums, the slot starts from zero."""
        with self._lock:
            families = self._current.pop(slot, None)
            if families is not None:
                self._retired[next(self._retirements)] = families

    def totals(self) -> dict[str, tuple[str, str, str, dict[tuple[str, tuple[Any, ...]], float]]]:
        """Per family name: its type, help, unit and the sum of every worker's value of each sample."""
        totals: dict[str, tuple[str, str, str, dict[tuple[str, tuple[Any, ...]], float]]] = {}
        with self._lock:
            snapshots = [*self._current.values(), *self._retired.values()]
        for families in snapshots:
            for name, kind, documentation, unit, samples in families:
                values = totals.setdefault(name, (kind, documentation, unit, {}))[3]
                for sample_name, labels, value in samples:
                    values[(sample_name, labels)] = values.get((sample_name, labels), 0.0) + value
        return totals


class SummedRegistry:
    """What /metrics exposes with workers: the daemon's own metrics plus the workers' samples summed in."""

    def __init__(self, own: Collector, workers: WorkerMetrics) -> None:
        self.own = own
        self.workers = workers

    def collect(self) -> Iterable[Metric]:
        totals = self.workers.totals()
        for family in self.own.collect():
            added = totals.pop(family.name, None)
            if added is not None:
                family.samples = _summed(family.samples, added[3])
            yield family
        for name, (kind, documentation, unit, values) in totals.items():  # families only workers have
            family = Metric(name, documentation, kind, unit)
            family.samples = _summed([], values)
            yield family


def _summed(samples: list[Sample], added: dict[tuple[str, tuple[Any, ...]], float]) -> list[Sample]:
    added = dict(added)
    out = []
    for sample in samples:
        value = added.pop((sample.name, tuple(sorted(sample.labels.items()))), 0.0)
        out.append(sample._replace(value=sample.value + value))
    out += [Sample(name, dict(labels), value) for (name, labels), value in added.items()]
    return out


class LogServer:
    """Appends the frames a worker sends to the daemon's RequestLog and answers each."""

    def __init__(self, log: RequestLog, metrics: WorkerMetrics) -> None:
        self.log = log
        self.metrics = metrics
        # Appends wait for fsyncs; many at once share them (group commit), so one thread per append.
        self._executor = ThreadPoolExecutor(64, thread_name_prefix="tokenpulse-append")

    def serve(self, slot: int, conn: Connection) -> threading.Thread:
        """Start answering ``conn`` (a worker's pipe) until the worker closes it or dies."""
        thread = threading.Thread(
            target=self._read, args=(slot, conn), name=f"tokenpulse-worker-{slot}-log", daemon=True
        )
        thread.start()
        return thread

    def _read(self, slot: int, conn: Connection) -> None:
        send_lock = threading.Lock()
        try:
            while True:
                message = conn.recv()
                if message[0] == "append":
                    self._executor.submit(self._append, conn, send_lock, *message[1:])
                elif message[0] == "metrics":
                    self.metrics.update(slot, message[2])
        except (EOFError, OSError):
            pass

    def _append(
        self, conn: Connection, send_lock: threading.Lock, number: int, digest: bytes, frame: bytes
    ) -> None:
        end, error, message = None, "", ""
        try:
            end = self.log.append(frame, digest)
        except WalFull as failure:
            error, message = "full", str(failure)
        except WalClosed as failure:
            error, message = "closed", str(failure)
        except Exception as failure:
            log.exception("append of a worker's request failed")
            error, message = "error", str(failure)
        try:
            with send_lock:
                conn.send(("appended", number, end, error, message))
        except (OSError, ValueError):
            # The worker died before its answer: the request is unacknowledged, and its frame (if any)
            # remembered, so the exporter's retry is dropped as a duplicate.
            pass

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class _WorkerProcess:
    """A worker started as a fresh interpreter running ``main`` (not a fork of this process, which
    runs threads — the writer's, chDB's — a fork would copy mid-operation; nor multiprocessing's spawn,
    which would import the daemon's main module, the whole command line and pandas, into each worker).
    The settings come on its stdin; the pipe and the HTTP socket as inherited descriptors."""

    def __init__(self, settings: Settings, slot: int, http_socket: socket.socket, conn: Connection) -> None:
        fds = (conn.fileno(), http_socket.fileno())
        self._popen = subprocess.Popen(
            [sys.executable, "-c", "from tokenpulse.workers import main; main()", str(slot), *map(str, fds),
             str(os.getpid())],
            stdin=subprocess.PIPE,
            pass_fds=fds,
        )  # fmt: skip
        assert self._popen.stdin is not None
        # A worker dead before reading them fails its start: the daemon hears that on the pipe.
        with contextlib.suppress(BrokenPipeError), self._popen.stdin:
            pickle.dump(settings, self._popen.stdin)
        self.pid = self._popen.pid
        self.sentinel = os.pidfd_open(self.pid)  # readable once the process has exited

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def terminate(self) -> None:
        if self.is_alive():
            self._popen.terminate()

    def kill(self) -> None:
        if self.is_alive():
            self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)
        if not self.is_alive() and self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def main() -> None:
    """Entry point of a worker process (see _WorkerProcess): ``slot``, the pipe's and the HTTP
    socket's descriptors and the daemon's pid as arguments, the pickled settings on stdin."""
    slot, conn_fd, http_fd, daemon_pid = map(int, sys.argv[1:5])
    settings = pickle.load(sys.stdin.buffer)
    worker_main(settings, slot, socket.socket(fileno=http_fd), Connection(conn_fd), daemon_pid)


class WorkerStartFailed(RuntimeError):
    """A worker could not start listening (its message says why)."""


class WorkerPool:
    """``count`` worker processes serving OTLP for this daemon; a worker that dies is replaced."""

    def __init__(self, settings: Settings, count: int, http_socket: socket.socket, log: RequestLog) -> None:
        self.settings = settings
        self.count = count
        self.http_socket = http_socket
        self.metrics = WorkerMetrics()
        self.server = LogServer(log, self.metrics)
        self.processes: dict[int, _WorkerProcess] = {}
        self.restarts = 0
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="tokenpulse-workers", daemon=True)

    def start(self) -> None:
        """Start every worker and return once all listen; WorkerStartFailed (all stopped) if one cannot."""
        try:
            launched = [(slot, self._launch(slot)) for slot in range(self.count)]  # they start in parallel
            for slot, conn in launched:
                self._await_ready(slot, conn)
        except BaseException:
            self.stop()
            raise
        self._monitor.start()

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes.values() if process.pid is not None]

    def _launch(self, slot: int) -> Connection:
        ours, theirs = multiprocessing.Pipe()
        self.processes[slot] = _WorkerProcess(self.settings, slot, self.http_socket, theirs)
        theirs.close()
        return ours

    def _await_ready(self, slot: int, conn: Connection) -> None:
        """Wait for the worker in ``slot`` to listen, then answer its appends."""
        process = self.processes[slot]
        if not conn.poll(READY_SECONDS):
            process.kill()
            raise WorkerStartFailed(f"worker {slot} did not start listening within {READY_SECONDS:.0f}s")
        try:
            kind, _, message = conn.recv()
        except EOFError:
            process.join(5)
            raise WorkerStartFailed(f"worker {slot} exited with {process.exitcode} while starting") from None
        if kind != "ready":
            process.join(5)
            raise WorkerStartFailed(message)
        self.server.serve(slot, conn)

    def _watch(self) -> None:
        try:
            self._replace_dead_workers()
        finally:
            # Only then may this thread end: the workers it started die with it (PR_SET_PDEATHSIG).
            for process in list(self.processes.values()):
                process.join()

    def _replace_dead_workers(self) -> None:
        while not self._stopping.is_set():
            sentinels = {
                process.sentinel: slot for slot, process in self.processes.items() if process.sentinel >= 0
            }
            for ready in multiprocessing.connection.wait(list(sentinels), timeout=0.5):
                if self._stopping.is_set():
                    return
                slot = sentinels[ready]  # type: ignore[index]
                process = self.processes[slot]
                process.join()
                log.error(
                    "worker %d (pid %s) exited with %s: starting another", slot, process.pid, process.exitcode
                )
                self.metrics.retire(slot)
                self.restarts += 1
                while not self._stopping.is_set():
                    try:
                        self._await_ready(slot, self._launch(slot))
                        break
                    except WorkerStartFailed as error:
                        log.error("worker %d failed to start, retrying in 1s: %s", slot, error)
                        self._stopping.wait(1)

    def stop(self) -> None:
        """Stop every worker: each finishes the requests it holds (their appends still answered), then
        exits; one still running after STOP_SECONDS is killed."""
        self._stopping.set()
        for process in self.processes.values():
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for slot, process in self.processes.items():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker %d did not stop within %.0fs: killing it", slot, STOP_SECONDS)
                process.kill()
                process.join(5)
        if self._monitor.is_alive():
            self._monitor.join()
        self.server.close()


def check_port_free(host: str, port: int) -> None:
    """Raise OSError if anything holds ``host:port`` (bound without SO_REUSEPORT: a socket of another
    daemon, or of this daemon's workers, makes it fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
