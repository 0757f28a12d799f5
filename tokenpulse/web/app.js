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

// The page's state lives in its URL (range, service, the calls view's order, filters and window), so a
// view can be shared, reloaded, and linked to from an alert.
const CALL_FILTERS = ["route", "model", "user", "session", "prompt_version", "status"];
// Scope dimensions an alert's calls link may filter on (what the calls API knows).
const SCOPE_FILTERS = ["service", "environment", "provider", "model", "operation", "route", "user", "session",
                       "prompt_version", "router", "tenant"];
const urlState = new URLSearchParams(location.search);

function saveState() {
  const state = new URLSearchParams();
  state.set("range", document.getElementById("range").value);
  const service = document.getElementById("service").value;
  if (service) state.set("service", service);
  const form = document.getElementById("calls-controls");
  state.set("order", form.elements.order.value);
  for (const name of CALL_FILTERS) if (form.elements[name].value) state.set(name, form.elements[name].value);
  for (const name of ["calls_start", "calls_end", "environment", "provider", "operation", "router", "tenant"]) {
    if (urlState.get(name)) state.set(name, urlState.get(name));
  }
  history.replaceState(null, "", `?${state}${location.hash}`);
  document.body.dataset.view = state.toString();
}

function restoreState() {
  const range = document.getElementById("range");
  if ([...range.options].some((o) => o.value === urlState.get("range"))) range.value = urlState.get("range");
  const form = document.getElementById("calls-controls");
  if (urlState.get("order")) form.elements.order.value = urlState.get("order");
  for (const name of CALL_FILTERS) form.elements[name].value = urlState.get(name) || "";
}

// Charts end at the start of the current minute: a minute still filling would draw as a drop in spend.
function selection() {
  const hours = Number(document.getElementById("range").value);
  const end = new Date(Date.now());
  const start = new Date(end.getTime() - hours * 3_600_000);
  const minutes = Math.max(1, Math.ceil((hours * 60) / MAX_POINTS));
  return {
    start: isoMinute(start), end: isoMinute(end), step: minutes * 60,
    service: document.getElementById("service").value,
  };
}

function localTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function timeCell(row, iso) {
  const cell = row.insertCell();
  cell.textContent = localTime(iso);
  cell.title = iso || "";
  return cell;
}

// "unknown" when no call had a price, a lower bound when some had none: never a silent $0.
function costText(cost, unpriced) {
  if (cost == null) return "unknown";
  // For reading: cents for dollars, four decimals below (the API has the exact decimal).
  const shown = Number(cost) >= 1 ? Number(cost).toFixed(2) : Number(cost).toFixed(4);
  return unpriced ? `≥ ${shown} (${unpriced} unpriced)` : shown;
}

// Draws (or redraws) one chart; series: [{label, stroke, values, marks}] (marks: points only, no line),
// lines: constant reference lines; log: a logarithmic y axis (latencies: one 20-minute call must not
// flatten every other minute); empty: "" to draw, else what to say instead (nothing to draw); shade:
// indices of points whose value is unknown, drawn as a shaded band across the chart (not as a value).
function draw(id, times, series, lines = [], log = false, empty = "", shade = []) {
  const figure = document.getElementById(id);
  const plotted = empty ? 0 : series.reduce((n, s) => n + s.values.filter((v) => v != null).length, 0);
  figure.dataset.points = String(plotted);
  if (charts[id]) { charts[id].destroy(); delete charts[id]; }
  figure.querySelector(".empty")?.remove();
  if (!plotted) {
    const message = document.createElement("div");
    message.className = "empty";
    message.textContent = empty || "No calls in this range.";
    figure.append(message);
    return;
  }
  const all = [...series, ...lines.map((l) => ({ ...l, values: times.map(() => l.value), dash: [6, 4] }))];
  const options = {
    width: Math.max(400, figure.clientWidth - 16), height: 220,
    series: [{}, ...all.map((s) => ({
      label: s.label, stroke: s.stroke, width: s.marks ? 0 : 1.5, dash: s.dash, spanGaps: false,
      points: s.marks ? { show: true, size: 7, fill: s.stroke } : undefined,
    }))],
    axes: [{}, { size: 90 }],
    scales: log ? { y: { distr: 3 } } : {},
    legend: { show: true },
    hooks: { draw: [(u) => shadePoints(u, times, shade)] },
  };
  charts[id] = new uPlot(options, [times, ...all.map((s) => s.values)], figure);
}

// Spend of calls whose model has no known price is unknown, never $0: a point whose calls are all
// unpriced is a gap, one where some are is a lower bound and marked, and the note says how many.
function drawSpend(times, points, empty) {
  const unpriced = points.reduce((n, p) => n + (p.unpriced_calls || 0), 0);
  const calls = points.reduce((n, p) => n + p.calls, 0);
  const marked = points.map((p) => (p.unpriced_calls && p.usd_per_hour != null ? p.usd_per_hour : null));
  const series = [{ label: "$/h", stroke: "#3274d9", values: points.map((p) => p.usd_per_hour) }];
  if (marked.some((v) => v != null)) series.push({ label: "lower bound (some calls unpriced)", stroke: "#b45309", values: marked, marks: true });
  // No priced call at all: a line of zeros (the idle minutes) would read as "spent nothing".
  const unknown = calls > 0 && unpriced === calls ? `Spend unknown: none of the ${calls} calls in this range has a known price.` : "";
  const gaps = points.flatMap((p, i) => (p.calls > 0 && p.usd_per_hour == null ? [i] : []));
  draw("chart-spend", times, series, [], false, empty || unknown, gaps);
  const note = document.getElementById("spend-unpriced");
  note.dataset.unpriced = String(unpriced);
  note.dataset.gaps = String(gaps.length);
  note.hidden = unpriced === 0;
  note.textContent = unpriced === 0 ? "" : `${unpriced} of ${calls} calls unpriced (no known price for their model): ` +
    "their spend is left out (a marked lower bound), a shaded gap where a point has no priced call. Price them under [prices.\"<model>\"].";
}

function shadePoints(u, times, indices) {
  const step = times.length > 1 ? times[1] - times[0] : 60;
  const { ctx, bbox } = u;
  ctx.save();
  ctx.fillStyle = "rgba(180, 83, 9, 0.3)";
  for (const i of indices) {
    const left = u.valToPos(times[i], "x", true);
    const width = Math.max(u.valToPos(times[i] + step, "x", true) - left, 3 * devicePixelRatio);
    ctx.fillRect(left, bbox.top, width, bbox.height);
  }
  ctx.restore();
}

function scopeText(scope) {
  return Object.entries(scope).map(([k, v]) => `${k}=${v}`).join(", ");
}

// The calls behind an alert: its scope, from 15 minutes before it became active to 15 minutes after.
function callsLink(alert) {
  const state = new URLSearchParams({ range: document.getElementById("range").value, order: "latest" });
  for (const [name, value] of Object.entries(alert.scope)) if (SCOPE_FILTERS.includes(name)) state.set(name, value);
  const onset = Date.parse(alert.active_at);
  state.set("calls_start", new Date(onset - 15 * 60_000).toISOString());
  state.set("calls_end", new Date(onset + 15 * 60_000).toISOString());
  return `?${state}#calls-section`;
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
    // The state it really has: firing, or explained / inhibited / silenced by what, as receivers see it.
    const cells = [alert.status || alert.state, alert.severity, alert.detector, scopeText(alert.scope), alert.summary];
    for (const text of cells) row.insertCell().textContent = text;
    timeCell(row, alert.fired_at || alert.active_at);
    const link = document.createElement("a");
    // The runbook recorded with the alert's firing; the daemon's own runbooks otherwise.
    link.href = runbooks.get(alert.id) ||
      `/runbooks/${encodeURIComponent(alert.detector)}?alert=${encodeURIComponent(alert.id)}`;
    link.textContent = "runbook";
    link.target = "_blank";
    link.rel = "noopener";
    row.insertCell().append(link);
    const calls = document.createElement("a");
    calls.href = callsLink(alert);
    calls.className = "calls-link";
    calls.textContent = "calls";
    row.insertCell().append(calls);
  }
}

// Open incidents, each with its alerts inside (and the state each really has) and its most likely cause.
function renderIncidents(incidents) {
  const body = document.querySelector("#incidents tbody");
  body.replaceChildren();
  document.getElementById("no-incidents").hidden = incidents.length > 0;
  for (const incident of incidents) {
    const row = body.insertRow();
    row.className = incident.severity;
    row.dataset.incident = incident.id;
    row.insertCell().textContent = incident.severity;
    const title = document.createElement("a");
    title.href = `/incidents/${encodeURIComponent(incident.id)}`;
    title.textContent = incident.title;
    row.insertCell().append(title);
    const list = document.createElement("ul");
    for (const alert of incident.alerts) {
      const item = document.createElement("li");
      item.textContent = `${alert.detector} [${scopeText(alert.scope)}]: ${alert.state}`;
      list.append(item);
    }
    row.insertCell().append(list);
    row.insertCell().textContent = incident.cause[0].why;
    timeCell(row, incident.started_at);
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
    const cost = costText(group.cost_usd, group.unpriced_calls);
    for (const text of [group.key.tool, group.calls, cost, ratio]) row.insertCell().textContent = text;
  }
}

// What each detector makes of its scopes (/api/v1/coverage): "no alert" told from "not looking".
function renderCoverage(coverage) {
  const body = document.querySelector("#coverage tbody");
  body.replaceChildren();
  const names = Object.keys(coverage.totals).sort();
  document.getElementById("no-coverage").hidden = names.length > 0;
  for (const name of names) {
    const totals = coverage.totals[name];
    const row = body.insertRow();
    row.dataset.coverage = name;
    row.insertCell().textContent = name;
    for (const status of ["watched", "learning", "not_applicable"]) {
      const cell = row.insertCell();
      cell.className = "num";
      cell.textContent = totals[status] ?? 0;
    }
    const learning = coverage.scopes.filter((s) => s.detector === name && s.status === "learning");
    const example = learning[0];
    row.insertCell().textContent = example
      ? `${Object.entries(example.scope).map(([k, v]) => `${k}=${v}`).join(", ")}: ${example.note}` : "";
  }
}

// Quality beside cost (the summary's ``quality``), in one short cell: the pass rate of the first
// evaluation of a group that has one (else its mean score) and the dollars per passing answer; every
// evaluation in the cell's title.
function qualityCell(group) {
  const entries = Object.entries(group.quality || {});
  const [, q] = entries.find(([, e]) => e.pass_rate != null) || entries.find(([, e]) => e.mean_score != null) || [];
  if (!q) return { text: "–", title: "" };
  const quality = q.pass_rate != null ? `${Math.round(q.pass_rate * 100)}%` : `score ${q.mean_score.toFixed(2)}`;
  const perPass = q.usd_per_passing_answer == null ? "" : ` · $${Number(q.usd_per_passing_answer).toPrecision(2)}`;
  const title = entries.map(([n, e]) => `${n}: ${e.evaluations} evaluated` +
    (e.pass_rate != null ? `, ${Math.round(e.pass_rate * 100)}% of ${e.judged} pass` : "") +
    (e.mean_score != null ? `, mean score ${e.mean_score}` : "") +
    (e.usd_per_passing_answer != null ? `, $${e.usd_per_passing_answer} per passing answer` : "")).join("\n");
  return { text: quality + perPass, title };
}

function renderTop(id, summary, dimension) {
  const box = document.getElementById(id);
  box.querySelector("table")?.remove();
  box.querySelector(".empty")?.remove();
  const groups = summary.groups.filter((g) => g.calls > 0);
  box.dataset.rows = String(Math.min(groups.length, 10));
  if (!groups.length) {
    box.insertAdjacentHTML("beforeend", '<div class="empty">No calls in this range.</div>');
    return;
  }
  const table = document.createElement("table");
  // Quality columns only where the summary has evaluations for this dimension's groups.
  const withQuality = groups.some((g) => g.quality && Object.keys(g.quality).length);
  table.innerHTML = '<thead><tr><th></th><th class="num">calls</th><th class="num">errors</th>' +
    '<th class="num">cost $</th><th class="num">p99 ms</th>' +
    (withQuality ? '<th class="num" title="judge pass rate (or mean score) · dollars per passing answer">pass · $/pass</th>' : "") +
    "</tr></thead><tbody></tbody>";
  const add = (label, group, className) => {
    const row = table.tBodies[0].insertRow();
    if (className) row.className = className;
    row.insertCell().textContent = label;
    for (const text of [group.calls, group.errors, costText(group.cost_usd, group.unpriced_calls),
                        group.latency_ms.p99 == null ? "–" : Math.round(group.latency_ms.p99)]) {
      const cell = row.insertCell();
      cell.className = "num";
      cell.textContent = text;
      if (text === "unknown" || String(text).includes("unpriced")) cell.classList.add("unknown");
    }
    if (!withQuality) return;
    const { text, title } = qualityCell(group);
    const cell = row.insertCell();
    cell.className = "num quality";
    cell.textContent = text;
    cell.title = title;
  };
  for (const group of groups.slice(0, 10)) {
    add(group.key[dimension] || "(none)", group);
    // A model row is the model asked for; the dated names it was answered as, on hover.
    if (group.response_models?.length) {
      const rows = table.tBodies[0].rows;
      rows[rows.length - 1].cells[0].title = `answered as ${group.response_models.join(", ")}`;
    }
  }
  if (summary.totals) add(groups.length > 10 ? `total (${groups.length})` : "total", summary.totals, "total");
  box.append(table);
}

async function downloadCsv(dimension) {
  const range = liveRange();
  const params = { start: range.start, end: range.end, group_by: dimension, service: range.service };
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  const key = sessionStorage.getItem(KEY_STORAGE);
  const response = await fetch(`/api/v1/summary.csv?${query}`, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `tokenpulse-${dimension}.csv`;
  link.click();
}

// Tables and calls include the current minute: they count calls, not rates.
function liveRange() {
  const range = selection();
  return { ...range, end: isoMinute(new Date(Date.now() + 60_000)) };
}

let callsOffset = 0;

function callsQuery() {
  const range = liveRange();
  const form = document.getElementById("calls-controls");
  const params = { start: urlState.get("calls_start") || range.start, end: urlState.get("calls_end") || range.end,
                   order: form.elements.order.value, limit: 50, service: urlState.get("service") || range.service };
  for (const name of CALL_FILTERS) params[name] = form.elements[name].value;
  for (const name of ["environment", "provider", "operation", "router", "tenant"]) params[name] = urlState.get(name);
  return params;
}

async function loadCalls(append = false) {
  const params = callsQuery();
  if (!append) callsOffset = 0;
  const page = await getJson("/api/v1/calls", { ...params, offset: callsOffset });
  const table = document.getElementById("calls");
  const body = table.tBodies[0];
  if (!append) body.replaceChildren();
  document.getElementById("calls-window").textContent =
    `${localTime(page.start)} – ${localTime(page.end)}` + (urlState.get("calls_start") ? " (around the alert's onset)" : "");
  for (const call of page.calls) {
    const row = body.insertRow();
    row.className = call.status;
    row.dataset.span = call.span_id;
    timeCell(row, call.ended_at);
    for (const text of [call.service, call.route, call.model, call.user, call.session, call.prompt_version, call.status]) {
      row.insertCell().textContent = text;
    }
    const figures = [Math.round(call.duration_ms), call.ttft_ms == null ? "–" : Math.round(call.ttft_ms),
                     call.input_tokens, call.cache_read_tokens, call.output_tokens, call.reasoning_tokens,
                     costText(call.cost_usd, 0)];
    for (const text of figures) {
      const cell = row.insertCell();
      cell.className = "num";
      cell.textContent = text;
      if (text === "unknown") cell.classList.add("unknown");
    }
    row.insertCell().textContent = call.parent ? `${call.parent.kind}: ${call.parent.name}` : "";
    const trace = row.insertCell();
    trace.className = "trace";
    trace.textContent = call.trace_id.slice(0, 12);
    trace.title = call.trace_id;
  }
  table.dataset.calls = String(body.rows.length);
  document.getElementById("no-calls").hidden = body.rows.length > 0;
  document.getElementById("calls-more").hidden = page.next_offset == null;
  callsOffset = page.next_offset ?? callsOffset;
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
  // A service from the URL that has no calls in 30 days is still the one asked for.
  const wanted = urlState.get("service");
  if (wanted && ![...select.options].some((o) => o.value === wanted)) select.add(new Option(wanted, wanted));
  if (wanted) select.value = wanted;
}

async function refresh() {
  const status = document.getElementById("status");
  document.body.dataset.state = "loading";
  status.textContent = "loading…";
  try {
    const range = selection();
    const live = liveRange();
    const tops = ["model", "route", "user"].map((dimension) => getJson("/api/v1/summary", {
      start: live.start, end: live.end, group_by: dimension, service: live.service,
    }));
    const [timeseries, alerts, events, tools, coverage, ...summaries] = await Promise.all([
      getJson("/api/v1/timeseries", range),
      getJson("/api/v1/alerts", {}),
      getJson("/api/v1/alert-events", { start: isoMinute(new Date(Date.now() - 30 * 86_400_000)), end: live.end, limit: 1000 }),
      getJson("/api/v1/summary", { ...toolRange(range), service: range.service, group_by: "tool" }),
      getJson("/api/v1/coverage", {}),
      ...tops,
    ]);
    renderCoverage(coverage);
    ["model", "route", "user"].forEach((dimension, i) => renderTop(`top-${dimension}`, summaries[i], dimension));
    await loadCalls();
    const runbooks = new Map();
    for (const event of events.events) if (!runbooks.has(event.id) && event.runbook_url) runbooks.set(event.id, event.runbook_url);
    renderAlerts(alerts.alerts, runbooks);
    renderIncidents((await getJson("/api/v1/incidents", { state: "open" })).incidents);
    renderTools(tools.groups);
    const points = timeseries.points;
    const times = points.map((p) => Date.parse(p.time) / 1000);
    // No call in the whole range: say so, rather than draw a flat 0 (spend) on an empty axis. The charts
    // stop at the last whole minute, the tables do not: calls of the current minute only (a new user's
    // first calls) are said to be there, not "no calls" beside tables that list them.
    const current = summaries[0].totals ? summaries[0].totals.calls : 0;
    const empty = points.some((p) => p.calls > 0) ? ""
      : current > 0 ? `${current} call(s) so far, all in the current minute: the charts draw whole minutes, from the next refresh on.`
      : "No calls in this range.";
    drawSpend(times, points, empty);
    draw("chart-cache", times, [{ label: "hit ratio", stroke: "#56a64b", values: points.map((p) => p.cache_hit_ratio) }],
         [], false, empty);  // the detector compares each route with its own usual ratio: no fixed line
    draw("chart-input", times, [{ label: "tokens/call", stroke: "#8f3bb8", values: points.map((p) => p.input_tokens_per_call) }], [], false, empty);
    for (const [id, field] of [["chart-latency", "latency_ms"], ["chart-ttft", "ttft_ms"]]) {
      draw(id, times, [
        { label: "p50", stroke: "#3274d9", values: points.map((p) => p[field].p50) },
        { label: "p99", stroke: "#c4162a", values: points.map((p) => p[field].p99) },
      ], [], true, empty);
    }
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.state = "ready";
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    if (error instanceof Unauthorized) askForKey();
    else document.body.dataset.state = "error";
  }
}

async function start() {
  restoreState();
  // The service list first: a service from the URL must be selected before the first refresh reads it.
  await loadServices().catch((error) => { document.getElementById("status").textContent = `error: ${error.message}`; });
  saveState();
  await refresh();
}

function leaveAlertWindow() {
  // Changing the view by hand leaves an alert's fixed window and scope for the page's own range.
  for (const name of ["calls_start", "calls_end", "environment", "provider", "operation", "router", "tenant"]) urlState.delete(name);
  urlState.set("service", document.getElementById("service").value);
}

document.getElementById("controls").addEventListener("change", () => { leaveAlertWindow(); saveState(); refresh(); });
document.getElementById("calls-controls").addEventListener("submit", (event) => {
  event.preventDefault();
  saveState();
  loadCalls().catch((error) => { document.getElementById("status").textContent = `error: ${error.message}`; });
});
document.getElementById("calls-order").addEventListener("change", () => {
  saveState();
  loadCalls().catch((error) => { document.getElementById("status").textContent = `error: ${error.message}`; });
});
document.getElementById("calls-clear").addEventListener("click", () => {
  document.getElementById("calls-controls").reset();
  leaveAlertWindow();
  saveState();
  loadCalls().catch((error) => { document.getElementById("status").textContent = `error: ${error.message}`; });
});
document.getElementById("calls-more").addEventListener("click", () => {
  loadCalls(true).catch((error) => { document.getElementById("status").textContent = `error: ${error.message}`; });
});
for (const box of document.querySelectorAll(".top")) {
  const link = document.createElement("button");
  link.type = "button";
  link.className = "csv";
  link.textContent = "CSV";
  link.addEventListener("click", () => downloadCsv(box.dataset.dimension));
  box.querySelector("h3").append(link);
}
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, document.getElementById("api-key").value);
  document.getElementById("key-form").hidden = true;
  start();
});
start();
setInterval(refresh, 60_000);
