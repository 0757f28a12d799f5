"""Run `tokenpulse serve` as a real subprocess on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = ("tokenpulse.cli",),
        workers: int = 1,
    ) -> None:
        self.data_dir = data_dir
        # One process unless a test asks for workers (`serve`'s own default is one per core).
        self.workers = workers
        self.env = env or {}
        self.launcher = launcher  # the module run with -m, and its arguments before `serve`
        self.http_port, self.grpc_port, self.api_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"daemon-{self.api_port}.log"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 60) -> Daemon:
        """Start and wait until it answers. On a first start, a port that another process took between
        ``free_port`` and the daemon's bind (the daemon then refuses to start) is replaced, up to 3 times."""
        first = self.process is None
        for _ in range(3 if first else 1):
            try:
                return self._start(timeout)
            except RuntimeError as error:
                if not first or "address already in use" not in str(error):
                    raise
                self.http_port, self.grpc_port, self.api_port = free_port(), free_port(), free_port()
        return self._start(timeout)

    def _start(self, timeout: float) -> Daemon:
        args = [
            sys.executable, "-m", *self.launcher, "serve", "--data", str(self.data_dir),
            "--otlp-http-port", str(self.http_port), "--otlp-grpc-port", str(self.grpc_port),
            "--api-port", str(self.api_port), "--workers", str(self.workers),
        ]  # fmt: skip
        log = self.log_path.open("ab")
        environment = {**os.environ, **self.env}
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=environment)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.api}/healthz", timeout=1).status_code == 200 and self._grpc_listening():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"daemon did not start:\n{self.log()}")

    def _grpc_listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.grpc_port)) == 0

    def worker_pids(self) -> list[int]:
        """The processes of `serve --workers N`."""
        assert self.process is not None
        # Every thread's children: a replacement worker is started by the daemon's monitoring thread.
        tasks = Path(f"/proc/{self.process.pid}/task").iterdir()
        children = [child for task in tasks for child in _read_gone_empty(task / "children").split()]
        marker = "from tokenpulse.workers import main"
        return [int(c) for c in children if marker in _read_gone_empty(Path(f"/proc/{c}/cmdline"))]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: a graceful stop writes everything acknowledged."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


def _read_gone_empty(path: Path) -> str:
    """A /proc file's text, or "" once its thread or process has ended (between listing and reading)."""
    try:
        return path.read_text(errors="surrogateescape")
    except (FileNotFoundError, ProcessLookupError):
        return ""
