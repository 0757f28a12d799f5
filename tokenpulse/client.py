"""The commands that talk to a running daemon (`summary`, `silence`) call its API through here.

With API keys configured on the daemon, the key is taken from ``TOKENPULSE_API_KEY``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    """The daemon could not be reached, or refused the request; the message says which."""


def call_api(base_url: str, method: str, path: str, body: Any = None) -> Any:
    """``method`` ``path`` on the daemon at ``base_url``; the decoded JSON answer."""
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
        raise ApiError(f"{error.code} {error.read().decode(errors='replace')}") from None
    except urllib.error.URLError as error:
        raise ApiError(f"cannot reach the daemon at {base_url}: {error.reason}") from None
