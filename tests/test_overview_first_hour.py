"""The overview page and its timeseries API tell a new user the truth (issue 17): spend of calls whose model
has no known price is unknown — a gap, a marked lower bound and an "N calls unpriced" note — never a silent
$0; first calls are not "no calls"; the status filter covers the statuses calls have."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.daemon import Daemon
from tests.factories import BASE_TIME_NS, call_record, store_records
from tests.test_overview import chromium
from tokenpulse.storage.store import Store
from tokenpulse.web import WEB_DIR

BASE = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)  # a whole minute an hour ago
MINUTE_NS = 60 * 10**9
PRICE = Decimal("0.004250000000")  # call_record's cost of one priced call
PRIVATE = {
    "request_model": "acme-private-7b",
    "response_model": "",
    "cost_usd": Decimal(0),
    "price_known": False,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon over: minute 0, two priced calls; minute 10, one priced and one unpriced; minute 20, two
    unpriced only; and a service `private` whose only calls are unpriced (minute 30)."""
    directory = tmp_path_factory.mktemp("unpriced")
    data = directory / "data"
    store = Store.open(data)
    try:
        store.migrate()
        at = {"time_unix_nano": BASE_TIME_NS}
        store_records(store, directory, [
            call_record(**at), call_record(**at),
            call_record(time_unix_nano=BASE_TIME_NS + 10 * MINUTE_NS),
            call_record(time_unix_nano=BASE_TIME_NS + 10 * MINUTE_NS, **PRIVATE),
            call_record(time_unix_nano=BASE_TIME_NS + 20 * MINUTE_NS, **PRIVATE),
            call_record(time_unix_nano=BASE_TIME_NS + 20 * MINUTE_NS, **PRIVATE),
            call_record(time_unix_nano=BASE_TIME_NS + 30 * MINUTE_NS, service="private", **PRIVATE),
        ])  # fmt: skip
    finally:
        store.close()
    running = Daemon(data).start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def test_timeseries_says_unknown_spend_instead_of_zero(served: Daemon) -> None:
    window = {"start": BASE.isoformat(), "end": (BASE + timedelta(minutes=25)).isoformat(), "step": 60}
    body = httpx.get(f"{served.api}/api/v1/timeseries", params={**window, "service": "checkout"}).json()
    points = {
        round((datetime.fromisoformat(p["time"]) - BASE) / timedelta(minutes=1)): p for p in body["points"]
    }
    assert body["unpriced_calls"] == 3
    # priced calls only: their spend rate, per hour
    assert (points[0]["usd_per_hour"], points[0]["unpriced_calls"]) == (
        pytest.approx(float(2 * PRICE) * 60),
        0,
    )
    # one of two calls unpriced: the priced one's spend, a lower bound the count says is one
    assert (points[10]["usd_per_hour"], points[10]["unpriced_calls"]) == (pytest.approx(float(PRICE) * 60), 1)
    # every call unpriced: unknown (it used to read 0.0, the same as a minute without calls)
    assert (points[20]["calls"], points[20]["usd_per_hour"], points[20]["unpriced_calls"]) == (2, None, 2)
    # no call: no spend
    assert (points[5]["calls"], points[5]["usd_per_hour"], points[5]["unpriced_calls"]) == (0, 0.0, 0)


def _spend_figure(dumped: str) -> str:
    found = re.search(r'<figure [^>]*id="chart-spend".*?</figure>', dumped, re.DOTALL)
    assert found, dumped[-2000:]
    return found.group(0)


def test_the_spend_chart_shows_unpriced_calls_as_unknown(served: Daemon, tmp_path: Path) -> None:
    dumped = chromium("--dump-dom", f"{served.api}/?range=6&service=checkout", profile=tmp_path / "p1").stdout
    assert 'data-state="ready"' in dumped, dumped[-2000:]
    figure = _spend_figure(dumped)
    note = re.search(r'<p class="unpriced-note" id="spend-unpriced"([^>]*)>([^<]*)</p>', figure)
    assert note, figure[:1000]
    attributes, text = note.groups()
    assert 'data-unpriced="3"' in attributes and "hidden" not in attributes, attributes
    assert 'data-gaps="1"' in attributes, attributes  # minute 20: shaded, not drawn as $0
    assert text.startswith("3 of 6 calls unpriced"), text
    # the lower-bound minute is marked in its own series, the legend says what the marks are
    assert "lower bound (some calls unpriced)" in figure and "<canvas" in figure
    # the models' table: the total is the priced calls' cost as a lower bound, with the unpriced count
    assert re.search(r"≥ \d+\.\d+ \(3 unpriced\)", dumped), "the models' total is not a lower bound"
    shot = tmp_path / "spend.png"
    chromium(f"--screenshot={shot}", f"{served.api}/?range=1&service=checkout", profile=tmp_path / "p2")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_service_of_unpriced_calls_only_has_unknown_spend_not_a_flat_zero(
    served: Daemon, tmp_path: Path
) -> None:
    dumped = chromium("--dump-dom", f"{served.api}/?range=6&service=private", profile=tmp_path / "p3").stdout
    assert 'data-state="ready"' in dumped, dumped[-2000:]
    figure = _spend_figure(dumped)
    assert "Spend unknown: none of the 1 calls in this range has a known price." in figure, figure[:1500]
    assert "<canvas" not in figure and 'data-points="0"' in figure
    assert "1 of 1 calls unpriced" in figure and 'data-gaps="1"' in figure


# --- a new user's first calls: the page agrees with itself ---------------------------------------------


def test_first_calls_of_the_current_minute_are_not_no_calls_on_the_charts(tmp_path: Path) -> None:
    """The charts stop at the last whole minute, the tables and calls view do not: a user who just sent
    their first calls used to read "No calls in this range." on every chart beside tables listing them."""
    from tests.otlp_builders import export_request, llm_span

    daemon = Daemon(tmp_path / "data").start()
    try:
        # Send and render within one minute: 30 s is plenty for both, and the daemon's start (seconds
        # under load) is no longer inside that budget, so the wait for a fresh minute is rarer and shorter.
        if datetime.now(UTC).second > 30:
            time.sleep(61 - datetime.now(UTC).second)
        body = export_request(llm_span(), llm_span(), service="support-bot").SerializeToString()
        sent = httpx.post(f"{daemon.otlp_http}/v1/traces", content=body,
                          headers={"Content-Type": "application/x-protobuf"})  # fmt: skip
        assert sent.status_code == 200
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        deadline = time.monotonic() + 20
        # (a generous timeout: on a loaded machine one answer can take longer than httpx's 5 s default)
        calls = f"{daemon.api}/api/v1/calls"
        while not httpx.get(calls, timeout=30).json()["calls"] and time.monotonic() < deadline:
            time.sleep(0.2)  # stored asynchronously
        dumped = chromium("--dump-dom", f"{daemon.api}/?range=1", profile=tmp_path / "p").stdout
        if datetime.now(UTC).replace(second=0, microsecond=0) != minute:
            pytest.skip("the minute turned while the page loaded: its calls are whole-minute data now")
        assert 'data-state="ready"' in dumped, dumped[-2000:]
        said = "2 call(s) so far, all in the current minute: the charts draw whole minutes"
        assert dumped.count(said) == 5 and "No calls in this range." not in dumped, dumped[:3000]
        assert dumped.count('data-span="') == 2  # the calls view lists them
        # in local time like the rest of the page, the exact ISO time in the cell's title
        ended = re.findall(r'data-span="[^"]*"><td title="([^"]*)">([^<]*)</td>', dumped)
        assert len(ended) == 2 and all(datetime.fromisoformat(iso) and "T" not in text for iso, text in ended)
    finally:
        daemon.stop()


def test_the_status_filter_offers_every_stored_status() -> None:
    # Most instrumentations leave a successful span's status unset: with only "ok" and "error" to choose
    # from, filtering on success showed no call at all.
    page = (WEB_DIR / "index.html").read_text()
    select = re.search(r'<select name="status">(.*?)</select>', page, re.DOTALL)
    assert select
    assert set(re.findall(r'<option value="([^"]*)"', select.group(1))) == {"", "ok", "unset", "error"}
