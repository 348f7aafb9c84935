// The page: sweeps, a spec editor (new sweep from a preset, or run one again with edits),
// a sweep's analysis (parallel coordinates, importance, slices), the leaderboard and the
// learning curves. Charts are plotly.js, served by the app itself (/vendor/plotly.min.js):
// the page loads nothing from the internet.
"use strict";
const COLORS = ["#0a6cff", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#1098ad", "#5c940d", "#e67700"];
const LOG_TYPES = new Set(["loguniform", "qloguniform"]);
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const state = {
  sortKey: "val_acc", asc: false, items: [], selected: new Set(), curves: {}, firstLoad: true,
  sweeps: [], cfg: {}, analysisKey: "", cloneOf: null,
};

const $ = (sel) => document.querySelector(sel);
const fmt = (x, d = 4) => (x === null || x === undefined ? "-" : Number(x).toFixed(d));
// A parameter's value: numbers to 3 significant digits (lr 0.001234 -> 0.00123), the rest as they are.
const fmtValue = (v) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(3)).toString() : String(v));
function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
// "3/10 done · trial_ab12 epoch 4/20 · about 6 min left" for an active sweep.
function progressText(p, counts) {
  if (!p) return counts || "-";
  const parts = [p.budget_epochs != null ? `${p.trials_done} done · ${p.epochs_done}/${p.budget_epochs} budget epochs`
    : `${p.trials_done}/${p.trials_total} done`];
  for (const r of p.running) parts.push(`${r.trial_id.split("-").pop()} epoch ${r.epoch}/${r.epochs_budget ?? "?"}`);
  if (p.eta_s != null) parts.push(`about ${p.eta_s < 90 ? Math.round(p.eta_s) + " s" : Math.round(p.eta_s / 60) + " min"} left`);
  return parts.join(" · ") + (counts ? ` (${counts})` : "");
}
async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    const err = new Error(detail || `${url}: ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}
function showText(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

async function loadConfig() {
  state.cfg = await getJSON("/config.json");
  $("#ray-link").href = state.cfg.ray_dashboard;
  $("#e-token-label").hidden = !state.cfg.token_required;
  $("#e-token").value = sessionStorage.getItem("cifar-sweeps-token") || "";
}

// ------------------------------------------------------------------ sweeps

async function loadSweeps() {
  const data = await getJSON("/sweeps?limit=100");
  state.sweeps = data.items;
  const body = $("#sweeps tbody");
  body.replaceChildren();
  for (const s of data.items) body.append(sweepRow(s));
  fillSelect($("#f-sweep"), data.items, "all");
  fillDatasets(data.items);
  fillSelect($("#a-sweep"), data.items, null);
  if (!$("#a-sweep").value) {
    const done = data.items.find((s) => Object.keys(s.trial_counts).length);
    if (done) $("#a-sweep").value = done.id;
  }
}

// A sweep's data set and its classes (label order), e.g. "shapes-48px: circle, square, triangle".
function datasetText(s) {
  if (!s.dataset) return "-";
  const classes = s.classes || [];
  const names = classes.length && classes.length <= 12 ? classes.join(", ") : s.class_count ? `${s.class_count} classes` : "";
  return names ? `${s.dataset}: ${names}` : s.dataset;
}

function fillDatasets(sweeps) {
  const sel = $("#f-dataset");
  const chosen = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "all (grouped)"));
  for (const d of [...new Set(sweeps.map((s) => s.dataset).filter(Boolean))].sort()) sel.append(el("option", { value: d }, d));
  if ([...sel.options].some((o) => o.value === chosen)) sel.value = chosen;
}

function sweepRow(s) {
  const tr = el("tr", { "data-sweep": s.id });
  tr.append(el("td", {}, s.id), el("td", {}, s.name), el("td", { class: "dataset" }, datasetText(s)));
  tr.append(el("td", { class: `status-${s.status}` }, s.status));
  const counts = Object.entries(s.trial_counts).map(([k, v]) => `${v} ${k}`).join(", ");
  const warm = s.warm_trials != null ? ` · warm start: ${s.warm_trials} earlier trials` : "";
  tr.append(el("td", { class: "progress" }, progressText(s.progress, counts) + warm),
    el("td", { class: "num" }, fmt(s.best_trial && s.best_trial.val_acc)));
  tr.append(el("td", {}, new Date(s.created_at).toLocaleString()));
  const job = el("td");
  if (s.links && s.links.ray_dashboard) job.append(el("a", { href: s.links.ray_dashboard, target: "_blank" }, s.ray_job_id));
  else job.textContent = "-";
  const again = el("button", { type: "button", class: "again" }, "run again with edits");
  again.addEventListener("click", () => cloneSweep(s));
  const actions = el("td");
  actions.append(again);
  const ended = !["queued", "running"].includes(s.status);
  if (ended && !searcherCan(s.spec, "grid")) {
    const more = el("button", { type: "button", class: "extend" }, "extend");
    more.addEventListener("click", () => extendSweep(s));
    actions.append(more);
  }
  tr.append(job, actions);
  return tr;
}

// More search trials for an ended sweep, its searcher's state carried (POST /sweeps/{id}/extend).
async function extendSweep(s) {
  const answer = prompt(`How many search trials to add to ${s.name} (${s.id})?`, "5");
  if (answer === null) return;
  const r = await fetch(`/sweeps/${encodeURIComponent(s.id)}/extend`,
    { method: "POST", headers: authHeaders(), body: JSON.stringify({ trials: Number(answer) }) });
  if (!r.ok) {
    if (r.status === 401) $("#e-token-label").hidden = false;
    const body = await r.json().catch(() => ({}));
    alert(`extend: ${r.status} ${body.detail || r.statusText}`);
    return;
  }
  await refresh();
}

function fillSelect(sel, sweeps, allLabel) {
  const chosen = sel.value;
  sel.replaceChildren();
  if (allLabel) sel.append(el("option", { value: "" }, allLabel));
  for (const s of sweeps) sel.append(el("option", { value: s.id }, `${s.name} (${s.id})`));
  if ([...sel.options].some((o) => o.value === chosen)) sel.value = chosen;
}

// ------------------------------------------------------------------ the spec editor

async function loadPresets() {
  const data = await getJSON("/search-spaces");
  const sel = $("#e-preset");
  for (const p of data.items) sel.append(el("option", { value: p.name, title: p.description }, `${p.name} (${p.trials} trials)`));
}

async function usePreset() {
  const name = $("#e-preset").value;
  if (!name) return;
  const spec = await getJSON(`/search-spaces/${encodeURIComponent(name)}`);
  editSpec(spec, `preset ${name}`, null);
}

function cloneSweep(s) {
  const spec = structuredClone(s.spec);
  delete spec.search?.warm_start;
  editSpec(spec, `copy of sweep ${s.id}`, s);
  $("#editor").scrollIntoView();
}

// Whether a spec's searcher can do `what` (warm_start, grid...), as the API's registry says
// (/config.json): the page keeps no list of its own.
function searcherCan(spec, what) {
  const name = spec.search?.algorithm ?? state.cfg.default_searcher;
  return state.cfg.searchers.some((x) => x.name === name && x[what]);
}

function editSpec(spec, source, cloneOf) {
  $("#e-spec").value = JSON.stringify(spec, null, 2);
  $("#e-source").textContent = source;
  state.cloneOf = cloneOf;
  const warmable = cloneOf && searcherCan(spec, "warm_start");
  $("#e-warm-label").hidden = !warmable;
  $("#e-warm").checked = false;
  if (cloneOf) $("#e-warm-id").textContent = cloneOf.id;
  showText($("#e-error"), "");
  $("#e-result").textContent = "";
  planSpec();
}

function authHeaders() {
  const headers = { "Content-Type": "application/json" };
  const token = $("#e-token").value.trim();
  if (token) { headers.Authorization = `Bearer ${token}`; sessionStorage.setItem("cifar-sweeps-token", token); }
  return headers;
}

// A model file behind the API token: fetched with it, then saved from a blob (a plain link
// can't carry the Authorization header).
async function download(url, name) {
  const headers = authHeaders();
  delete headers["Content-Type"];
  const r = await fetch(url, { headers });
  if (!r.ok) {
    if (r.status === 401) $("#e-token-label").hidden = false;  // the token goes in the editor's field
    const body = await r.json().catch(() => ({}));
    alert(`download: ${r.status} ${body.detail || r.statusText}`);
    return;
  }
  const href = URL.createObjectURL(await r.blob());
  const a = el("a", { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

const minutes = (s) => (s == null ? "?" : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

// The spec's cost before Submit (POST /sweeps/plan: nothing is stored or submitted).
async function planSpec() {
  const box = $("#e-plan");
  let spec;
  try { spec = JSON.parse($("#e-spec").value); } catch (e) { box.textContent = ""; return; }
  box.textContent = "planning…";
  const r = await fetch("/sweeps/plan", { method: "POST", headers: authHeaders(), body: JSON.stringify(spec) });
  const p = await r.json().catch(() => ({}));
  if (!r.ok) { box.textContent = `plan: ${r.status} ${p.detail || ""}`; return; }
  const e = p.trial_epochs;
  const lines = [
    `plan: ${p.trials} trials, ${Math.round(e.min)}–${Math.round(e.max)} trial-epochs (about ${Math.round(e.expected)}: ${e.assumption})`,
    `${p.concurrent_trials} at once on ${p.resources.cpus} CPUs, ${p.resources.gpus} GPUs; ` +
      (p.wall_s_expected != null ? `wall time ${minutes(p.wall_s_best)} best, ${minutes(p.wall_s_expected)} expected, ` +
        `${minutes(p.wall_s_worst)} worst (${p.throughput_source})` : `wall time unknown (${p.throughput_source})`),
    `peak memory about ${Math.round(p.peak_mb_per_trial)} MiB per trial (${p.memory_source})`,
    ...p.cuts.map((c) => `cut: ${c}`), ...p.warnings.map((w) => `warning: ${w}`),
  ];
  box.replaceChildren(...lines.map((l) => el("div", { class: l.startsWith("warning") ? "error" : "" }, l)));
}

async function submitSpec() {
  showText($("#e-error"), "");
  $("#e-result").textContent = "";
  let spec;
  try { spec = JSON.parse($("#e-spec").value); } catch (e) { showText($("#e-error"), `not valid JSON: ${e.message}`); return; }
  if (state.cloneOf && $("#e-warm").checked && !$("#e-warm-label").hidden) {
    spec.search = { ...(spec.search || {}), warm_start: { sweeps: [state.cloneOf.id] } };
  }
  const r = await fetch("/sweeps", { method: "POST", headers: authHeaders(), body: JSON.stringify(spec) });
  const body = await r.json().catch(() => ({}));
  if (r.status === 201) {
    $("#e-result").textContent = `created ${body.id} (${body.status})`;
    await refresh();
    return;
  }
  if (r.status === 401) $("#e-token-label").hidden = false;
  showText($("#e-error"), `${r.status}: ${body.detail || r.statusText}`);
}

// ------------------------------------------------------------------ analysis of one sweep

async function loadAnalysis(force = false) {
  const id = $("#a-sweep").value;
  const sweep = state.sweeps.find((s) => s.id === id);
  if (!sweep) return;
  const key = `${id}:${sweep.status}:${JSON.stringify(sweep.trial_counts)}`;
  if (!force && key === state.analysisKey) return;  // nothing new to draw
  state.analysisKey = key;
  const board = await getJSON(`/leaderboard?${new URLSearchParams({ sweep_id: id, limit: "1000" })}`);
  // The search's trials: a refit has its source's score and configuration (no point of its own).
  const trials = board.items.filter((t) => t.val_acc !== null && !t.refit_of);
  const params = Object.entries(sweep.spec.params || {});
  $("#a-note").textContent = `${trials.length} trials with a score; colour and y: best val_acc; ` +
    `searched: ${params.map(([k]) => k).join(", ") || "nothing"}`;
  drawParcoords(params, trials);
  drawSlices(params, trials);
  // A front is the answer of a multi-objective sweep; on another, only when asked for.
  const pareto = Boolean(sweep.spec.objectives) || $("#p-show").checked;
  $("#p-show").checked = pareto;
  $("#a-pareto-box").hidden = !pareto;
  if (pareto) await drawPareto(id);
  await drawImportance(id);
}

const label = (v) => (typeof v === "object" ? JSON.stringify(v) : String(v));

// One axis of a parameter: log10 for log-scale params, indices with labels for choices.
function axisOf(name, p, trials) {
  const raw = trials.map((t) => t.config[name]);
  if (p.type === "choice" || raw.some((v) => typeof v !== "number")) {
    // In the spec's order where the value is one of its choices, then any other seen.
    const order = [...(p.values || []), ...raw].map(label);
    const labels = [...new Set(order)].filter((l) => raw.some((v) => label(v) === l));
    const index = raw.map((v) => labels.indexOf(label(v)));
    return { label: name, values: index, tickvals: labels.map((_, i) => i), ticktext: labels };
  }
  if (LOG_TYPES.has(p.type)) {
    const lo = Math.floor(Math.log10(p.low)), hi = Math.ceil(Math.log10(p.high));
    const ticks = [];
    for (let e = lo; e <= hi; e++) ticks.push(e);
    return { label: `${name} (log)`, values: raw.map(Math.log10), tickvals: ticks, ticktext: ticks.map((e) => `1e${e}`),
      range: [Math.log10(p.low), Math.log10(p.high)] };
  }
  return { label: name, values: raw, ...(p.low !== undefined ? { range: [p.low, p.high] } : {}) };
}

function drawParcoords(params, trials) {
  const acc = trials.map((t) => t.val_acc);
  const dims = params.map(([name, p]) => axisOf(name, p, trials));
  dims.push({ label: "best val_acc", values: acc });
  Plotly.react("a-parcoords", [{
    type: "parcoords", dimensions: dims,
    line: { color: acc, colorscale: "Viridis", showscale: true, colorbar: { title: { text: "val_acc" } } },
  }], { title: { text: "parallel coordinates: one line per trial", y: 0.98 }, height: 400, margin: { l: 60, r: 60, t: 90, b: 30 } },
  PLOT_CONFIG);
}

function drawSlices(params, trials) {
  const n = Math.max(1, params.length);
  const traces = params.map(([name, p], i) => ({
    type: "scatter", mode: "markers", name, x: trials.map((t) => {
      const v = t.config[name];
      return p.type === "choice" || typeof v === "object" ? label(v) : v;
    }), y: trials.map((t) => t.val_acc), xaxis: `x${i ? i + 1 : ""}`, yaxis: "y",
    marker: { color: trials.map((t) => t.val_acc), colorscale: "Viridis", size: 8 },
    text: trials.map((t) => t.trial_id), hovertemplate: `${name}=%{x}<br>val_acc=%{y:.4f}<br>%{text}<extra></extra>`,
  }));
  const layout = { title: { text: "slices: the metric against each parameter" }, showlegend: false, height: 340,
    grid: { rows: 1, columns: n, pattern: "coupled" }, yaxis: { title: { text: "best val_acc" } },
    margin: { l: 60, r: 20, t: 60, b: 50 } };
  params.forEach(([name, p], i) => {
    const choice = p.type === "choice";
    layout[`xaxis${i ? i + 1 : ""}`] = { title: { text: name }, type: LOG_TYPES.has(p.type) ? "log" : (choice ? "category" : "linear"),
      ...(choice ? { categoryorder: "array", categoryarray: p.values.map(label) } : {}) };
  });
  Plotly.react("a-slices", traces, layout, PLOT_CONFIG);
}

async function drawImportance(id) {
  const div = $("#a-importance");
  const sweep = state.sweeps.find((s) => s.id === id);
  // One bar group per objective of a multi-objective sweep; else the sweep's metric.
  const objectives = (sweep && sweep.spec.objectives) ? sweep.spec.objectives.map((o) => o.metric) : [null];
  const imps = [];
  try {
    // One at a time: the service computes one importance at a time (503 to a second).
    for (const m of objectives) imps.push(await importanceOf(id, m));
  } catch (e) {
    Plotly.purge(div);
    div.replaceChildren(el("p", { class: "muted importance-message" }, `importance: ${e.message}`));
    return;
  }
  if (div.querySelector(".importance-message")) div.replaceChildren();
  const names = [...imps[0].params].reverse().map((p) => p.name);  // plotly draws the first bar at the bottom
  const traces = imps.map((imp, i) => {
    const by = Object.fromEntries(imp.params.map((p) => [p.name, p]));
    return { type: "bar", orientation: "h", name: imp.metric, y: names, x: names.map((n) => by[n]?.importance ?? 0),
      text: names.map((n) => (by[n] ? best(by[n]) : "")), textposition: "auto", marker: { color: COLORS[i % COLORS.length] } };
  });
  const title = imps.length > 1 ? `importance per objective (${imps[0].evaluator})`
    : `importance (${imps[0].evaluator}, ${imps[0].trials_used} trials)`;
  Plotly.react(div, traces, { title: { text: title }, height: 340, barmode: "group", showlegend: imps.length > 1,
    xaxis: { title: { text: "share of the metric's variance" }, range: [0, 1] }, margin: { l: 110, r: 20, t: 60, b: 50 } },
  PLOT_CONFIG);
}

async function importanceOf(id, metric) {
  const url = `/sweeps/${encodeURIComponent(id)}/importance` + (metric ? `?objective=${encodeURIComponent(metric)}` : "");
  for (let attempt = 0; ; attempt++) {
    try { return await getJSON(url); } catch (e) {
      if (e.status !== 503 || attempt >= 10) throw e;
      await new Promise((done) => setTimeout(done, 1000));  // another importance is being computed
    }
  }
}

// ------------------------------------------------------------------ Pareto front of one sweep

// The axes a front takes, and which are drawn on a log scale: the service's metric registry
// (/config.json), so the page never lists a metric the API does not know.
const logAxis = (name) => state.cfg.metrics.some((m) => m.name === name && m.log);

async function drawPareto(id) {
  const params = new URLSearchParams();
  if ($("#p-x").value) params.set("x", $("#p-x").value);
  if ($("#p-y").value) params.set("y", $("#p-y").value);
  let data;
  try { data = await getJSON(`/sweeps/${encodeURIComponent(id)}/pareto?${params}`); } catch (e) { return; }
  for (const [sel, v] of [["#p-x", data.x], ["#p-y", data.y]]) {
    if (!$(sel).options.length) for (const m of state.cfg.metrics) $(sel).append(el("option", { value: m.name }, m.name));
    $(sel).value = v;
  }
  const front = data.items.filter((p) => p.rank === 1).sort((a, b) => a.x - b.x);
  const hover = (p) => `${p.trial_id}<br>${p.model}<br>` + Object.entries(p.config).filter(([k]) => k !== "model")
    .map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(3) : v}`).join("<br>");
  const trace = (pts, name, style) => ({ type: "scatter", name, x: pts.map((p) => p.x), y: pts.map((p) => p.y),
    customdata: pts.map((p) => p.trial_id), text: pts.map(hover), hovertemplate: "%{text}<extra></extra>", ...style });
  // Front markers are the smaller ones: where markers overlap, Plotly hovers (and clicks)
  // the smallest marker under the cursor, so a click on a front point picks that trial.
  Plotly.react("a-pareto", [
    trace(data.items.filter((p) => p.rank > 1), "dominated", { mode: "markers", marker: { size: 11, color: "#ced4da" } }),
    trace(front, "Pareto front", { mode: "lines+markers", line: { color: "#d9480f", shape: "hv" },
      marker: { size: 8, color: "#d9480f", line: { color: "#7f2704", width: 1.5 } } }),
  ], { title: { text: `Pareto front: ${data.x} (${data.x_mode}) against ${data.y} (${data.y_mode}); click a point` },
    height: 380, xaxis: { title: { text: data.x }, type: logAxis(data.x) ? "log" : "linear" },
    yaxis: { title: { text: data.y }, type: logAxis(data.y) ? "log" : "linear" },
    margin: { l: 70, r: 20, t: 50, b: 50 } }, PLOT_CONFIG);
  const div = $("#a-pareto");
  if (!div.dataset.wired) {
    div.dataset.wired = "1";
    div.on("plotly_click", (ev) => pickTrial(ev.points[0].customdata));
  }
}

// A trial picked on a chart: its row in the leaderboard is selected (curves, download).
async function pickTrial(trialId) {
  state.selected.add(trialId);
  renderBoard();
  const row = document.querySelector(`#board tr[data-trial="${CSS.escape(trialId)}"]`);
  if (row) { row.classList.add("picked"); row.scrollIntoView({ block: "center" }); }
  await loadCurves();
}

function best(p) {
  if (p.best_values) return `best: ${p.best_values.join(", ")}`;
  if (p.best_low === null || p.best_low === undefined) return "";
  return `best: ${Number(p.best_low).toPrecision(3)}..${Number(p.best_high).toPrecision(3)}`;
}

// ------------------------------------------------------------------ leaderboard

function boardParams() {
  const params = new URLSearchParams();
  if ($("#f-dataset").value) params.set("dataset", $("#f-dataset").value);
  if ($("#f-sweep").value) params.set("sweep_id", $("#f-sweep").value);
  if ($("#f-model").value) params.set("model", $("#f-model").value);
  if ($("#f-status").value) params.set("status", $("#f-status").value);
  for (const f of $("#f-filter").value.split(/\s+/).filter(Boolean)) params.append("filter", f);
  return params;
}

async function loadBoard() {
  const params = boardParams();
  $("#csv-link").href = `/leaderboard.csv?${params}`;
  params.set("limit", "200");
  let data;
  try { data = await getJSON(`/leaderboard?${params}`); } catch (e) {
    if (e.status !== 422) throw e;
    showText($("#board-error"), e.message);
    return;
  }
  showText($("#board-error"), "");
  state.items = data.items;
  $("#board-total").textContent = `${data.items.length} of ${data.total} trials`;
  const msel = $("#f-model");
  if (!msel.value) {
    msel.replaceChildren(el("option", { value: "" }, "all"));
    for (const m of [...new Set(data.items.map((t) => t.model))].sort()) msel.append(el("option", { value: m }, m));
  }
  if (state.firstLoad && data.items.length) {
    data.items.slice(0, 3).forEach((t) => state.selected.add(t.trial_id));
    state.firstLoad = false;
  }
  renderBoard();
  await loadCurves();
}

function sortedItems() {
  const key = state.sortKey;
  return [...state.items].sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * (state.asc ? 1 : -1);
  });
}

function renderBoard() {
  for (const th of document.querySelectorAll("#board th[data-key]")) {
    th.classList.toggle("sorted", th.dataset.key === state.sortKey);
    th.classList.toggle("asc", th.dataset.key === state.sortKey && state.asc);
  }
  const body = $("#board tbody");
  body.replaceChildren();
  for (const t of sortedItems()) body.append(boardRow(t));
}

function boardRow(t) {
  const tr = el("tr", { "data-trial": t.trial_id });
  const box = el("input", { type: "checkbox" });
  box.checked = state.selected.has(t.trial_id);
  box.addEventListener("change", () => {
    if (box.checked) state.selected.add(t.trial_id); else state.selected.delete(t.trial_id);
    loadCurves();
  });
  const cb = el("td"); cb.append(box); tr.append(cb);
  // The sweep's refit: its source's configuration trained again on every training image.
  const model = el("td", {}, t.model);
  if (t.refit_of) {
    tr.classList.add("refit");
    model.append(el("div", { class: "refit-tag", title: `refit of ${t.refit_of}` },
      `refit, ${t.train_images ?? "?"} images`));
  }
  // A continuation: trained on from another trial's last checkpoint (its epochs count on).
  if (t.continue_of) {
    model.append(el("div", { class: "refit-tag", title: `continued from ${t.continue_of}` },
      `continued from ${t.continue_of.slice(-8)}`));
  }
  // Population-based training: each time it went on from another trial's weights with changed params.
  if (t.exploits && t.exploits.length) {
    const steps = t.exploits.map((x) => `epoch ${x.at_epoch}: from ${x.source.slice(-8)} at epoch ${x.from_epoch}, ` +
      Object.keys(x.after).map((k) => `${k} ${fmtValue(x.before[k])} → ${fmtValue(x.after[k])}`).join(", "));
    model.append(el("div", { class: "refit-tag pbt-tag", title: steps.join("\n") },
      `pbt: ${t.exploits.length} exploit${t.exploits.length > 1 ? "s" : ""}`));
  }
  tr.append(el("td", { class: "num" }, t.rank), model);
  tr.append(el("td", { class: "num val-acc" }, fmt(t.val_acc)), el("td", { class: "num" }, fmt(t.test_acc)));
  tr.append(el("td", { class: "num" }, `${t.epochs}/${t.epochs_budget ?? "?"}`));
  const status = el("td", { class: `status-${t.status}`, title: t.error || "" }, t.status);
  // An errored trial says why (its error's last line; GET /trials/{id} has all of it).
  if (t.error) status.append(el("div", { class: "error-reason" }, t.error));
  tr.append(status, el("td", {}, t.sweep_name || t.sweep_id), el("td", {}, t.dataset || "-"));
  // The Ray node of the trial's latest epoch, shortened (the full id is its tooltip).
  tr.append(el("td", { class: "node", title: t.node_id || "" }, t.node_id ? t.node_id.slice(0, 8) : "-"));
  const cfg = Object.entries(t.config).filter(([k]) => k !== "model")
    .map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(3) : v}`).join(" ");
  tr.append(el("td", { class: "config" }, cfg));
  const dl = el("td");
  if (t.checkpoint_url) {
    const a = el("a", { href: t.checkpoint_url, download: `${t.trial_id}.pt` }, "download");
    a.addEventListener("click", (ev) => { ev.preventDefault(); download(t.checkpoint_url, `${t.trial_id}.pt`); });
    dl.append(a);
  }
  tr.append(dl);
  return tr;
}

// ------------------------------------------------------------------ configurations over seeds

async function loadGroups() {
  const params = boardParams();
  params.set("group", "config");
  params.set("limit", "50");
  let data;
  try { data = await getJSON(`/leaderboard?${params}`); } catch (e) {
    if (e.status === 422) return;  // the leaderboard shows the error
    throw e;
  }
  const body = $("#g-board tbody");
  body.replaceChildren();
  for (const g of data.items) body.append(groupRow(g));
  $("#g-verdict").textContent = groupVerdict(data.items);
  // Without a configuration run over seeds the chart would show single runs: say how to get some.
  const seeded = data.items.some((g) => g.n > 1);
  $("#g-none").hidden = seeded;
  $("#g-chart").hidden = !seeded;
  if (seeded) drawGroups(data.items.slice(0, 15));
}

// What the top of the ranking can claim: a plain mark when #1 is not significantly better than #2.
function groupVerdict(items) {
  if (items.length < 2) return "";
  const [a] = items;
  if (a.distinct_from_next === false) return `#1 is not significantly better than #2 (Welch's t-test, p = ${a.p_next.toPrecision(2)}): run more seeds before picking one`;
  if (a.distinct_from_next === true) return `#1 is better than #2 (Welch's t-test, p = ${a.p_next.toPrecision(2)})`;
  return "#1 and #2 are not compared: each needs at least 2 runs (repeat them over seeds)";
}

function groupRow(g) {
  const tr = el("tr", { "data-rank": g.rank });
  if (g.rank === 1 && g.distinct_from_next === false) tr.classList.add("tie");
  tr.append(el("td", { class: "num" }, g.rank), el("td", { class: "num" }, g.n));
  tr.append(el("td", { class: "num" }, fmt(g.val_acc_mean)));
  tr.append(el("td", { class: "num" }, g.n > 1 ? `${fmt(g.val_acc_low)} – ${fmt(g.val_acc_high)}` : "one run"));
  tr.append(el("td", { class: "num" }, fmt(g.test_acc_mean)));
  const vs = { true: "better", false: "not distinguishable", null: "-" }[String(g.distinct_from_next)];
  tr.append(el("td", { class: g.distinct_from_next === false ? "tie-mark" : "", title: g.note }, vs));
  tr.append(el("td", {}, g.sweep_name || g.sweep_id));
  const cfg = Object.entries(g.config).map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(3) : v}`).join(" ");
  tr.append(el("td", { class: "config" }, cfg));
  return tr;
}

function drawGroups(items) {
  const labels = items.map((g) => `#${g.rank} (n=${g.n})`);
  const trace = {
    type: "scatter", mode: "markers", x: labels, y: items.map((g) => g.val_acc_mean), name: "mean val_acc",
    marker: { size: 9, color: items.map((g) => (g.n > 1 ? COLORS[0] : "#999")) },
    error_y: { type: "data", symmetric: false, visible: true,
      array: items.map((g) => (g.val_acc_high == null ? 0 : g.val_acc_high - g.val_acc_mean)),
      arrayminus: items.map((g) => (g.val_acc_low == null ? 0 : g.val_acc_mean - g.val_acc_low)) },
    text: items.map((g) => g.note), hovertemplate: "%{x}: %{y:.4f}<br>%{text}<extra></extra>",
  };
  Plotly.react("g-chart", [trace], {
    title: { text: "mean val_acc and its 95 % interval (grey: one run, no interval)" }, height: 320,
    yaxis: { title: { text: "val_acc" } }, margin: { l: 60, r: 20, t: 50, b: 50 },
  }, PLOT_CONFIG);
}

// ------------------------------------------------------------------ learning curves

async function loadCurves() {
  const ids = [...state.selected];
  await Promise.all(ids.map(async (id) => {
    try { state.curves[id] = (await getJSON(`/trials/${encodeURIComponent(id)}`)).curves; } catch (e) { /* gone */ }
  }));
  drawCurves("chart-acc", ids, "val_acc", "train_acc", "accuracy", [0, 1]);
  drawCurves("chart-loss", ids, "val_loss", "train_loss", "loss", null);
  drawLr("chart-lr", ids);
  await loadCompare(ids);
}

// The ticked trials side by side (GET /trials/compare): their scores, then only the
// configuration keys whose values differ.
async function loadCompare(ids) {
  const table = $("#c-table");
  if (ids.length < 2 || ids.length > 20) { table.hidden = true; $("#c-none").hidden = false; return; }
  let c;
  try { c = await getJSON(`/trials/compare?ids=${ids.map(encodeURIComponent).join(",")}`); } catch (e) { return; }
  const head = el("tr");
  head.append(el("th", {}, ""), ...c.trials.map((t) => el("th", { title: t.id }, t.id.split("-").pop())));
  const rows = [["model", c.trials.map((t) => t.model)]];
  for (const k of ["val_acc", "test_acc", "best_epoch", "epochs", "seconds"]) rows.push([k, c.trials.map((t) => t.scores[k])]);
  for (const [k, vals] of Object.entries(c.differ)) rows.push([k, vals]);
  const body = rows.map(([k, vals]) => {
    const tr = el("tr", { class: k in c.differ ? "differ" : "" });
    tr.append(el("th", {}, k), ...vals.map((v) => el("td", { class: "num" }, v == null ? "-" :
      typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : String(v))));
    return tr;
  });
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...body);
  table.hidden = false;
  $("#c-none").hidden = true;
}

function drawCurves(div, ids, valKey, trainKey, title, yRange) {
  const traces = [];
  ids.forEach((id, i) => {
    const pts = state.curves[id] || [];
    const color = COLORS[i % COLORS.length];
    const short = id.split("-").pop();
    for (const [key, dash, what] of [[valKey, "solid", "val"], [trainKey, "dash", "train"]]) {
      traces.push({ type: "scatter", mode: "lines+markers", name: `${short} ${what}`, legendgroup: id,
        x: pts.map((p) => p.epoch), y: pts.map((p) => p[key]), line: { color, dash, width: 2 }, marker: { size: 4 } });
    }
  });
  Plotly.react(div, traces, {
    title: { text: `${title} (solid: validation, dashed: train)` }, height: 320,
    xaxis: { title: { text: "epoch" }, dtick: 1 }, yaxis: { title: { text: title }, ...(yRange ? { range: yRange } : {}) },
    margin: { l: 60, r: 20, t: 50, b: 50 }, legend: { font: { size: 10 } },
  }, PLOT_CONFIG);
}

// The learning rate of each ticked trial, epoch by epoch: its schedule, and where
// population-based training changed it (a marker at each exploit).
function drawLr(div, ids) {
  const traces = [];
  ids.forEach((id, i) => {
    const pts = state.curves[id] || [];
    const color = COLORS[i % COLORS.length];
    traces.push({ type: "scatter", mode: "lines+markers", name: `${id.split("-").pop()} lr`,
      x: pts.map((p) => p.epoch), y: pts.map((p) => p.lr), line: { color, width: 2, shape: "hv" }, marker: { size: 4 } });
  });
  Plotly.react(div, traces, {
    title: { text: "learning rate (at each epoch's end)" }, height: 280,
    xaxis: { title: { text: "epoch" }, dtick: 1 }, yaxis: { title: { text: "lr" }, type: "log" },
    margin: { l: 60, r: 20, t: 50, b: 50 }, legend: { font: { size: 10 } },
  }, PLOT_CONFIG);
}

// ------------------------------------------------------------------ wiring

async function refresh() {
  try {
    await loadSweeps();
    await loadBoard();
    await loadGroups();
    await loadAnalysis();
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("#updated").textContent = `refresh failed: ${e.message}`;
  }
}

for (const th of document.querySelectorAll("#board th[data-key]")) {
  th.addEventListener("click", () => {
    if (state.sortKey === th.dataset.key) state.asc = !state.asc;
    else { state.sortKey = th.dataset.key; state.asc = th.dataset.key === "rank"; }
    renderBoard();
  });
}
for (const id of ["#f-dataset", "#f-sweep", "#f-model", "#f-status", "#f-filter"]) {
  $(id).addEventListener("change", () => loadBoard().then(loadGroups));
}
$("#a-sweep").addEventListener("change", () => loadAnalysis(true));
for (const id of ["#p-x", "#p-y"]) $(id).addEventListener("change", () => drawPareto($("#a-sweep").value));
$("#p-show").addEventListener("change", () => loadAnalysis(true));
$("#e-preset").addEventListener("change", usePreset);
$("#e-submit").addEventListener("click", submitSpec);
$("#e-spec").addEventListener("change", planSpec);
loadConfig().catch(() => {});
loadPresets().catch(() => {});
refresh();
setInterval(refresh, 5000);  // live while sweeps run
