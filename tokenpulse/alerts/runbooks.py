"""Runbooks: ``runbooks/<detector>.md`` at the repository root, shipped in the package as
``tokenpulse/runbooks`` (a link to that directory), rendered to HTML with an alert's context.

A runbook may name the alert's context as ``{{service}}``, ``{{route}}`` (any scope dimension),
``{{suspects}}``, ``{{alert_id}}`` and ``{{started_at}}``: with ``?alert=<id>`` they are filled in from
the alert, so its queries can be copied as they are; without, they read ``<service>``.
"""

from __future__ import annotations

import html
import re
from importlib import resources
from typing import Any

from markdown_it import MarkdownIt

from tokenpulse.alerts.model import describe_suspects
from tokenpulse.detectors.catalog import NAMES

# The detectors' own health alert (tokenpulse/detectors/health.py) has a runbook beside the catalog's.
HEALTH_ALERT = "tokenpulse_unhealthy"
RUNBOOKS = (*NAMES, HEALTH_ALERT)
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def runbook_source(detector: str) -> str:
    """The Markdown of a detector's runbook; KeyError for a name that has none."""
    if detector not in RUNBOOKS:
        raise KeyError(detector)
    return (resources.files("tokenpulse") / "runbooks" / f"{detector}.md").read_text(encoding="utf-8")


def fill(source: str, alert: dict[str, Any] | None) -> str:
    values: dict[str, str] = {}
    if alert is not None:
        values = {**alert["scope"], "suspects": describe_suspects(alert["suspects"]), "alert_id": alert["id"],
                  "started_at": alert["active_at"]}  # fmt: skip

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        return values.get(name) or f"<{name}>"

    return _PLACEHOLDER.sub(value, source)


def _context(alert: dict[str, Any]) -> str:
    rows = [
        ("Alert", f"{alert['id']} — {alert['state']}, {alert['severity']}"),
        ("Scope", ", ".join(f"{k}={v}" for k, v in alert["scope"].items()) or "all"),
        ("Summary", alert["summary"]),
        ("Value", f"{alert['value']:.6g} vs threshold {alert['threshold']:.6g}, baseline "
                  f"{'none' if alert['baseline'] is None else format(alert['baseline'], '.6g')}"),
        ("Suspects", describe_suspects(alert["suspects"])),
        ("Started", alert["active_at"]),
        ("Resolved", alert["resolved_at"] or "not yet"),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<section class="alert"><h2>This alert</h2><table>{cells}</table></section>'


def render(detector: str, alert: dict[str, Any] | None, alert_id: str | None = None) -> str:
    """The runbook page; ``alert`` (found by ``alert_id``) fills in its context."""
    body = _MARKDOWN.render(fill(runbook_source(detector), alert))
    if alert is not None:
        context = _context(alert)
    elif alert_id:
        context = f'<p class="alert">No alert {html.escape(alert_id)} is known (any more).</p>'
    else:
        context = ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Runbook: {detector}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }}
pre {{ background: #f4f4f4; padding: .75rem; overflow-x: auto; }}
.alert {{ border: 2px solid #c0392b; padding: .5rem 1rem; margin-bottom: 1.5rem; }}
.alert th {{ text-align: left; padding-right: 1rem; vertical-align: top; }}
</style></head>
<body>{context}{body}</body></html>
"""
