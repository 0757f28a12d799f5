"""Is our number the bill? tokenpulse's stored calls against the providers' own reports, per day x model.

Both sides are summed to the same key: day (UTC, by the call's start, as providers bucket requests) x
provider x model, and the service tier too when asked (``by_tier``: only where the report splits its
dollars by tier, as Anthropic's does; OpenAI's cost line items do not). Only the providers the report
covers are compared. Each row gets one verdict, the first that holds:

``not in tokenpulse``  the provider counted usage tokenpulse never received (an uninstrumented service)
``not in report``      tokenpulse stored calls the report does not have (another organization's key?)
``missing calls``      the provider counted more requests than tokenpulse received (beyond the tolerance)
``missing tokens``     the provider counted more input or output tokens
``extra tokens``       tokenpulse counted more tokens than the provider billed (double-counting spans)
``price drift``        the counts agree but the dollars do not: a price changed, or a tier is unpriced
``ok``                 the counts agree and the dollars match to within a cent (or the tolerance)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tokenpulse.reconcile.reports import ProviderRow, merge
from tokenpulse.storage.store import Store

__all__ = ["Reconciled", "Totals", "compare", "format_table", "our_rows", "reconcile", "stored_report"]

# A relative gap below these is noise (late spans, a request retried inside the SDK), not a finding.
CALLS_TOLERANCE = Decimal("0.02")
TOKENS_TOLERANCE = Decimal("0.02")
COST_TOLERANCE = Decimal("0.01")  # relative; and never less than a cent
CENT = Decimal("0.01")

PROVIDER_USAGE_COLUMNS = (
    "day", "provider", "model", "project", "service_tier", "calls", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "output_tokens", "cost_usd", "imported_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts and dollars of one side of a row; None where that side does not report the figure."""

    calls: int | None = None
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Reconciled:
    """One compared row: ``ours`` (tokenpulse) and ``theirs`` (the provider) and the verdict."""

    day: date
    provider: str
    model: str
    service_tier: str
    ours: Totals | None
    theirs: Totals | None
    verdict: str = ""
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dollars as exact decimal strings)."""

        def side(t: Totals | None) -> dict[str, Any] | None:
            if t is None:
                return None
            return {
                "calls": t.calls,
                "input_tokens": t.input_tokens,
                "cache_read_tokens": t.cache_read_tokens,
                "cache_write_tokens": t.cache_write_tokens,
                "output_tokens": t.output_tokens,
                "cost_usd": None if t.cost_usd is None else format(t.cost_usd.normalize(), "f"),
            }

        return {
            "day": self.day.isoformat(),
            "provider": self.provider,
            "model": self.model,
            "service_tier": self.service_tier,
            "tokenpulse": side(self.ours),
            "provider_report": side(self.theirs),
            "verdict": self.verdict,
            "detail": self.detail,
        }


def _key(day: date, provider: str, model: str, tier: str, by_tier: bool) -> tuple[date, str, str, str]:
    return (day, provider, model.lower(), tier if by_tier else "")


def _sum(a: Totals, b: Totals) -> Totals:
    def add(x: Any, y: Any) -> Any:
        return y if x is None else x if y is None else x + y

    return Totals(
        add(a.calls, b.calls),
        a.input_tokens + b.input_tokens,
        a.cache_read_tokens + b.cache_read_tokens,
        a.cache_write_tokens + b.cache_write_tokens,
        a.output_tokens + b.output_tokens,
        add(a.cost_usd, b.cost_usd),
    )


def our_rows(store: Store, start: date, end: date, providers: Sequence[str]) -> list[tuple[Any, ...]]:
    """(day, provider, model, service_tier, calls, input, cache read, cache write, output, cost) of the
    calls tokenpulse stored, ``start`` <= day < ``end``, for ``providers``. Unpriced calls add no
    dollars (their count is in the calls)."""
    return list(
        store.rows(
            "SELECT toDate(time) AS day, provider, model, service_tier, count(), sum(input_tokens),"
            " sum(cache_read_tokens), sum(cache_write_tokens), sum(output_tokens),"
            " sum(toDecimal128(cost_usd, 12))"
            " FROM calls FINAL"
            " WHERE time >= {start:DateTime64(9, 'UTC')} AND time < {end:DateTime64(9, 'UTC')}"
            " AND provider IN {providers:Array(String)}"
            " GROUP BY day, provider, model, service_tier",
            {"start": _midnight(start), "end": _midnight(end), "providers": list(providers)},
        )
    )


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def stored_report(store: Store, start: date, end: date) -> list[ProviderRow]:
    """The provider report rows stored for ``start`` <= day < ``end`` (the latest import of each)."""
    rows = store.rows(
        f"SELECT {', '.join(PROVIDER_USAGE_COLUMNS[:-1])} FROM provider_usage FINAL"
        " WHERE day >= {start:Date} AND day < {end:Date}",
        {"start": start, "end": end},
    )
    return [ProviderRow(*row) for row in rows]


def store_report(store: Store, rows: Iterable[ProviderRow]) -> int:
    """Store report rows in ``provider_usage`` (a later import of a key replaces it); returns the count."""
    now = datetime.now(UTC)
    values = [
        [r.day, r.provider, r.model, r.project, r.service_tier, r.calls, r.input_tokens, r.cache_read_tokens,
         r.cache_write_tokens, r.output_tokens, r.cost_usd, now]
        for r in merge(rows)
    ]  # fmt: skip
    if values:
        store.client.insert("provider_usage", values, column_names=list(PROVIDER_USAGE_COLUMNS))
    return len(values)


def compare(
    ours: Iterable[Sequence[Any]], theirs: Iterable[ProviderRow], by_tier: bool = False
) -> list[Reconciled]:
    """Both sides summed per day x provider x model (x tier), each row with its verdict."""
    mine: dict[tuple[date, str, str, str], Totals] = {}
    for day, provider, model, tier, calls, inp, cr, cw, out, cost in ours:
        key = _key(day, provider, model, tier, by_tier)
        row = Totals(calls, inp, cr, cw, out, cost)
        mine[key] = _sum(mine[key], row) if key in mine else row
    reported: dict[tuple[date, str, str, str], Totals] = {}
    for r in theirs:
        key = _key(r.day, r.provider, r.model, r.service_tier, by_tier)
        row = Totals(r.calls, r.input_tokens, r.cache_read_tokens, r.cache_write_tokens, r.output_tokens,
                     r.cost_usd)  # fmt: skip
        reported[key] = _sum(reported[key], row) if key in reported else row
    result = []
    for key in sorted(mine.keys() | reported.keys()):
        row = Reconciled(*key, mine.get(key), reported.get(key))
        verdict, detail = _verdict(row.ours, row.theirs)
        result.append(replace(row, verdict=verdict, detail=detail))
    return result


def _gap(ours: int, theirs: int) -> Decimal:
    """How much more the provider counted, relative to it (negative: tokenpulse counted more)."""
    return Decimal(theirs - ours) / theirs if theirs else Decimal(0 if not ours else -1)


def _pct(value: Decimal) -> str:
    return f"{value * 100:.1f}%"


def _verdict(ours: Totals | None, theirs: Totals | None) -> tuple[str, str]:
    if theirs is None:
        return "not in report", "tokenpulse stored calls the provider report does not list"
    if ours is None:
        return "not in tokenpulse", "the provider counted usage tokenpulse never received"
    if theirs.calls is not None and ours.calls is not None:
        gap = _gap(ours.calls, theirs.calls)
        if gap > CALLS_TOLERANCE:
            missing = theirs.calls - ours.calls
            return "missing calls", f"{missing} of {theirs.calls} requests ({_pct(gap)}) not received"
    for name in ("input_tokens", "output_tokens"):
        mine, billed = getattr(ours, name), getattr(theirs, name)
        if billed == 0 and mine == 0:
            continue  # a cost-only row (a cost report without a usage report) has no counts to compare
        gap = _gap(mine, billed)
        if gap > TOKENS_TOLERANCE:
            return "missing tokens", f"{name}: {billed - mine} of {billed} ({_pct(gap)}) not received"
        if gap < -TOKENS_TOLERANCE and billed:
            return "extra tokens", f"{name}: {mine - billed} more than the provider billed ({billed})"
    if theirs.cost_usd is not None and ours.cost_usd is not None:
        diff = ours.cost_usd - theirs.cost_usd
        allowed = max(CENT, abs(theirs.cost_usd) * COST_TOLERANCE)
        if abs(diff) > allowed:
            direction = "above" if diff > 0 else "below"
            return "price drift", f"tokenpulse's price is ${abs(diff):.2f} {direction} the bill"
    return "ok", ""


def reconcile(
    store: Store, report: Iterable[ProviderRow], start: date, end: date, by_tier: bool = False
) -> list[Reconciled]:
    """Compare ``report`` (rows for ``start`` <= day < ``end``) with what tokenpulse stored."""
    theirs = [r for r in report if start <= r.day < end]
    providers = sorted({r.provider for r in theirs})
    return compare(our_rows(store, start, end, providers), theirs, by_tier)


def _cents(amount: Decimal | None) -> str:
    return "-" if amount is None else f"{amount.quantize(CENT, rounding=ROUND_HALF_EVEN):,}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_table(rows: Sequence[Reconciled]) -> str:
    """The reconciliation as a fixed-width table: per row both sides' calls, tokens and dollars."""
    header = ("day", "provider", "model", "tier", "calls tp/prov", "input tp/prov", "output tp/prov",
              "cache w tp/prov", "$ tokenpulse", "$ provider", "verdict")  # fmt: skip
    lines = [header]
    empty = Totals(calls=None)
    for r in rows:
        o, t = r.ours or empty, r.theirs or empty
        lines.append(
            (
                r.day.isoformat(),
                r.provider,
                r.model,
                r.service_tier or "-",
                f"{_count(o.calls if r.ours else None)}/{_count(t.calls)}",
                f"{_count(o.input_tokens)}/{_count(t.input_tokens)}",
                f"{_count(o.output_tokens)}/{_count(t.output_tokens)}",
                f"{_count(o.cache_write_tokens)}/{_count(t.cache_write_tokens)}",
                _cents(o.cost_usd),
                _cents(t.cost_usd),
                r.verdict + (f": {r.detail}" if r.detail else ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )
