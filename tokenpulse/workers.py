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
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import uvicorn
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from tokenpulse.auth import ApiKeys
from tokenpulse.buffer.wal import WalClosed, WalFull, WriteAheadLog
from tokenpulse.collector.grpc_receiver import start_grpc_server
from tokenpulse.collector.http_receiver import create_otlp_http_app
from tokenpulse.collector.pipeline import LocalRequestLog, pipeline_for
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
                # The frame goes as raw bytes after a small header: pickling it would copy it here, and
                # unpickling copy it again in the daemon.
                self._conn.send(("append", number, digest))
                self._conn.send_bytes(frame)
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
                _, answers = self._conn.recv()  # ("appended", [(number, end, error, message), ...])
                with self._lock:
                    replies = [(self._pending.pop(answer[0]), answer) for answer in answers]
                for reply, (_, end, error, message) in replies:
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


class _MessageReader:
    """Reads the messages a ``Connection`` sends (its "!i" length header, then the bytes) into one
    buffer reused for every message, several at a read when they are there.

    ``Connection.recv_bytes`` allocates each chunk it reads and the whole message once more: with
    glibc's mmap threshold fixed at 128 KiB (``memory.tune_allocator``) every ~160 KiB frame then cost
    fresh pages several times over, which made most of the daemon's receiving CPU system time.
    """

    def __init__(self, fd: int, size: int = 1 << 20) -> None:
        self._fd = fd
        self._view = memoryview(bytearray(size))
        self._start = 0  # the unread bytes are _view[_start:_end]
        self._end = 0

    def next(self) -> memoryview:
        """The next message; valid until the following call. EOFError once the sender is gone."""
        self._fill(_LENGTH.size)
        (length,) = _LENGTH.unpack_from(self._view, self._start)
        if length < 0:  # Connection's header of a message of 2 GiB or more: never sent here
            raise OSError("a message too long for the log channel")
        self._fill(_LENGTH.size + length)
        begin = self._start + _LENGTH.size
        self._start = begin + length
        return self._view[begin : self._start]

    def _fill(self, wanted: int) -> None:
        """Read until ``wanted`` unread bytes are buffered."""
        while self._end - self._start < wanted:
            if self._start + wanted > len(self._view):
                # Move the unread bytes to the front, into a larger buffer if the message needs one
                # (a new buffer: the previous message's view may still be referenced).
                unread = self._view[self._start : self._end]
                view = self._view if wanted <= len(self._view) else memoryview(bytearray(2 * wanted))
                view[: len(unread)] = unread
                self._view, self._start, self._end = view, 0, len(unread)
            read = os.readv(self._fd, [self._view[self._end :]])
            if read == 0:
                raise EOFError
            self._end += read


_LENGTH = struct.Struct("!i")  # multiprocessing.Connection's message header


class _Answers:
    """Answers a worker's appends once the log is durable through them, in the order they were
    written, all those the same fsync made durable in one message (one thread per worker)."""

    def __init__(self, conn: Connection, wal: WriteAheadLog, slot: int) -> None:
        self._conn = conn
        self._wal = wal
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, int, int | None, str, str]] = []  # (durable through, answer...)
        self._closing = False
        self.thread = threading.Thread(
            target=self._run, name=f"tokenpulse-worker-{slot}-answers", daemon=True
        )
        self.thread.start()

    def add(self, durable_through: int, number: int, end: int | None, error: str, message: str) -> None:
        with self._cond:
            self._waiting.append((durable_through, number, end, error, message))
            self._cond.notify()

    def close(self) -> None:
        """Answer what was added, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closing:
                    self._cond.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting, []
            failure, text = "", ""
            try:
                self._wal.wait_durable(max(item[0] for item in batch))
            except WalClosed as closed:
                failure, text = "closed", str(closed)
            except Exception as error:
                log.exception("fsync of the write-ahead log failed")
                failure, text = "error", str(error)
            answers = [
                (number, end, error, message) if error or not failure else (number, None, failure, text)
                for _, number, end, error, message in batch
            ]
            # The worker died before its answers: those requests are unacknowledged, and their frames
            # (if any) remembered, so the exporters' retries are dropped as duplicates.
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("appended", answers))


class LogServer:
    """Appends the frames a worker sends to the daemon's log and answers each once it is durable.

    One thread per worker reads its frames and writes them to the log in order; another waits for the
    fsyncs (shared with every other worker's frames: group commit) and answers."""

    def __init__(self, log: LocalRequestLog, metrics: WorkerMetrics) -> None:
        self.log = log
        self.metrics = metrics
        self._answers: list[_Answers] = []

    def serve(self, slot: int, conn: Connection) -> threading.Thread:
        """Start answering ``conn`` (a worker's pipe) until the worker closes it or dies."""
        answers = _Answers(conn, self.log.wal, slot)
        self._answers.append(answers)
        thread = threading.Thread(
            target=self._read, args=(slot, conn, answers), name=f"tokenpulse-worker-{slot}-log", daemon=True
        )
        thread.start()
        return thread

    def _read(self, slot: int, conn: Connection, answers: _Answers) -> None:
        reader = _MessageReader(conn.fileno())
        try:
            while True:
                message = pickle.loads(reader.next())
                if message[0] == "append":
                    _, number, digest = message
                    answers.add(*self._write(number, reader.next(), digest))
                elif message[0] == "metrics":
                    self.metrics.update(slot, message[2])
        except (EOFError, OSError):
            pass
        finally:
            answers.close()

    def _write(self, number: int, frame: memoryview, digest: bytes) -> tuple[int, int, int | None, str, str]:
        """Write ``frame`` (not yet durable); what ``_Answers.add`` takes."""
        try:
            durable_through, written = self.log.write(frame, digest)
        except WalFull as failure:
            return 0, number, None, "full", str(failure)
        except WalClosed as failure:
            return 0, number, None, "closed", str(failure)
        except Exception as failure:
            log.exception("append of a worker's request failed")
            return 0, number, None, "error", str(failure)
        return durable_through, number, durable_through if written else None, "", ""

    def close(self) -> None:
        """Wait until every request received is answered."""
        for answers in self._answers:
            answers.close()
            answers.thread.join(STOP_SECONDS)


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

    def __init__(
        self, settings: Settings, count: int, http_socket: socket.socket, log: LocalRequestLog
    ) -> None:
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
