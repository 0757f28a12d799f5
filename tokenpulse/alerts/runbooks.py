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

# The runbooks there are, one file per detector (the catalog's and the health alert): the files are the
# list, so this package needs nothing from the detectors (a test checks every detector has one).
_FILES = resources.files("tokenpulse") / "runbooks"
RUNBOOKS = tuple(sorted(f.name.removesuffix(".md") for f in _FILES.iterdir() if f.name.endswith(".md")))
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def runbook_source(detector: str) -> str:
    """The Markdown of a detector's runbook; KeyError for a name that has none."""
    if detector not in RUNBOOKS:
        raise KeyError(detector)
    return (_FILES / f"{detector}.md").read_text(encoding="utf-8")


def fill(source: str, alert: dict[str, Any] | None) -> str:
    values: dict[str, str] = {}
    if alert is not None:
        values = {**alert["scope"], "suspects": describe_suspects(alert["suspects"]), "alert_id": alert["id"],
                  "started_at": alert["active_at"]}  # fmt: skip

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        return values.get(name) or f"<{name}>"

    return _PLACEHOLDER.sub(value, source)


def _context(alert: dict[str, Any], incident: dict[str, Any] | None = None) -> str:
    rows = [
        *(
            [("Incident", f"{incident['title']} ({incident['state']}, {len(incident['alerts'])} alert(s))"),
             ("Most likely cause", incident["cause"][0]["why"])]
            if incident else []
        ),
        ("Alert", f"{alert['id']} — {alert.get('status') or alert['state']}, {alert['severity']}"),
        ("Scope", ", ".join(f"{k}={v}" for k, v in alert["scope"].items()) or "all"),
        ("Summary", alert["summary"]),
        ("Value", f"{alert['value']:.6g} vs threshold {alert['threshold']:.6g}, baseline "
                  f"{'none' if alert['baseline'] is None else format(alert['baseline'], '.6g')}"),
        ("Suspects", describe_suspects(alert["suspects"])),
        ("Started", alert["active_at"]),
        ("Resolved", alert["resolved_at"] or "not yet"),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    link = (
        f'<p><a href="/incidents/{html.escape(incident["id"])}">The incident: its alerts, the ranked cause '
        "and how to roll it back</a></p>"
        if incident
        else ""
    )
    return f'<section class="alert"><h2>This alert</h2><table>{cells}</table>{link}</section>'


def render(
    detector: str,
    alert: dict[str, Any] | None,
    alert_id: str | None = None,
    incident: dict[str, Any] | None = None,
) -> str:
    """The runbook page; ``alert`` (found by ``alert_id``) fills in its context, with its ``incident``."""
    body = _MARKDOWN.render(fill(runbook_source(detector), alert))
    if alert is not None:
        context = _context(alert, incident)
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


# How to undo each kind of change the ranked cause can name; {value}, {service}, {route} are filled in.
ROLLBACK: dict[str, list[str]] = {
    "prompt_version": [
        "Pin {route} of {service} back to the prompt version it used before {value} (your prompt registry "
        "or the config that selects it); keep {value} for a fixed rerun.",
        "Redeploy {service} if the prompt ships with the code.",
    ],
    "deploy_version": [
        "Roll {service} back from release {value} to the previous one (e.g. `kubectl rollout undo "
        "deployment/{service}`, or your deploy tool's rollback).",
    ],
    "model": [
        "Switch {route} of {service} back from model {value} to the model it used before (the model or "
        "router setting that chose it), then redeploy.",
    ],
    "provider": [
        "Route {service} away from provider {value} (failover or the previous provider), and check the "
        "provider's status page.",
    ],
    "router": [
        "Revert the configuration of router {value} to its previous version; until then, pin {route} to "
        "its usual model.",
    ],
    "user": [
        "Rate-limit or block user {value} (or the API key it uses), and stop the job or loop it runs.",
        "Tell the owner of {value}; lift the limit once their calls look usual again.",
    ],
    "none": [
        "No change inside your traffic lines up with the onset: check the providers' status pages and "
        "recent changes outside tokenpulse's view (quotas, keys, network).",
    ],
}
RECOVERY = "Recovery check: the incident resolves when its last alert resolves; watch it below."


def rollback_steps(incident: dict[str, Any]) -> list[str]:
    """The rollback of the incident's most likely change, its scope filled in."""
    cause = incident["cause"][0]
    primary = next(a for a in incident["alerts"] if a["id"] == incident["primary"])
    fields = {"service": "<service>", "route": "<route>", **primary["scope"], "value": cause["value"]}
    steps = ROLLBACK.get(cause["dimension"], ROLLBACK["none"])
    return [step.format_map(fields) for step in steps] + [RECOVERY]


def render_incident(incident: dict[str, Any]) -> str:
    """The page of an incident: what happened, its alerts (each with the state it really has and its
    runbook), the ranked cause and why, the rollback of the most likely change, and the timeline."""
    e = html.escape
    alerts = "".join(
        f"<tr><td>{e(a['detector'])}</td><td>{e(', '.join(f'{k}={v}' for k, v in a['scope'].items()))}</td>"
        f"<td>{e(a['state'])}</td><td>{e(a['severity'])}</td><td>{e(a['summary'])}</td>"
        f'<td><a href="{e(a["runbook_url"])}">runbook</a></td></tr>'
        for a in incident["alerts"]
    )
    causes = "".join(f"<li>{e(c['why'])}</li>" for c in incident["cause"])
    steps = "".join(f"<li>{e(step)}</li>" for step in rollback_steps(incident))
    timeline = "".join(f"<li>{e(t['at'])} — {e(t['text'])}</li>" for t in incident["timeline"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Incident {e(incident["id"])}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .2rem .6rem; text-align: left; vertical-align: top; }}
.incident {{ border: 2px solid #c0392b; padding: .5rem 1rem; margin-bottom: 1.5rem; }}
</style></head>
<body><section class="incident"><h1>{e(incident["title"])}</h1>
<p>{e(incident["severity"])}, {e(incident["state"])}; started {e(incident["started_at"])}, resolved
{e(incident["resolved_at"] or "not yet")} · incident {e(incident["id"])}</p></section>
<h2>Most likely cause</h2><ol>{causes}</ol>
<h2>Roll back</h2><ol>{steps}</ol>
<h2>Alerts</h2><table><tr><th>detector</th><th>scope</th><th>state</th><th>severity</th><th>summary</th>
<th></th></tr>{alerts}</table>
<h2>Timeline</h2><ul>{timeline}</ul></body></html>
"""
