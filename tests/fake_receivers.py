"""Fake Slack (incoming webhook and Web API), PagerDuty, webhook and Alertmanager servers on loopback.

Each records every request (path, headers, JSON body) and answers like the real service; a test can
queue failures (status codes, with headers) to be answered before the normal answers resume.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON body


@dataclass
class FakeServer:
    answer: Callable[[Request], Answer]
    requests: list[Request] = field(default_factory=list)
    failures: list[Answer] = field(default_factory=list)
    url: str = ""

    def fail_next(self, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
        self.failures.append((status, headers or {}, body if body is not None else {"error": "fake failure"}))

    def bodies(self, path: str | None = None) -> list[Any]:
        return [r.body for r in self.requests if path is None or r.path == path]


@contextmanager
def serve(answer: Callable[[Request], Answer]) -> Iterator[FakeServer]:
    fake = FakeServer(answer)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw) if raw else None
            request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with lock:
                failure = fake.failures.pop(0) if fake.failures else None
                status, headers, reply = failure or fake.answer(request)
                if failure is None:
                    fake.requests.append(request)
            encoded = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def slack_answer() -> Callable[[Request], Answer]:
    """Slack: the Web API (chat.postMessage, chat.update) and incoming webhooks."""
    counter = itertools.count(1)

    def answer(request: Request) -> Answer:
        if request.path.startswith("/api/chat.postMessage"):
            return 200, {}, {"ok": True, "channel": "C0ALERTS", "ts": f"1700000000.{next(counter):06d}"}
        if request.path.startswith("/api/chat.update"):
            return 200, {}, {"ok": True, "channel": request.body["channel"], "ts": request.body["ts"]}
        return 200, {}, "ok"

    return answer


@contextmanager
def all_receivers() -> Iterator[dict[str, FakeServer]]:
    """A fake Slack Web API, PagerDuty, webhook and Alertmanager."""
    with serve(slack_answer()) as slack, serve(accepted) as pagerduty, serve(accepted) as hook, \
            serve(accepted) as alertmanager:  # fmt: skip
        yield {"slack": slack, "pagerduty": pagerduty, "webhook": hook, "alertmanager": alertmanager}


def receiver_environment(receivers: dict[str, FakeServer]) -> dict[str, str]:
    """The daemon's environment variables that point every receiver at ``receivers``."""
    return {
        "TOKENPULSE_SLACK_BOT_TOKEN": "xoxb-test",
        "TOKENPULSE_SLACK_CHANNEL": "#oncall",
        "TOKENPULSE_SLACK_API_URL": receivers["slack"].url + "/api/",
        "TOKENPULSE_PAGERDUTY_ROUTING_KEY": "R" * 32,
        "TOKENPULSE_PAGERDUTY_EVENTS_URL": receivers["pagerduty"].url + "/v2/enqueue",
        "TOKENPULSE_WEBHOOK_URL": receivers["webhook"].url + "/hook",
        "TOKENPULSE_ALERTMANAGER_URL": receivers["alertmanager"].url,
    }


def accepted(request: Request) -> Answer:
    if request.path == "/v2/enqueue":  # PagerDuty
        return (
            202,
            {},
            {"status": "success", "message": "Event processed", "dedup_key": request.body["dedup_key"]},
        )
    return 200, {}, {}
