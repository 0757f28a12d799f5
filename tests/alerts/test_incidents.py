"""Alerts that start close together and share a cause are one incident; the rest are not."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from tests.alert_helpers import LINKS, T0, FakeClock, event, resolved, transition
from tokenpulse.alerts.incidents import NO_CHANGE, Correlator, Incident, ranked_cause
from tokenpulse.alerts.model import AlertEvent
from tokenpulse.alerts.service import AlertService
from tokenpulse.alerts.settings import alert_settings
from tokenpulse.alerts.store import AlertStore


def alert(
    detector: str, at: datetime = T0, severity: str = "warning", suspects=None, **scope: str
) -> AlertEvent:
    fired = event(detector=detector, severity=severity, at=at, **scope)
    return fired if suspects is None else replace(fired, suspects=suspects)


def user_suspect(user: str) -> list[dict]:
    return [{"dimension": "user", "value": user, "share_before": 0.0, "share_after": 0.9, "new": True}]


def correlate(events: list[AlertEvent]) -> dict[str, set[str]]:
    """incident id -> the (detector, scope) of its alerts."""
    correlator = Correlator()
    for e in events:
        correlator.observe(e)
    return {
        i.id: {f"{a.detector} {','.join(f'{k}={v}' for k, v in a.scope.items())}" for a in i.alerts.values()}
        for i in correlator.incidents.values()
    }


def test_a_runaway_user_is_one_incident_not_four_pages() -> None:
    # The case: cost_spike for the service, the route and the user, then prompt_growth on the route.
    u = user_suspect("u-1234")
    events = [
        alert("cost_spike", T0, suspects=u, service="support"),
        alert("cost_spike", T0 + timedelta(minutes=1), suspects=u, service="support", route="/chat"),
        alert("cost_spike", T0 + timedelta(minutes=2), "critical", u,
              service="support", route="/chat", user="u-1234"),
        alert("prompt_growth", T0 + timedelta(minutes=6), suspects=u, service="support", route="/chat"),
    ]  # fmt: skip
    correlator = Correlator()
    changed, labelled = correlator.observe_all(events)
    assert len(correlator.incidents) == 1 and len(changed) == 1
    incident = changed[0]
    assert {e.incident for e in labelled} == {incident.id} and all(e.labels["incident"] for e in labelled)
    assert incident.severity == "critical" and incident.state == "open"
    # The change first, then the alert on its own scope: the user's.
    assert incident.title.startswith(
        "user u-1234 changed: cost_spike on service=support, route=/chat, user=u-1234: "
    )
    assert incident.title.endswith("(+3 related: cost_spike, prompt_growth)")
    assert [t["text"].split(" [")[0] + " " + t["text"].rsplit("] ", 1)[1] for t in incident.timeline] == [
        "cost_spike opened the incident", "cost_spike joined", "cost_spike joined", "prompt_growth joined",
    ]  # fmt: skip
    cause = incident.to_json()["cause"][0]
    assert (cause["dimension"], cause["value"]) == ("user", "u-1234")
    assert "named by 4 of the incident's 4 alert(s)" in cause["why"]


def test_one_model_slowing_under_several_routes_is_one_incident() -> None:
    events = [
        alert("latency_p99_drift", T0 + timedelta(minutes=m), service="s", route=route, model="gpt-x")
        for m, route in enumerate(["/a", "/b", "/c"])
    ]
    assert len(correlate(events)) == 1


def test_a_cause_and_its_symptoms_are_one_incident() -> None:
    scope = {"service": "support", "route": "/chat", "model": "claude"}
    events = [
        alert("cache_hit_collapse", T0, "critical", **scope),
        alert("cost_spike", T0 + timedelta(minutes=3), service="support"),
        alert("ttft_slo", T0 + timedelta(minutes=4), **scope),
    ]
    (members,) = correlate(events).values()
    assert len(members) == 3
    correlator = Correlator()
    incident = correlator.observe_all(events)[0][0]
    assert incident.primary.detector == "cache_hit_collapse"  # the cause heads it, not the widest symptom


def test_unrelated_far_apart_or_other_tenant_alerts_are_incidents_of_their_own() -> None:
    events = [
        alert("cost_spike", T0, service="support"),
        alert("ttft_slo", T0, service="support"),  # not a cause of cost_spike, nor it of ttft_slo
        alert("cost_spike", T0, service="billing"),  # another service, no shared model
        alert("cost_spike", T0 + timedelta(minutes=45), service="support", route="/late"),  # too late
        alert("cost_spike", T0, tenant="acme", service="support"),  # another tenant's
        alert("routing_escalation", T0, service="search", router="r1"),  # no shared scope
    ]
    assert len(correlate(events)) == 6


def test_the_incident_resolves_with_its_last_alert_and_a_new_firing_opens_another() -> None:
    first = alert("cost_spike", T0, service="s")
    second = alert("cost_spike", T0 + timedelta(minutes=2), "critical", service="s", route="/r")
    correlator = Correlator()
    incident, _ = correlator.observe(first)
    correlator.observe(second)
    correlator.observe(resolved(first, T0 + timedelta(minutes=20)))
    assert incident.state == "open" and incident.severity == "critical"
    correlator.observe(replace(resolved(second, T0 + timedelta(minutes=30)), suspects=[]))
    assert incident.state == "resolved" and incident.resolved_at == T0 + timedelta(minutes=30)
    # The resolve names no suspects: the cause found when its alerts fired still stands.
    assert incident.cause[0]["value"] == "v8"
    assert incident.timeline[-1]["text"] == "incident resolved"
    # Past REOPEN_WITHIN of the resolve (it started 38 minutes after), a new firing is a new incident.
    again, _ = correlator.observe(alert("cost_spike", T0 + timedelta(minutes=76), service="s"))
    assert again.id != incident.id and len(correlator.incidents) == 2


def test_a_trouble_back_soon_after_its_incident_resolved_reopens_it() -> None:
    first = alert("cost_spike", T0, service="s", route="/r")
    correlator = Correlator()
    incident, _ = correlator.observe(first)
    correlator.observe(resolved(first, T0 + timedelta(minutes=20)))
    assert incident.state == "resolved"
    # The same alert fires again (its condition came back 12 minutes after the resolve) ...
    back, labelled = correlator.observe(
        alert("cost_spike", T0 + timedelta(minutes=40), service="s", route="/r")
    )
    assert back is incident and labelled.incident == incident.id and len(correlator.incidents) == 1
    assert incident.state == "open" and incident.reopened_at == T0 + timedelta(minutes=40)
    assert [e["text"] for e in incident.timeline[-2:]] == [
        "incident reopened",
        "cost_spike [service=s, route=/r] fired again",
    ]
    # ... and a cause of it on the enclosing scope joins it while it is open again.
    joined, _ = correlator.observe(alert("cache_hit_collapse", T0 + timedelta(minutes=41), service="s"))
    assert joined is incident
    assert incident.to_json()["reopened_at"] == (T0 + timedelta(minutes=40)).isoformat()
    assert Incident.from_document(incident.document()).reopened_at == incident.reopened_at


def test_the_symptom_a_resolved_cause_leaves_behind_reopens_its_incident() -> None:
    escalation = alert("routing_escalation", T0, service="s", router="r")
    correlator = Correlator()
    incident, _ = correlator.observe(escalation)
    correlator.observe(resolved(escalation, T0 + timedelta(minutes=40)))
    lingering = alert("cost_spike", T0 + timedelta(minutes=55), service="s")  # the spend catching up
    back, _ = correlator.observe(lingering)
    assert back is incident and incident.state == "open"


def test_only_the_same_trouble_reopens_an_incident() -> None:
    first = alert("cost_spike", T0, service="s", route="/r")
    correlator = Correlator()
    incident, _ = correlator.observe(first)
    correlator.observe(resolved(first, T0 + timedelta(minutes=20)))
    soon = T0 + timedelta(minutes=30)
    strangers = [
        alert("cost_spike", soon, service="t", route="/r"),  # another service
        alert("traffic_drop", soon, service="s", route="/r"),  # an unrelated detector
        alert("cost_spike", soon, service="s", route="/r", tenant="other"),  # another tenant
        # a cause after its symptom's incident: a deploy breaking the cache after a runaway user's spike
        alert("cache_not_applied", soon, service="s", route="/r", model="m"),
    ]
    for stranger in strangers:
        other, _ = correlator.observe(stranger)
        assert other is not incident
    assert incident.state == "resolved" and incident.reopened_at is None


def test_an_escalation_is_on_the_timeline_and_raises_the_severity() -> None:
    correlator = Correlator()
    incident, _ = correlator.observe(alert("cost_spike", T0, service="s"))
    assert incident.severity == "warning"
    correlator.observe(alert("cost_spike", T0 + timedelta(minutes=5), "critical", service="s"))
    assert incident.severity == "critical" and incident.timeline[-1]["text"].endswith("escalated to critical")


def test_incident_ids_are_the_same_in_every_run() -> None:
    events = [alert("cost_spike", T0, service="s"), alert("cost_spike", T0, service="t")]
    assert correlate(events).keys() == correlate(events).keys()


def test_ranked_cause_names_the_change_or_says_none_was_found() -> None:
    prompt = [
        {"dimension": "prompt_version", "value": "v13", "share_before": 0.0, "share_after": 1.0, "new": True}
    ]
    deploy = [
        {"dimension": "deploy_version", "value": "2.1", "share_before": 0.3, "share_after": 0.9, "new": False}
    ]
    alerts = [
        alert("cache_hit_collapse", suspects=prompt + deploy, service="s"),
        alert("cost_spike", suspects=prompt, service="s"),
    ]
    ranked = ranked_cause(alerts)
    assert [(c["dimension"], c["value"]) for c in ranked] == [
        ("prompt_version", "v13"),
        ("deploy_version", "2.1"),
    ]
    assert ranked[0]["why"].startswith("prompt_version v13 appeared: 0% -> 100% of the calls of ")
    assert ranked[0]["why"].endswith("named by 2 of the incident's 2 alert(s)")
    nothing = ranked_cause([alert("latency_p99_drift", suspects=[], model="m")])
    assert nothing == [{"dimension": "none", "value": "no change found", "score": 0.0, "why": NO_CHANGE}]
    # A suspect without a value (calls that do not say) is never a cause, nor one carrying a minority of
    # the calls (a new user at a quarter of them is traffic, not the change).
    blank = [{"dimension": "user", "value": " ", "share_before": 0, "share_after": 1, "new": True}]
    minority = [{"dimension": "user", "value": "u-9", "share_before": 0.0, "share_after": 0.25, "new": True}]
    for suspects in (blank, minority):
        assert (
            ranked_cause([alert("cost_spike", suspects=suspects, service="s")])[0]["value"]
            == "no change found"
        )


def test_a_model_switch_under_a_router_is_the_routers_change() -> None:
    model = [{"dimension": "model", "value": "gpt-4o", "share_before": 0.2, "share_after": 0.8, "new": False}]
    (top, *_) = ranked_cause([alert("routing_escalation", suspects=model, service="s", router="complexity")])
    assert (top["dimension"], top["value"]) == ("router", "complexity")
    assert top["why"].startswith("router complexity now sends 80% of its calls to model gpt-4o (was 20%)")


def test_incidents_survive_a_restart_of_the_alert_service(tmp_path: Path) -> None:
    clock = FakeClock()
    config = alert_settings({}, {"TOKENPULSE_WEBHOOK_URL": "http://hook.test/x"})
    service = AlertService(AlertStore(tmp_path / "alerts.sqlite"), config, LINKS, clock)
    service.on_transitions([transition("cost_spike", "warning", service="s")])
    (before,) = service.incidents()
    service.store.close()
    restarted = AlertService(AlertStore(tmp_path / "alerts.sqlite"), config, LINKS, clock)
    assert restarted.incidents() == [before]
    # A later alert of the same cause joins the incident the restart kept.
    restarted.on_transitions(
        [transition("cost_spike", "critical", at=T0 + timedelta(minutes=2), service="s", route="/r")]
    )
    (after,) = restarted.incidents()
    assert after["id"] == before["id"] and len(after["alerts"]) == 2 and after["severity"] == "critical"
    restored = Incident.from_document(restarted.correlator.incidents[after["id"]].document())
    assert restored.to_json(api_base_url=LINKS.api_base_url) == after
    assert after["url"] == f"{LINKS.api_base_url}/incidents/{after['id']}"


def test_a_tool_alert_names_its_tool_as_the_change() -> None:
    model = [
        {"dimension": "model", "value": "gpt-4o", "share_before": 0.35, "share_after": 0.6, "new": False}
    ]
    alerts = [
        alert("cost_spike", suspects=model, service="shop"),
        alert("tool_hidden_cost", suspects=[], service="shop", tool="recommend"),
    ]
    (top, *_) = Correlator().observe_all(alerts)[0][0].cause
    assert (top["dimension"], top["value"]) == ("tool", "recommend")
    assert top["why"].startswith("tool recommend: tool_hidden_cost: ")


def test_an_alert_on_the_change_another_alerts_suspects_name_is_that_incidents() -> None:
    # A cheaper routing rule moves search /answer to gpt-4o-mini: its judged answers fail more (the
    # model is the suspect) and the spend on gpt-4o-mini in search rises: one change, one incident.
    moved = [{"dimension": "model", "value": "gpt-4o-mini", "share_before": 0.15, "share_after": 0.73}]
    # (the spend's suspect: /answer's prompt version, which came along with its calls)
    came_along = [{"dimension": "prompt_version", "value": "v5", "share_before": 0.1, "share_after": 0.56}]
    spend = alert("cost_spike", T0, suspects=came_along, service="search", model="gpt-4o-mini")
    quality = alert("quality_drop", T0, suspects=moved, service="search", route="/answer", evaluation="judge")
    groups = correlate([spend, quality])
    assert len(groups) == 1
    (incident,) = Correlator([]).observe_all([spend, quality])[0]
    assert incident.cause[0]["dimension"] == "model" and incident.cause[0]["value"] == "gpt-4o-mini"
    # Not on another model, not in another service, not for a suspect carrying few of the calls.
    assert len(correlate([alert("cost_spike", T0, service="search", model="gpt-4o"), quality])) == 2
    assert len(correlate([alert("cost_spike", T0, service="other", model="gpt-4o-mini"), quality])) == 2
    few = [{**moved[0], "share_after": 0.3}]
    assert len(correlate([spend, replace(quality, suspects=few)])) == 2
