// The leaderboard page: plain DOM and SVG, no external library (it must work offline).
"use strict";
const COLORS = ["#0a6cff", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#1098ad", "#5c940d", "#e67700"];
const state = { sortKey: "val_acc", asc: false, items: [], selected: new Set(), curves: {}, firstLoad: true };

const $ = (sel) => document.querySelector(sel);
const fmt = (x, d = 4) => (x === null || x === undefined ? "-" : Number(x).toFixed(d));
function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
// "3/10 done · trial_ab12 epoch 4/20 · about 6 min left" for an active sweep.
function progressText(p, counts) {
  if (!p) return counts || "-";
  const parts = [`${p.trials_done}/${p.trials_total} done`];
  for (const r of p.running) parts.push(`${r.trial_id.split("-").pop()} epoch ${r.epoch}/${r.epochs_budget ?? "?"}`);
  if (p.eta_s != null) parts.push(`about ${p.eta_s < 90 ? Math.round(p.eta_s) + " s" : Math.round(p.eta_s / 60) + " min"} left`);
  return parts.join(" · ") + (counts ? ` (${counts})` : "");
}
async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

async function loadConfig() {
  const cfg = await getJSON("/config.json");
  $("#ray-link").href = cfg.ray_dashboard;
}

async function loadSweeps() {
  const data = await getJSON("/sweeps?limit=100");
  const body = $("#sweeps tbody");
  body.replaceChildren();
  const sel = $("#f-sweep");
  const chosen = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "all"));
  for (const s of data.items) {
    const tr = el("tr");
    tr.append(el("td", {}, s.id), el("td", {}, s.name));
    tr.append(el("td", { class: `status-${s.status}` }, s.status));
    const counts = Object.entries(s.trial_counts).map(([k, v]) => `${v} ${k}`).join(", ");
    tr.append(el("td", { class: "progress" }, progressText(s.progress, counts)),
      el("td", { class: "num" }, fmt(s.best_trial && s.best_trial.val_acc)));
    tr.append(el("td", {}, new Date(s.created_at).toLocaleString()));
    const job = el("td");
    if (s.links && s.links.ray_dashboard) {
      const a = el("a", { href: s.links.ray_dashboard, target: "_blank" }, s.ray_job_id);
      job.append(a);
    } else job.textContent = "-";
    tr.append(job);
    body.append(tr);
    sel.append(el("option", { value: s.id }, `${s.name} (${s.id})`));
  }
  sel.value = chosen;
}

async function loadBoard() {
  const params = new URLSearchParams({ limit: "200" });
  if ($("#f-sweep").value) params.set("sweep_id", $("#f-sweep").value);
  if ($("#f-model").value) params.set("model", $("#f-model").value);
  const data = await getJSON(`/leaderboard?${params}`);
  state.items = data.items;
  $("#board-total").textContent = `${data.items.length} of ${data.total} trials`;
  const models = new Set(data.items.map((t) => t.model));
  const msel = $("#f-model");
  const chosen = msel.value;
  if (!chosen) {
    msel.replaceChildren(el("option", { value: "" }, "all"));
    for (const m of [...models].sort()) msel.append(el("option", { value: m }, m));
  }
  if (state.firstLoad && data.items.length) {
    data.items.slice(0, 3).forEach((t) => state.selected.add(t.trial_id));
    state.firstLoad = false;
  }
  renderBoard();
  await loadCurves();
}

function renderBoard() {
  const key = state.sortKey;
  const items = [...state.items].sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * (state.asc ? 1 : -1);
  });
  for (const th of document.querySelectorAll("#board th[data-key]")) {
    th.classList.toggle("sorted", th.dataset.key === key);
    th.classList.toggle("asc", th.dataset.key === key && state.asc);
  }
  const body = $("#board tbody");
  body.replaceChildren();
  for (const t of items) {
    const tr = el("tr", { "data-trial": t.trial_id });
    const box = el("input", { type: "checkbox" });
    box.checked = state.selected.has(t.trial_id);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(t.trial_id); else state.selected.delete(t.trial_id);
      loadCurves();
    });
    const cb = el("td"); cb.append(box); tr.append(cb);
    tr.append(el("td", { class: "num" }, t.rank), el("td", {}, t.model));
    tr.append(el("td", { class: "num val-acc" }, fmt(t.val_acc)), el("td", { class: "num" }, fmt(t.test_acc)));
    tr.append(el("td", { class: "num" }, `${t.epochs}/${t.epochs_budget ?? "?"}`));
    tr.append(el("td", { class: `status-${t.status}` }, t.status), el("td", {}, t.sweep_name || t.sweep_id));
    // The Ray node of the trial's latest epoch, shortened (the full id is its tooltip).
    tr.append(el("td", { class: "node", title: t.node_id || "" }, t.node_id ? t.node_id.slice(0, 8) : "-"));
    const cfg = Object.entries(t.config).filter(([k]) => k !== "model")
      .map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(3) : v}`).join(" ");
    tr.append(el("td", { class: "config" }, cfg));
    const dl = el("td");
    if (t.checkpoint_url) dl.append(el("a", { href: t.checkpoint_url }, "download"));
    tr.append(dl);
    body.append(tr);
  }
}

async function loadCurves() {
  const ids = [...state.selected];
  await Promise.all(ids.map(async (id) => {
    try { state.curves[id] = (await getJSON(`/trials/${encodeURIComponent(id)}`)).curves; } catch (e) { /* gone */ }
  }));
  drawChart($("#chart-acc"), ids, "val_acc", "train_acc", [0, 1]);
  drawChart($("#chart-loss"), ids, "val_loss", "train_loss", null);
  const legend = $("#legend");
  legend.replaceChildren();
  ids.forEach((id, i) => {
    const li = el("li"); const sw = el("span"); sw.style.background = COLORS[i % COLORS.length];
    li.append(sw, document.createTextNode(id)); legend.append(li);
  });
}

function drawChart(svg, ids, valKey, trainKey, yRange) {
  const W = 560, H = 300, L = 48, R = 12, T = 12, B = 32;
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const series = ids.map((id) => state.curves[id] || []);
  const maxEpoch = Math.max(1, ...series.flat().map((p) => p.epoch));
  let [ymin, ymax] = yRange || [0, Math.max(0.1, ...series.flat().flatMap((p) => [p[valKey], p[trainKey]]))];
  if (ymax <= ymin) ymax = ymin + 1;
  const x = (e) => L + ((W - L - R) * (e - (maxEpoch > 1 ? 1 : 0))) / Math.max(1, maxEpoch - 1);
  const y = (v) => T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin));
  for (let i = 0; i <= 4; i++) {
    const v = ymin + ((ymax - ymin) * i) / 4;
    svg.append(mk("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e5e7ef" }));
    const t = mk("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#666" });
    t.textContent = v.toFixed(2); svg.append(t);
  }
  const xl = mk("text", { x: (W + L) / 2, y: H - 6, "text-anchor": "middle", "font-size": 11, fill: "#666" });
  xl.textContent = `epoch (1-${maxEpoch})`; svg.append(xl);
  series.forEach((pts, i) => {
    const color = COLORS[i % COLORS.length];
    for (const [key, dash] of [[valKey, ""], [trainKey, "5,4"]]) {
      if (!pts.length) continue;
      const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p.epoch).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
      svg.append(mk("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": dash, class: "curve", "data-trial": ids[i] }));
    }
  });
}

async function refresh() {
  try {
    await loadSweeps();
    await loadBoard();
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
$("#f-sweep").addEventListener("change", loadBoard);
$("#f-model").addEventListener("change", loadBoard);
loadConfig().catch(() => {});
refresh();
setInterval(refresh, 5000);  // live while sweeps run
