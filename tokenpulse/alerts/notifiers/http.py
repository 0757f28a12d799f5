"""What the HTTP notifiers share: a POST of JSON whose outcome becomes a DeliveryError when it failed."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from tokenpulse.alerts.delivery import DeliveryError

TIMEOUT = httpx.Timeout(10.0)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either delay-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def check_status(what: str, status: int, headers: Mapping[str, str], body: str) -> None:
    """Raise unless 2xx: 429 and 5xx are retryable (429 after Retry-After), every other 4xx is not."""
    if 200 <= status < 300:
        return
    retryable = status == 429 or status >= 500
    raise DeliveryError(
        f"{what}: HTTP {status}: {body[:300]}", retryable, retry_after_seconds(headers.get("retry-after"))
    )


def post_json(client: httpx.Client, what: str, url: str, body: Any) -> httpx.Response:
    try:
        response = client.post(url, json=body)
    except httpx.TransportError as error:
        raise DeliveryError(f"{what}: {type(error).__name__}: {error}", retryable=True) from error
    check_status(what, response.status_code, response.headers, response.text)
    return response


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
