"""The commands that talk to a running daemon (`summary`, `silence`) call its API through here.

The daemon is found at ``--api``, else ``TOKENPULSE_API`` (the runbooks' variable), else port
``TOKENPULSE_API_PORT`` (the daemon's own setting) on the loopback. With API keys configured on the
daemon, the key is taken from ``TOKENPULSE_API_KEY``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    """The daemon could not be reached, or refused the request; the message says which."""


def default_api_url(environ: dict[str, str] | None = None) -> str:
    """Where the daemon's API is when ``--api`` is not given: the same variables the daemon reads."""
    env = os.environ if environ is None else environ
    if env.get("TOKENPULSE_API"):
        return env["TOKENPULSE_API"]
    return f"http://127.0.0.1:{env.get('TOKENPULSE_API_PORT') or 8000}"


API_HELP = (
    "the daemon's API base URL (default: env TOKENPULSE_API, else http://127.0.0.1:$TOKENPULSE_API_PORT, "
    "else port 8000)"
)


def call_api(base_url: str | None, method: str, path: str, body: Any = None) -> Any:
    """``method`` ``path`` on the daemon at ``base_url`` (None: the default); the decoded JSON answer."""
    base_url = base_url or default_api_url()
    headers = {"Content-Type": "application/json"}
    if key := os.environ.get("TOKENPULSE_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    url = f"{base_url.rstrip('/')}{path}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise ApiError(_refusal(error.code, error.read().decode(errors="replace"))) from None
    except urllib.error.URLError as error:
        raise ApiError(f"cannot reach the daemon at {base_url}: {error.reason}") from None


def _refusal(status: int, text: str) -> str:
    """One line for a refused request: the API's own ``detail`` (not its JSON), and what to do on a 401."""
    try:
        detail = json.loads(text)["detail"]
    except (ValueError, KeyError, TypeError):
        detail = text.strip()
    if status == 401:
        return f"the daemon needs an API key (HTTP 401: {detail}): set TOKENPULSE_API_KEY"
    return f"{detail} (HTTP {status})" if isinstance(detail, str) else f"HTTP {status}: {json.dumps(detail)}"
