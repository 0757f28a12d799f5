"""A fake OpenAI-compatible and Anthropic API on loopback, answering the scenarios of ``scenarios.py``.

Responses follow the providers' documented wire formats (OpenAI Chat Completions and Embeddings, Anthropic
Messages), streaming included: OpenAI ``chat.completion.chunk`` events with the usage chunk requested by
``stream_options.include_usage``, Anthropic ``message_start`` ... ``message_stop`` events with the
cumulative usage of ``message_delta``. A stream's headers come ``HEADERS_DELAY_S`` and its first event
``FIRST_TOKEN_DELAY_S`` after the request, so a time to first token is measurable. The scenario is
picked by the ``x-scenario`` request header.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.interop.scenarios import (
    CHUNK_DELAY_S,
    FIRST_TOKEN_DELAY_S,
    HEADERS_DELAY_S,
    SCENARIO_HEADER,
    SCENARIOS,
    SERVER_STALL_S,
    Scenario,
)

_API_PATHS = ("/v1/chat/completions", "/v1/embeddings", "/v1/messages")
_WORDS = ("The", " order", " ships", " on", " Tuesday", ".")
_CREATED = 1_763_700_000


def _openai_usage(s: Scenario) -> dict[str, Any]:
    u = s.usage
    if s.operation == "embeddings":
        return {"prompt_tokens": u["prompt_tokens"], "total_tokens": u["prompt_tokens"]}
    return {
        "prompt_tokens": u["prompt_tokens"],
        "completion_tokens": u["completion_tokens"],
        "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": u["cached_tokens"], "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u["reasoning_tokens"],
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_completion(s: Scenario) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{s.name}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": s.response_model,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(_WORDS), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(s),
    }


def openai_chunks(s: Scenario) -> Iterator[bytes]:
    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        body = {
            "id": f"chatcmpl-{s.name}",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": s.response_model,
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
            "choices": choices,
            "usage": usage,
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for word in _WORDS:
        yield chunk([{"index": 0, "delta": {"content": word}, "finish_reason": None}])
    yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    yield chunk([], _openai_usage(s))  # stream_options={"include_usage": true}
    yield b"data: [DONE]\n\n"


def openai_embeddings(s: Scenario, request: dict[str, Any]) -> dict[str, Any]:
    vector = [0.125, -0.5, 0.25, 1.0]
    encoded: Any = vector
    if request.get("encoding_format") == "base64":  # the openai SDK asks for base64 by default
        encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": encoded}],
        "model": s.response_model,
        "usage": _openai_usage(s),
    }


def openai_error(s: Scenario) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Rate limit reached for {s.request_model}.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def _anthropic_usage(s: Scenario) -> dict[str, Any]:
    u = s.usage
    return {
        "input_tokens": u["input_tokens"],
        "cache_creation_input_tokens": u["cache_creation_input_tokens"],
        "cache_read_input_tokens": u["cache_read_input_tokens"],
        "output_tokens": u["output_tokens"],
        "service_tier": "standard",
    }


def anthropic_message(s: Scenario) -> dict[str, Any]:
    return {
        "id": f"msg_{s.name}",
        "type": "message",
        "role": "assistant",
        "model": s.response_model,
        "content": [{"type": "text", "text": "".join(_WORDS)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(s),
    }


def anthropic_events(s: Scenario) -> Iterator[bytes]:
    def event(kind: str, body: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **body})}\n\n".encode()

    start_usage = {**_anthropic_usage(s), "output_tokens": 1}
    message = {**anthropic_message(s), "content": [], "stop_reason": None, "usage": start_usage}
    yield event("message_start", {"message": message})
    yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield event("ping", {})
    for word in _WORDS:
        yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}})
    yield event("content_block_stop", {"index": 0})
    # message_delta's usage is cumulative and, in the current API, repeats the input side
    final_usage = {k: v for k, v in _anthropic_usage(s).items() if k != "service_tier"}
    yield event(
        "message_delta",
        {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": final_usage},
    )
    yield event("message_stop", {})


def anthropic_error(s: Scenario) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like the real APIs

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests assert on what is stored, not on access logs

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = urlsplit(self.path).path  # the Anthropic SDK's beta client adds ?beta=true
        scenario = SCENARIOS.get(self.headers.get(SCENARIO_HEADER, ""))
        if scenario is None or not path.endswith(_API_PATHS):
            self._json(
                404, {"error": {"message": f"no scenario {self.headers.get(SCENARIO_HEADER)!r} at {path}"}}
            )
            return
        request = json.loads(body or b"{}")
        self.server.requests.append((scenario.name, path))  # type: ignore[attr-defined]
        if scenario.stall:
            time.sleep(SERVER_STALL_S)
            return  # the client has given up by now: close without an answer
        anthropic = path.endswith("/v1/messages")
        if scenario.http_status != 200:
            error = anthropic_error(scenario) if anthropic else openai_error(scenario)
            self._json(scenario.http_status, error)
        elif path.endswith("/v1/embeddings"):
            self._json(200, openai_embeddings(scenario, request))
        elif request.get("stream"):
            self._stream(anthropic_events(scenario) if anthropic else openai_chunks(scenario))
        else:
            self._json(200, anthropic_message(scenario) if anthropic else openai_completion(scenario))

    def _json(self, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_fake")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client that timed out has closed the connection

    def _stream(self, events: Iterator[bytes]) -> None:
        time.sleep(HEADERS_DELAY_S)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        time.sleep(FIRST_TOKEN_DELAY_S - HEADERS_DELAY_S)
        for data in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(CHUNK_DELAY_S)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeLLMServer:
    """Both fake APIs on one loopback port: ``base_url`` for Anthropic, ``openai_base_url`` for OpenAI."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.requests = []  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(scenario, path) of every request served."""
        return self._server.requests  # type: ignore[attr-defined]

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
