"""The overview page's calls view and top-N tables, in headless Chromium over simulated traffic: from an
alert to the calls behind it, the slowest calls of a route, spend by model with a totals row."""

from __future__ import annotations

import html
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.daemon import Daemon
from tests.test_overview import chromium
from tokenpulse.detectors.catalog import NAMES


class _Dom(HTMLParser):
    """The calls table, the top tables and the alerts' calls links of the rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.state = ""
        self.calls: list[list[str]] = []
        self.tops: dict[str, list[list[str]]] = {}
        self.calls_links: list[str] = []
        self.window = ""
        self._table = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_window = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.state = values.get("data-state", "")
        elif tag == "table" and values.get("id") == "calls":
            self._table = "calls"
        elif tag == "div" and values.get("class") == "top":
            self._table = values["id"]
            self.tops[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "a" and values.get("class") == "calls-link":
            self.calls_links.append(values["href"])
        elif tag == "p" and values.get("id") == "calls-window":
            self._in_window = True

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_window:
            self.window += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:  # header rows have th cells only
                (self.calls if self._table == "calls" else self.tops[self._table]).append(self._row)
            self._row = None
        elif tag == "table" and self._table == "calls":
            self._table = ""
        elif tag == "p":
            self._in_window = False


@pytest.fixture(scope="module")
def served(simulated_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon on a copy of the simulated store, its alerts as the replay left them: the detectors are
    off, so a live cycle minutes after the simulated traffic ended cannot resolve them mid-test."""
    directory = tmp_path_factory.mktemp("calls-view")
    data = directory / "data"
    shutil.copytree(simulated_data, data, symlinks=True)
    config = directory / "tokenpulse.toml"
    config.write_text("".join(f"[detectors.{name}]\nenabled = false\n" for name in NAMES))
    running = Daemon(data, {"TOKENPULSE_CONFIG": str(config)}).start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def render(daemon: Daemon, query: str, profile: Path) -> _Dom:
    dumped = chromium("--dump-dom", f"{daemon.api}/{query}", profile=profile)
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.state == "ready", dumped.stdout[-2000:] + dumped.stderr[-2000:]
    return dom


COLUMNS = ["ended", "service", "route", "model", "user", "session", "prompt", "status", "ms", "ttft", "input",
           "cache_read", "output", "reasoning", "cost", "inside", "trace"]  # fmt: skip


def test_slowest_calls_of_a_route_from_the_url(served: Daemon, tmp_path: Path) -> None:
    summary = httpx.get(
        f"{served.api}/api/v1/summary", params={"group_by": "route", "start": "2000-01-01T00:00Z"}
    )
    route = summary.json()["groups"][0]["key"]["route"]
    dom = render(served, f"?range=24&order=slowest&route={urllib.parse.quote(route)}", tmp_path / "p1")
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in dom.calls]
    assert len(rows) == 50 and {r["route"] for r in rows} == {route}
    durations = [int(r["ms"]) for r in rows]
    assert durations == sorted(durations, reverse=True) and durations[0] > 0
    assert all(r["cost"] == "unknown" or float(r["cost"]) >= 0 for r in rows)
    # the top tables: spend by model, route and user, each with a totals row that adds up
    models = dom.tops["top-model"]
    assert models[-1][0].startswith("total") and len(models) >= 3
    listed = sum(int(row[1]) for row in models[:-1])
    assert listed <= int(models[-1][1]) and (len(models) < 11 or listed < int(models[-1][1]))
    assert dom.tops["top-user"] and dom.tops["top-route"][-1][0].startswith("total")


def test_an_alert_links_to_its_calls_around_the_onset(served: Daemon, tmp_path: Path) -> None:
    dom = render(served, "?range=6", tmp_path / "p2")
    assert dom.calls_links, "no alert with a calls link"
    alerts = httpx.get(f"{served.api}/api/v1/alerts").json()["alerts"]
    link = dom.calls_links[0]
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    alert = next(a for a in alerts if a["state"] in ("pending", "firing"))
    onset = datetime.fromisoformat(alert["active_at"])
    assert datetime.fromisoformat(state["calls_start"][0].replace("Z", "+00:00")) == onset - timedelta(
        minutes=15
    )
    for name, value in alert["scope"].items():
        assert state[name] == [value]
    followed = render(served, link.split("#")[0], tmp_path / "p3")
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in followed.calls]
    assert rows, "the alert's scope has no calls around its onset"
    for name in ("service", "route", "model"):
        if name in alert["scope"]:
            assert {r[name] for r in rows} == {alert["scope"][name]}
    assert "around the alert's onset" in followed.window
    shot = tmp_path / "calls.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,2600", f"{served.api}/{link.split('#')[0]}",
             profile=tmp_path / "p4")  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_view_is_kept_in_the_url_and_an_empty_range_says_so(served: Daemon, tmp_path: Path) -> None:
    dumped = chromium("--dump-dom", f"{served.api}/?range=24&service=nothing-here&order=costliest",
                      profile=tmp_path / "p5").stdout  # fmt: skip
    view = re.search(r'data-view="([^"]*)"', dumped)
    assert view, dumped[:2000]
    state = urllib.parse.parse_qs(html.unescape(view.group(1)))
    assert (state["range"], state["service"], state["order"]) == (["24"], ["nothing-here"], ["costliest"])
    # five charts and three top tables say there is nothing, rather than draw a line at 0
    assert dumped.count('<div class="empty">No calls in this range.</div>') == 8
    assert re.search(r'<figure [^>]*id="chart-spend"[^>]*data-points="0"', dumped)
    assert 'id="no-calls">' in dumped  # no longer hidden
