"""The overview page and the JSON it reads: time series from the rollup, alert history, and the page
itself loaded in headless Chromium from a daemon serving simulated data."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.daemon import Daemon
from tokenpulse.storage.timeseries import MAX_POINTS, SeriesQuery, build_series_sql
from tokenpulse.web import WEB_DIR

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CHARTS = ("chart-spend", "chart-cache", "chart-input", "chart-latency", "chart-ttft")


def test_series_buckets_start_at_the_range_start_and_cover_it() -> None:
    query = SeriesQuery(T0, T0 + timedelta(minutes=61), timedelta(minutes=5), {"service": "a"})
    assert query.points == 13
    assert query.bucket_times()[-1] == T0 + timedelta(minutes=60)
    sql, parameters = build_series_sql(query)
    assert "service = {f0:String}" in sql and parameters["f0"] == "a" and parameters["step"] == 300
    assert "quantilesTDigestMerge" in sql  # merged states, never averaged percentiles


@pytest.mark.parametrize(
    ("step", "filters", "message"),
    [
        (timedelta(seconds=90), {}, "whole number of minutes"),
        (timedelta(minutes=1), {"user": "u"}, "unknown dimension"),
        (timedelta(minutes=1), {}, f"at most {MAX_POINTS}"),
    ],
)
def test_series_query_refuses_what_the_rollup_cannot_answer(
    step: timedelta, filters: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SeriesQuery(T0, T0 + timedelta(days=2), step, filters)


def test_the_page_uses_no_outside_resource() -> None:
    for path in (WEB_DIR / "index.html", WEB_DIR / "app.js"):
        text = path.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), f"{path.name} loads from outside"
    assert (WEB_DIR / "vendor" / "uPlot.iife.min.js").stat().st_size > 10_000


@pytest.fixture(scope="module")
def served(simulated_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """`tokenpulse serve` on a copy of the simulated store (its alert state included)."""
    data = tmp_path_factory.mktemp("overview") / "data"
    shutil.copytree(simulated_data, data, symlinks=True)  # chDB links its tables, relative to the store
    running = Daemon(data).start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def test_timeseries_agrees_with_the_summary(served: Daemon) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=30)
    start = end - timedelta(hours=4)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    body = httpx.get(f"{served.api}/api/v1/timeseries", params={**window, "step": 600}).json()
    points = body["points"]
    assert len(points) == 24 and points[0]["time"] == start.isoformat()
    (total,) = httpx.get(f"{served.api}/api/v1/summary", params=window).json()["groups"]
    assert sum(p["calls"] for p in points) == total["calls"] > 5000
    spent = sum(p["usd_per_hour"] for p in points) / 6  # $/h over 10-minute points
    assert spent == pytest.approx(float(total["cost_usd"]), rel=1e-9)
    busy = [p for p in points if p["calls"]]
    ratios = [p["cache_hit_ratio"] for p in busy if p["cache_hit_ratio"] is not None]
    assert len(ratios) >= len(busy) - 2 and all(0 <= r <= 1 for r in ratios)  # calls of 0 tokens have none
    assert all(p["latency_ms"]["p50"] <= p["latency_ms"]["p99"] for p in busy)
    idle = [p for p in points if not p["calls"]]
    assert all(p["latency_ms"]["p99"] is None and p["cache_hit_ratio"] is None for p in idle)
    one = httpx.get(
        f"{served.api}/api/v1/timeseries", params={**window, "step": 600, "service": "support-bot"}
    )
    assert 0 < sum(p["calls"] for p in one.json()["points"]) < total["calls"]
    refused = httpx.get(f"{served.api}/api/v1/timeseries", params={**window, "step": 30})
    assert refused.status_code == 400 and "whole number of minutes" in refused.text


def test_alert_events_list_the_history_with_runbooks(served: Daemon) -> None:
    events = httpx.get(f"{served.api}/api/v1/alert-events").json()["events"]
    fired = [e for e in events if e["status"] == "firing" and e["detector"] == "cache_hit_collapse"]
    assert fired and fired[0]["runbook_url"].endswith(f"/runbooks/cache_hit_collapse?alert={fired[0]['id']}")
    assert datetime.fromisoformat(fired[0]["at"]).tzinfo is not None


class _Page(HTMLParser):
    """The parts of the rendered DOM the test looks at."""

    def __init__(self) -> None:
        super().__init__()
        self.state = ""
        self.points: dict[str, int] = {}
        self.canvases: dict[str, int] = {}
        self.alert_rows: list[dict[str, str]] = []
        self.tool_rows: list[str] = []
        self.coverage_rows: list[str] = []
        self.links: list[str] = []
        self._figure = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.state = values.get("data-state", "")
        elif tag == "figure":
            self._figure = values.get("id", "")
            self.points[self._figure] = int(values.get("data-points", "0"))
        elif tag == "canvas" and self._figure:
            self.canvases[self._figure] = self.canvases.get(self._figure, 0) + 1
        elif tag == "tr" and "data-detector" in values:
            self.alert_rows.append(values)
        elif tag == "tr" and "data-tool" in values:
            self.tool_rows.append(values["data-tool"])
        elif tag == "tr" and "data-coverage" in values:
            self.coverage_rows.append(values["data-coverage"])
        elif tag == "a" and "runbook" in values.get("href", ""):
            self.links.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = ""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "chromium (Debian package) is required; .ci/run installs it"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,1100",
        # Let the page's fetches and drawing finish before the DOM is dumped.
        "--virtual-time-budget=20000",
    ]  # fmt: skip
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


def test_the_page_draws_its_charts_and_shows_the_firing_alert(served: Daemon, tmp_path: Path) -> None:
    html = httpx.get(f"{served.api}/").text
    assert "<title>tokenpulse overview</title>" in html
    assert httpx.get(f"{served.api}/static/vendor/uPlot.iife.min.js").status_code == 200
    # the detectors' first cycle has run: the page can say what they watch
    deadline = time.monotonic() + 60
    while not httpx.get(f"{served.api}/api/v1/coverage").json()["totals"] and time.monotonic() < deadline:
        time.sleep(0.5)
    dumped = chromium("--dump-dom", f"{served.api}/", profile=tmp_path / "profile")
    page = _Page()
    page.feed(dumped.stdout)
    assert page.state == "ready", dumped.stdout[-2000:] + dumped.stderr[-2000:]
    for chart in CHARTS:
        assert page.points.get(chart, 0) > 10, f"{chart} drew {page.points.get(chart)} points"
        assert page.canvases.get(chart) == 1, f"{chart} has no canvas"
    firing = [row for row in page.alert_rows if row["class"] == "firing"]
    assert "cache_hit_collapse" in [row["data-detector"] for row in firing]
    # with the alert's id, so the runbook opens with its context (scope, suspects) filled in
    collapse = "http://127.0.0.1:8000/runbooks/cache_hit_collapse?alert="
    assert any(link.startswith(collapse) for link in page.links)
    assert all("?alert=" in link for link in page.links)
    # what each detector watches: every detector of the catalog has a row
    assert {"cache_hit_collapse", "latency_p99_drift", "traffic_drop"} <= set(page.coverage_rows), (
        page.coverage_rows
    )
    # the simulated tools that call a model, by spend, from the summary's tool dimension
    assert page.tool_rows and "" not in page.tool_rows, page.tool_rows
    # quality beside cost: the simulated judge's pass rate and dollars per passing answer, per model/route
    quality = re.findall(r'<td class="num quality"[^>]*>([^<]*)</td>', dumped.stdout)
    assert any(re.fullmatch(r"\d+% · \$\d\.\d+(e-\d+)?", cell) for cell in quality), quality
    assert "judge_pass: " in dumped.stdout and " per passing answer" in dumped.stdout  # the cells' titles
    # the open incident holding the firing alert, a row of the incidents table
    incidents = httpx.get(f"{served.api}/api/v1/incidents", params={"state": "open"}).json()["incidents"]
    held = [i["id"] for i in incidents if "cache_hit_collapse" in {a["detector"] for a in i["alerts"]}]
    assert held and f'data-incident="{held[0]}"' in dumped.stdout
    screenshot = tmp_path / "overview.png"
    chromium(f"--screenshot={screenshot}", f"{served.api}/", profile=tmp_path / "profile-2")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
