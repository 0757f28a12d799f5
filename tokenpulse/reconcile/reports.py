"""The providers' own usage and cost reports, read into one row shape: what the provider counted and billed
per day x model (x project/workspace, x service tier).

Sources, each in its documented JSON shape (written from the providers' API references; no request to a
provider is ever made by the tests, which serve these shapes from local fake servers):

* OpenAI organization **Usage API**, ``GET /v1/organization/usage/completions``
  (https://platform.openai.com/docs/api-reference/usage/completions): a ``page`` of daily ``bucket`` objects
  (``start_time``/``end_time`` unix seconds), each with ``results`` of
  ``organization.usage.completions.result``: ``input_tokens`` (cached included), ``input_cached_tokens``,
  ``output_tokens``, ``num_model_requests`` and the ``group_by`` fields (``model``, ``project_id``,
  ``batch``, ``service_tier``); pages chain through ``has_more`` / ``next_page`` (passed back as ``page``).
* OpenAI **Costs API**, ``GET /v1/organization/costs``
  (https://platform.openai.com/docs/api-reference/usage/costs): buckets of ``organization.costs.result`` with
  ``amount: {value, currency}`` in dollars, grouped by ``line_item`` (``"<model>, input"``) and
  ``project_id``.
* Anthropic Admin API **usage report**, ``GET /v1/organizations/usage_report/messages``
  (https://docs.anthropic.com/en/api/admin-api/usage-cost/get-messages-usage-report): ``data`` buckets
  (``starting_at``/``ending_at`` RFC 3339) with ``results`` of ``uncached_input_tokens``,
  ``cache_read_input_tokens``, ``cache_creation: {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}``,
  ``output_tokens`` and the ``group_by[]`` fields (``model``, ``workspace_id``, ``service_tier``); it counts
  no requests. Pages chain through ``has_more`` / ``next_page``.
* Anthropic **cost report**, ``GET /v1/organizations/cost_report``
  (https://docs.anthropic.com/en/api/admin-api/usage-cost/get-cost-report): results with ``amount`` as a
  decimal string **in cents** (lowest currency units), ``model``, ``workspace_id``, ``service_tier``.
* A **flat** export (any provider, e.g. a Gemini/Vertex billing export reshaped): ``{"rows": [{"day",
  "provider", "model", "project", "service_tier", "calls", "input_tokens", "cache_read_tokens",
  "cache_write_tokens", "output_tokens", "cost_usd"}]}``.

The same JSON saved to files (one page or a list of pages per file) is read by ``read_files``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "ProviderRow",
    "ReportError",
    "fetch_anthropic",
    "fetch_openai",
    "merge",
    "parse_document",
    "read_files",
]

OPENAI_BASE = "https://api.openai.com"
ANTHROPIC_BASE = "https://api.anthropic.com"
_ANTHROPIC_VERSION = "2023-06-01"
_MAX_PAGES = 1_000  # a server that never stops saying has_more is a bug, not a month of data


class ReportError(RuntimeError):
    """A report could not be read: the message names the source and the reason."""


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """What a provider counted and billed for one day x model (x project, x tier).

    Token semantics are tokenpulse's (``buffer.records``): ``input_tokens`` includes cache reads and
    writes. ``calls`` and ``cost_usd`` are None where the report does not say (Anthropic's usage report
    counts no requests; a usage report alone has no dollars).
    """

    day: date
    provider: str  # canonical, as on calls ("openai", "anthropic", "gcp.gemini")
    model: str
    project: str = ""  # OpenAI project id, Anthropic workspace id
    service_tier: str = ""
    calls: int | None = None
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None

    @property
    def key(self) -> tuple[date, str, str, str, str]:
        return (self.day, self.provider, self.model, self.project, self.service_tier)


def _day(value: Any, where: str) -> date:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).date()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()
        except ValueError:
            pass
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ReportError(f"{where}: not a time: {value!r}")


def _int(result: Mapping[str, Any], key: str, where: str) -> int:
    value = result.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}: {key} must be a count, got {value!r}")
    return value


def _usd(value: Any, where: str, scale: Decimal = Decimal(1)) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ReportError(f"{where}: not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ReportError(f"{where}: not an amount: {value!r}")
    return amount * scale


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _tier(value: Any) -> str:
    text = _str(value).strip().lower()
    return "standard" if text == "default" else text


def _buckets(page: Mapping[str, Any], where: str) -> Iterator[tuple[date, Mapping[str, Any]]]:
    data = page.get("data")
    if not isinstance(data, list):
        raise ReportError(f"{where}: no data list")
    for bucket in data:
        if not isinstance(bucket, dict):
            raise ReportError(f"{where}: a bucket is not an object")
        start = bucket.get("start_time", bucket.get("starting_at"))
        day = _day(start, where)
        for result in bucket.get("results") or ():
            if not isinstance(result, dict):
                raise ReportError(f"{where}: a result is not an object")
            yield day, result


def _openai_usage(page: Mapping[str, Any], where: str) -> Iterator[ProviderRow]:
    for day, r in _buckets(page, where):
        # The batch group says whether the requests went through the Batch API: billed as the batch tier.
        tier = "batch" if r.get("batch") is True else _tier(r.get("service_tier"))
        yield ProviderRow(
            day,
            "openai",
            _str(r.get("model")).lower(),
            _str(r.get("project_id")),
            tier,
            calls=_int(r, "num_model_requests", where),
            input_tokens=_int(r, "input_tokens", where),
            cache_read_tokens=_int(r, "input_cached_tokens", where),
            output_tokens=_int(r, "output_tokens", where),
        )


def _openai_costs(page: Mapping[str, Any], where: str) -> Iterator[ProviderRow]:
    for day, r in _buckets(page, where):
        amount = r.get("amount")
        if not isinstance(amount, dict) or str(amount.get("currency", "usd")).lower() != "usd":
            raise ReportError(f"{where}: amount must be {{value, currency: usd}}, got {amount!r}")
        # line_item is "<model>, <kind>" ("gpt-4o-2024-08-06, input"); a line item without a model is
        # kept under its own name so its dollars are not lost from the day's total.
        model = _str(r.get("line_item")).split(", ")[0].strip().lower()
        yield ProviderRow(
            day, "openai", model, _str(r.get("project_id")), cost_usd=_usd(amount.get("value"), where)
        )


def _anthropic_usage(page: Mapping[str, Any], where: str) -> Iterator[ProviderRow]:
    for day, r in _buckets(page, where):
        creation = r.get("cache_creation") or {}
        if not isinstance(creation, dict):
            raise ReportError(f"{where}: cache_creation must be an object")
        writes = _int(creation, "ephemeral_5m_input_tokens", where) + _int(
            creation, "ephemeral_1h_input_tokens", where
        )
        reads = _int(r, "cache_read_input_tokens", where)
        yield ProviderRow(
            day,
            "anthropic",
            _str(r.get("model")).lower(),
            _str(r.get("workspace_id")),
            _tier(r.get("service_tier")),
            input_tokens=_int(r, "uncached_input_tokens", where) + reads + writes,
            cache_read_tokens=reads,
            cache_write_tokens=writes,
            output_tokens=_int(r, "output_tokens", where),
        )


_CENT = Decimal("0.01")


def _anthropic_costs(page: Mapping[str, Any], where: str) -> Iterator[ProviderRow]:
    for day, r in _buckets(page, where):
        if str(r.get("currency", "USD")).upper() != "USD":
            raise ReportError(f"{where}: currency {r.get('currency')!r} is not USD")
        yield ProviderRow(
            day,
            "anthropic",
            _str(r.get("model")).lower(),
            _str(r.get("workspace_id")),
            _tier(r.get("service_tier")),
            cost_usd=_usd(r.get("amount"), where, _CENT),  # the report gives cents
        )


def _flat(document: Mapping[str, Any], where: str) -> Iterator[ProviderRow]:
    for row in document.get("rows") or ():
        if not isinstance(row, dict):
            raise ReportError(f"{where}: a row is not an object")
        calls = row.get("calls")
        cost = row.get("cost_usd")
        yield ProviderRow(
            _day(row.get("day"), where),
            _str(row.get("provider")),
            _str(row.get("model")).lower(),
            _str(row.get("project")),
            _tier(row.get("service_tier")),
            calls=None if calls is None else _int(row, "calls", where),
            input_tokens=_int(row, "input_tokens", where),
            cache_read_tokens=_int(row, "cache_read_tokens", where),
            cache_write_tokens=_int(row, "cache_write_tokens", where),
            output_tokens=_int(row, "output_tokens", where),
            cost_usd=None if cost is None else _usd(cost, where),
        )


def _kind(page: Mapping[str, Any]) -> str:
    """Which report a page is, from its results' documented fields."""
    if "rows" in page:
        return "flat"
    for bucket in page.get("data") or ():
        for r in (bucket.get("results") or ()) if isinstance(bucket, dict) else ():
            kind = str(r.get("object", ""))
            if kind.startswith("organization.usage.completions"):
                return "openai-usage"
            if kind.startswith("organization.costs"):
                return "openai-costs"
            if "uncached_input_tokens" in r:
                return "anthropic-usage"
            if "amount" in r:
                return "anthropic-costs"
    return "empty"


_PARSERS = {
    "openai-usage": _openai_usage,
    "openai-costs": _openai_costs,
    "anthropic-usage": _anthropic_usage,
    "anthropic-costs": _anthropic_costs,
    "flat": _flat,
}


def parse_document(document: Any, where: str) -> list[ProviderRow]:
    """Every row of one page (or a list of pages) of any of the supported reports."""
    pages = document if isinstance(document, list) else [document]
    rows: list[ProviderRow] = []
    for page in pages:
        if not isinstance(page, dict):
            raise ReportError(f"{where}: expected a report page (a JSON object)")
        kind = _kind(page)
        if kind != "empty":
            rows.extend(_PARSERS[kind](page, where))
    return rows


def read_files(paths: Iterable[Path]) -> list[ProviderRow]:
    """The rows of report pages saved as JSON files (as the APIs return them, or the flat shape)."""
    rows: list[ProviderRow] = []
    for path in paths:
        try:
            document = json.loads(path.read_text())
        except OSError as error:
            raise ReportError(f"{path}: cannot read it: {error.strerror}") from None
        except ValueError as error:
            raise ReportError(f"{path}: not JSON: {error}") from None
        rows.extend(parse_document(document, str(path)))
    return rows


def _pages(
    client: httpx.Client, url: str, params: list[tuple[str, str | int]], headers: Mapping[str, str]
) -> Iterator[dict[str, Any]]:
    """Every page of a paginated report: ``next_page`` goes back as ``page`` while ``has_more``."""
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        query = params + ([("page", cursor)] if cursor else [])
        try:
            response = client.get(url, params=query, headers=dict(headers))
        except httpx.HTTPError as error:
            raise ReportError(f"{url}: {type(error).__name__}: {error}") from None
        if response.status_code != 200:
            raise ReportError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            page = response.json()
        except ValueError:
            raise ReportError(f"{url}: the answer is not JSON") from None
        yield page
        cursor = page.get("next_page")
        if not page.get("has_more") or not cursor:
            return
    raise ReportError(f"{url}: more than {_MAX_PAGES} pages")


def fetch_openai(
    admin_key: str, start: date, end: date, base_url: str = OPENAI_BASE, timeout: float = 30.0
) -> list[ProviderRow]:
    """Usage (by model, project, batch, service tier) and costs (by line item, project), per day, for
    ``start`` <= day < ``end`` from the OpenAI organization APIs."""
    begin = int(datetime.combine(start, datetime.min.time(), UTC).timestamp())
    finish = int(datetime.combine(end, datetime.min.time(), UTC).timestamp())
    window: list[tuple[str, str | int]] = [
        ("start_time", begin),
        ("end_time", finish),
        ("bucket_width", "1d"),
    ]
    headers = {"Authorization": f"Bearer {admin_key}"}
    groups = [("group_by", g) for g in ("model", "project_id", "batch", "service_tier")]
    usage = [*window, ("limit", 31), *groups]
    costs = [*window, ("limit", 180), ("group_by", "line_item"), ("group_by", "project_id")]
    rows: list[ProviderRow] = []
    with httpx.Client(timeout=timeout) as client:
        for page in _pages(client, f"{base_url}/v1/organization/usage/completions", usage, headers):
            rows.extend(_openai_usage(page, "OpenAI usage"))
        for page in _pages(client, f"{base_url}/v1/organization/costs", costs, headers):
            rows.extend(_openai_costs(page, "OpenAI costs"))
    return rows


def fetch_anthropic(
    admin_key: str, start: date, end: date, base_url: str = ANTHROPIC_BASE, timeout: float = 30.0
) -> list[ProviderRow]:
    """The Anthropic Admin API usage report (by model, workspace, service tier) and cost report, per day."""
    window: list[tuple[str, str | int]] = [
        ("starting_at", f"{start.isoformat()}T00:00:00Z"),
        ("ending_at", f"{end.isoformat()}T00:00:00Z"),
        ("bucket_width", "1d"),
    ]
    headers = {"x-api-key": admin_key, "anthropic-version": _ANTHROPIC_VERSION}
    groups = [("group_by[]", g) for g in ("model", "workspace_id", "service_tier")]
    rows: list[ProviderRow] = []
    with httpx.Client(timeout=timeout) as client:
        usage_url = f"{base_url}/v1/organizations/usage_report/messages"
        for page in _pages(client, usage_url, [*window, ("limit", 31), *groups], headers):
            rows.extend(_anthropic_usage(page, "Anthropic usage report"))
        cost_groups = [("group_by[]", "workspace_id"), ("group_by[]", "description")]
        cost_url = f"{base_url}/v1/organizations/cost_report"
        for page in _pages(client, cost_url, [*window, *cost_groups], headers):
            rows.extend(_anthropic_costs(page, "Anthropic cost report"))
    return rows


def merge(rows: Iterable[ProviderRow]) -> list[ProviderRow]:
    """One row per key: usage and cost rows of the same day x provider x model x project x tier summed
    (a cost report's line items are several rows per model). Calls and dollars stay None where no row of
    the key reported them."""
    merged: dict[tuple[date, str, str, str, str], ProviderRow] = {}
    for row in rows:
        found = merged.get(row.key)
        if found is None:
            merged[row.key] = row
            continue
        merged[row.key] = replace(
            found,
            calls=_add(found.calls, row.calls),
            input_tokens=found.input_tokens + row.input_tokens,
            cache_read_tokens=found.cache_read_tokens + row.cache_read_tokens,
            cache_write_tokens=found.cache_write_tokens + row.cache_write_tokens,
            output_tokens=found.output_tokens + row.output_tokens,
            cost_usd=_add(found.cost_usd, row.cost_usd),
        )
    return sorted(merged.values(), key=lambda r: r.key)


def _add(a: Any, b: Any) -> Any:
    """a + b where None is "not reported" (not zero): None only when both are."""
    if a is None:
        return b
    return a if b is None else a + b
