// The overview page: fetches the JSON API and draws the key panels with uPlot. Read-only.
"use strict";

const MAX_POINTS = 360;
const charts = {};

function isoMinute(date) {
  const copy = new Date(date);
  copy.setUTCSeconds(0, 0);
  return copy.toISOString().replace(".000Z", "Z");
}

// With API keys configured the daemon answers 401 without one: the page asks for a key and keeps it
// for this browser tab only (sessionStorage), sent as the Bearer token of every API call.
const KEY_STORAGE = "tokenpulse-api-key";
class Unauthorized extends Error {}

async function getJson(path, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const key = sessionStorage.getItem(KEY_STORAGE);
  const response = await fetch(`${path}?${query}`, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  if (response.status === 401) throw new Unauthorized("an API key is required");
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

function askForKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  document.getElementById("key-form").hidden = false;
  document.body.dataset.state = "auth";
}

function selection() {
  const hours = Number(document.getElementById("range").value);
  const end = new Date(Date.now() + 60_000);
  const start = new Date(end.getTime() - hours * 3_600_000);
  const minutes = Math.max(1, Math.ceil((hours * 60) / MAX_POINTS));
  return {
    start: isoMinute(start), end: isoMinute(end), step: minutes * 60,
    service: document.getElementById("service").value,
  };
}

// Draws (or redraws) one chart; series: [{label, stroke, values}], lines: constant reference lines;
// log: a logarithmic y axis (latencies: one 20-minute call must not flatten every other minute).
function draw(id, times, series, lines = [], log = false) {
  const figure = document.getElementById(id);
  const plotted = series.reduce((n, s) => n + s.values.filter((v) => v != null).length, 0);
  figure.dataset.points = String(plotted);
  if (charts[id]) { charts[id].destroy(); delete charts[id]; }
  figure.querySelector(".empty")?.remove();
  if (!plotted) {
    figure.insertAdjacentHTML("beforeend", '<div class="empty">No calls in this range.</div>');
    return;
  }
  const all = [...series, ...lines.map((l) => ({ ...l, values: times.map(() => l.value), dash: [6, 4] }))];
  const options = {
    width: Math.max(400, figure.clientWidth - 16), height: 220,
    series: [{}, ...all.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, dash: s.dash, spanGaps: false }))],
    axes: [{}, { size: 90 }],
    scales: log ? { y: { distr: 3 } } : {},
    legend: { show: true },
  };
  charts[id] = new uPlot(options, [times, ...all.map((s) => s.values)], figure);
}

function scopeText(scope) {
  return Object.entries(scope).map(([k, v]) => `${k}=${v}`).join(", ");
}

function renderAlerts(alerts, runbooks) {
  const body = document.querySelector("#alerts tbody");
  body.replaceChildren();
  const active = alerts.filter((a) => a.state === "pending" || a.state === "firing");
  document.getElementById("no-alerts").hidden = active.length > 0;
  for (const alert of active) {
    const row = body.insertRow();
    row.className = alert.state;
    row.dataset.detector = alert.detector;
    const cells = [alert.state, alert.severity, alert.detector, scopeText(alert.scope), alert.summary,
                   alert.fired_at || alert.active_at];
    for (const text of cells) row.insertCell().textContent = text;
    const link = document.createElement("a");
    // The runbook recorded with the alert's firing; the daemon's own runbooks otherwise.
    link.href = runbooks.get(alert.id) || `/runbooks/${encodeURIComponent(alert.detector)}`;
    link.textContent = "runbook";
    link.target = "_blank";
    link.rel = "noopener";
    row.insertCell().append(link);
  }
}

// Spend inside tools: the summary's tool dimension (each call's nearest tool ancestor), '' outside tools.
// It reads the raw tables: over the range's last day at most (a day takes ~1 s at 10M calls, 30 days ~45 s).
const TOP_TOOLS = 10;
const TOOLS_MAX_MS = 86_400_000;
function toolRange(range) {
  const end = Date.parse(range.end);
  return { start: isoMinute(new Date(Math.max(Date.parse(range.start), end - TOOLS_MAX_MS))), end: range.end };
}
function renderTools(groups) {
  const body = document.querySelector("#tools tbody");
  body.replaceChildren();
  const tools = groups.filter((g) => g.key.tool !== "").slice(0, TOP_TOOLS);
  document.getElementById("no-tools").hidden = tools.length > 0;
  for (const group of tools) {
    const row = body.insertRow();
    row.dataset.tool = group.key.tool;
    const ratio = group.cache_hit_ratio == null ? "–" : group.cache_hit_ratio.toFixed(3);
    for (const text of [group.key.tool, group.calls, group.cost_usd, ratio]) row.insertCell().textContent = text;
  }
}

async function loadServices() {
  const now = new Date(Date.now() + 60_000);
  const summary = await getJson("/api/v1/summary", {
    start: isoMinute(new Date(now.getTime() - 30 * 86_400_000)), end: isoMinute(now), group_by: "service",
  });
  const select = document.getElementById("service");
  for (const group of summary.groups) {
    select.add(new Option(group.key.service, group.key.service));
  }
}

async function refresh() {
  const status = document.getElementById("status");
  document.body.dataset.state = "loading";
  status.textContent = "loading…";
  try {
    const range = selection();
    const [timeseries, alerts, events, tools] = await Promise.all([
      getJson("/api/v1/timeseries", range),
      getJson("/api/v1/alerts", {}),
      getJson("/api/v1/alert-events", { start: isoMinute(new Date(Date.now() - 30 * 86_400_000)), end: range.end, limit: 1000 }),
      getJson("/api/v1/summary", { ...toolRange(range), service: range.service, group_by: "tool" }),
    ]);
    const runbooks = new Map();
    for (const event of events.events) if (!runbooks.has(event.id) && event.runbook_url) runbooks.set(event.id, event.runbook_url);
    renderAlerts(alerts.alerts, runbooks);
    renderTools(tools.groups);
    const points = timeseries.points;
    const times = points.map((p) => Date.parse(p.time) / 1000);
    draw("chart-spend", times, [{ label: "$/h", stroke: "#3274d9", values: points.map((p) => p.usd_per_hour) }]);
    draw("chart-cache", times, [{ label: "hit ratio", stroke: "#56a64b", values: points.map((p) => p.cache_hit_ratio) }],
         [{ label: "warning", stroke: "#e0a000", value: 0.5 }, { label: "critical", stroke: "#c4162a", value: 0.3 }]);
    draw("chart-input", times, [{ label: "tokens/call", stroke: "#8f3bb8", values: points.map((p) => p.input_tokens_per_call) }]);
    for (const [id, field] of [["chart-latency", "latency_ms"], ["chart-ttft", "ttft_ms"]]) {
      draw(id, times, [
        { label: "p50", stroke: "#3274d9", values: points.map((p) => p[field].p50) },
        { label: "p99", stroke: "#c4162a", values: points.map((p) => p[field].p99) },
      ], [], true);
    }
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.state = "ready";
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    if (error instanceof Unauthorized) askForKey();
    else document.body.dataset.state = "error";
  }
}

function start() {
  loadServices().catch((error) => { document.getElementById("status").textContent = `error: ${error.message}`; });
  refresh();
}

document.getElementById("controls").addEventListener("change", refresh);
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, document.getElementById("api-key").value);
  document.getElementById("key-form").hidden = true;
  start();
});
start();
setInterval(refresh, 60_000);
