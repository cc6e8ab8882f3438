// The study page: renders /api/studies/{name} and polls it, so trials appear as a sweep tells
// them. The server answers 304 while nothing changed; sort, filters, selection and scroll
// survive an update because only the data is replaced, never the page.
"use strict";
(function () {
  const app = document.getElementById("app");
  if (!app) return;
  const API = app.dataset.api;
  const STUDY = app.dataset.study;
  const EVERY = Number(app.dataset.refresh) || 3000;
  const PAGE = 200;
  const COLORS = {
    front: "#1f5fa8", feasible: "#8fb5e0", infeasible: "#e07b39", baseline: "#1d1d1f",
    floor: "#c0392b",
  };
  const LABELS = {
    baseline: "baseline", front: "Pareto front", feasible: "feasible",
    infeasible: "infeasible (below the floor)", failed: "failed", rejected: "rejected",
    running: "running", queued: "queued", repeat: "repeat",
  };
  // Optuna's state names as people read them (the controller tells a refused candidate PRUNED).
  const STATES = { COMPLETE: "complete", FAIL: "failed", PRUNED: "rejected", RUNNING: "running", WAITING: "queued" };
  // Trials without measurements: listed under the chart instead of plotted.
  const UNPLOTTED = {
    repeat: ["↻", "the same candidate as an earlier trial: its measurement was reused, so it is plotted once, as that trial"],
    failed: ["✕", "not measured, so not plotted"], rejected: ["⊘", "refused before building"],
    running: ["◌", "in flight"], queued: ["…", "waiting to start"],
  };

  let data = null;
  let etag = null;
  let sort = { key: "n", dir: 1 };
  let limit = PAGE;
  const selected = new Set();
  const $ = (sel) => document.querySelector(sel);
  const trialUrl = (n) => `/studies/${encodeURIComponent(STUDY)}/trials/${n}`;

  // ---- formatting ---------------------------------------------------------------------
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (v, d = 4) => (v === null || v === undefined ? "—" : Number(v).toPrecision(d)
    .replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, ""));
  const pts = (v) => (v === null || v === undefined ? "—" : `${v >= 0 ? "+" : "−"}${Math.abs(v * 100).toFixed(2)}`);
  const times = (v) => (v === null || v === undefined ? "—" : `${v.toFixed(2)}×`);
  // A trial timed on a busy host: its latencies are suspect (its paired speedup less so).
  const loaded = (t) => (t.loaded
    ? ` <span class="pill loaded" title="${esc(t.loaded)}">loaded${t.load === null ? "" : ` ${t.load.toFixed(1)}`}</span>` : "");
  const pill = (t) => `<span class="pill cat-${t.cat}">${esc(t.cat === "repeat" ? `repeat of #${t.repeat_of}`
    : (LABELS[t.cat] ? LABELS[t.cat].split(" (")[0] : t.cat))}</span>`;

  // ---- header ---------------------------------------------------------------------------
  function renderHead() {
    const b = data.baseline;
    $("#floor").innerHTML = data.floor === null ? "—"
      : `<b>${fmt(data.floor)}</b> <span class="muted">(${esc(describeConstraint(data.constraint))})</span>`;
    $("#baseline").innerHTML = b
      ? `<a href="${trialUrl(b.n)}">#${b.n}</a> ${esc(data.metric)} ${fmt(b.acc)} · p50 ${fmt(b.p50)} ms · ${fmt(b.size, 3)} MB`
      : '<span class="muted">not measured yet</span>';
    const c = data.counts;
    const parts = Object.keys(c).sort().map((s) => `<span class="pill state-${s.toLowerCase()}">${c[s]} ${STATES[s] || s.toLowerCase()}${s === "COMPLETE" && data.n_repeats ? ` (${data.n_repeats} repeats)` : ""}</span>`);
    $("#counts").innerHTML = `<b>${data.n_trials}</b> ${parts.join(" ")}`;
    const front = data.trials.filter((t) => t.front && !t.base && t.speedup !== null);
    const best = front.reduce((a, t) => (a === null || t.speedup > a.speedup ? t : a), null);
    $("#best").innerHTML = best
      ? `<b>${times(best.speedup)}</b> <a href="${trialUrl(best.n)}">#${best.n}</a> <span class="muted">${pts(best.dacc)} pts</span>`
      : '<span class="muted">none yet</span>';
    const notice = $("#notice");
    let msg = "";
    const measured = data.trials.filter((t) => !UNPLOTTED[t.cat]).length;
    const broken = data.trials.filter((t) => t.cat === "failed" || t.cat === "rejected").length;
    if (data.n_trials === 0) msg = "No trials yet. This page updates by itself as soon as the sweep records one.";
    else if (broken === data.n_trials) msg = `All ${data.n_trials} trials failed or were rejected; their reasons are in the table below.`;
    else if (data.baseline && data.n_feasible === 0 && measured > 1) msg = `No candidate met the ${esc(data.metric)} floor: only the baseline is feasible.`;
    notice.hidden = !msg;
    notice.textContent = msg;
    app.dataset.revision = data.revision;
  }

  function describeConstraint(c) {
    if (!c || c.max_drop === undefined) return "";
    return c.mode === "relative" ? `baseline − ${(c.max_drop * 100).toFixed(2)}%` : `baseline − ${c.max_drop}`;
  }

  // ---- Pareto chart -----------------------------------------------------------------------
  function hover(t) {
    const acc = `${esc(data.metric)} ${fmt(t.acc)}${t.base ? "" : ` (${pts(t.dacc)} pts)`}`;
    const lat = `p50 ${fmt(t.p50)} ms${t.base ? "" : ` (${times(t.speedup)})`}`;
    return `<b>#${t.n}</b> ${esc(t.recipe || "(no recipe)")}<br>${acc} · ${lat} · ${fmt(t.size, 3)} MB`;
  }

  function renderPareto() {
    const el = $("#pareto");
    const plotted = data.trials.filter((t) => t.p50 !== null && t.acc !== null && !UNPLOTTED[t.cat]);
    // The metric axis shows the feasible band and a margin below it (the server's view):
    // trials further down would squash every other point into the top of the chart, so they
    // are marked on the lower edge instead, at their latency.
    const view = data.view;
    const below = new Set(view ? view.below : []);
    const inView = plotted.filter((t) => !below.has(t.n));
    const maxSize = Math.max(1e-12, ...plotted.map((t) => t.size || 0));
    const diameter = (t) => 7 + 17 * Math.sqrt((t.size || 0) / maxSize);
    const traces = [];
    for (const cat of ["infeasible", "feasible", "front", "baseline"]) {
      const ts = inView.filter((t) => t.cat === cat);
      if (!ts.length) continue;
      const marker = {
        size: ts.map((t) => (cat === "baseline" ? Math.max(16, diameter(t) + 4) : diameter(t))),
        color: COLORS[cat], line: { color: "#ffffff", width: 1 },
      };
      if (cat === "infeasible") Object.assign(marker, { symbol: "circle-open", line: { color: COLORS[cat], width: 2 } });
      if (cat === "feasible") marker.opacity = 0.85;
      if (cat === "front") marker.line = { color: "#0b2e59", width: 1.5 };
      if (cat === "baseline") Object.assign(marker, { symbol: "star", line: { color: "#ffffff", width: 1 } });
      const trace = {
        type: "scatter", mode: "markers", name: LABELS[cat], x: ts.map((t) => t.p50),
        y: ts.map((t) => t.acc), customdata: ts.map((t) => t.n), hovertext: ts.map(hover),
        hovertemplate: "%{hovertext}<extra></extra>", marker, cliponaxis: false,
      };
      if (cat === "front") {
        // The front's trial numbers, so the chart can be read against the table and `best`.
        Object.assign(trace, { mode: "markers+text", text: ts.map((t) => `#${t.n}`), textposition: "middle right",
          textfont: { size: 11, color: "#0b2e59" } });
      }
      traces.push(trace);
    }
    const front = inView.filter((t) => t.front).sort((a, b) => a.p50 - b.p50);
    if (front.length > 1) {
      traces.unshift({
        type: "scatter", mode: "lines", name: "front", x: front.map((t) => t.p50),
        y: front.map((t) => t.acc), line: { shape: "hv", color: COLORS.front, width: 1.5, dash: "dot" },
        hoverinfo: "skip", showlegend: false,
      });
    }
    const xs = plotted.map((t) => t.p50).filter((v) => v > 0);
    const ys = inView.map((t) => t.acc);
    if (data.floor !== null) ys.push(data.floor);
    const logX = xs.length > 1 && Math.max(...xs) / Math.min(...xs) > 4;
    const ticks = logX ? logTicks(Math.min(...xs), Math.max(...xs)) : null;
    const layout = {
      margin: { l: 64, r: 84, t: 16, b: 52 }, height: 420,
      xaxis: { title: { text: "p50 latency (ms)" + (logX ? " — log scale" : "") }, type: logX ? "log" : "linear", zeroline: false, gridcolor: "#eceff3",
        exponentformat: "none", ...(ticks ? { tickvals: ticks, ticktext: ticks.map((v) => fmt(v, 2)) } : {}) },
      yaxis: { title: { text: data.metric }, zeroline: false, gridcolor: "#eceff3" },
      legend: { orientation: "h", y: 1.0, yanchor: "bottom", x: 0 },
      hovermode: "closest", hoverlabel: { align: "left", bgcolor: "#fff", font: { size: 12 } },
      plot_bgcolor: "#fff", paper_bgcolor: "#fff", font: { family: "system-ui, sans-serif", size: 12 },
      shapes: [], annotations: [],
    };
    if (ys.length) {
      const lo = view ? view.low : Math.min(...ys), hi = Math.max(...ys);
      const pad = Math.max((hi - lo) * 0.08, 0.002);
      layout.yaxis.range = [lo - pad, hi + pad];
      const out = plotted.filter((t) => below.has(t.n)).sort((a, b) => a.acc - b.acc);
      if (out.length) {
        traces.push({
          type: "scatter", mode: "markers", name: `below ${fmt(lo, 3)} (on the edge)`, x: out.map((t) => t.p50),
          y: out.map(() => lo - pad), customdata: out.map((t) => t.n), hovertext: out.map(hover),
          hovertemplate: "%{hovertext}<extra>below the chart</extra>", cliponaxis: false,
          marker: { symbol: "triangle-down", size: 11, color: "#9ca3af", line: { color: "#fff", width: 1 } },
        });
        el.dataset.below = out.map((t) => t.n).join(",");
      } else {
        delete el.dataset.below;
      }
    }
    if (data.floor !== null) {
      layout.shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: data.floor, y1: data.floor, line: { color: COLORS.floor, width: 1.5, dash: "dash" } });
      // Labelled in the right margin, where no point can hide under it.
      layout.annotations.push({ xref: "paper", x: 1.01, y: data.floor, xanchor: "left", yanchor: "middle", align: "left", showarrow: false, text: `${esc(data.metric)}<br>floor ${fmt(data.floor)}`, font: { color: COLORS.floor, size: 11 } });
    }
    if (!plotted.length) {
      layout.xaxis.visible = false; layout.yaxis.visible = false;
      layout.annotations.push({ xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { size: 14, color: "#6b7280" },
        text: data.n_trials ? "No measured trials to plot yet" : "No trials yet" });
    }
    Plotly.react(el, traces, layout, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"] });
    if (!el.dataset.bound) {
      el.dataset.bound = "1";
      el.on("plotly_click", (ev) => {
        const p = ev.points && ev.points[0];
        if (p && p.customdata !== undefined) location.href = trialUrl(p.customdata);
      });
    }
    el.dataset.points = String(plotted.length);
    if (layout.yaxis.range) el.dataset.yrange = layout.yaxis.range.map((v) => v.toFixed(4)).join(",");
    renderUnplotted(plotted.filter((t) => below.has(t.n)).sort((a, b) => a.acc - b.acc), view);
  }

  // 1-2-3-5 ticks with full labels (plotly's own log ticks label 0.02..0.09 as "2".."9").
  function logTicks(lo, hi) {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of [1, 2, 3, 5]) {
        const v = m * 10 ** e;
        if (v >= lo / 1.3 && v <= hi * 1.3) out.push(Number(v.toPrecision(3)));
      }
    }
    return out;
  }

  function renderUnplotted(out, view) {
    const box = $("#unplotted");
    const parts = [];
    if (out.length) {
      // Where the trials left off the chart went: named, with their values, one click away.
      const chips = out.map((t) => `<a class="chip cat-below" href="${trialUrl(t.n)}" title="${esc(t.recipe)}">▼ #${t.n} ${fmt(t.acc, 3)}</a>`).join("");
      parts.push(`<div data-testid="below"><span class="label">${out.length} below ${fmt(view.low, 3)}</span> <span class="muted small">(${esc(data.metric)} too far under the floor to share the chart's scale: marked ▼ on its lower edge, at their latency)</span> ${chips}</div>`);
    }
    for (const [cat, [mark, why]] of Object.entries(UNPLOTTED)) {
      const ts = data.trials.filter((t) => t.cat === cat);
      if (!ts.length) continue;
      const title = (t) => (t.reason ? `[${t.stage}] ${t.reason}` : (t.cat === "repeat" ? `repeat of #${t.repeat_of}: ${t.recipe}` : t.recipe));
      const shown = ts.slice(-40).map((t) => `<a class="chip cat-${cat}" href="${trialUrl(t.n)}" title="${esc(title(t))}">${mark} #${t.n}${t.cat === "repeat" ? ` = #${t.repeat_of}` : ""}</a>`).join("");
      const more = ts.length > 40 ? `<span class="muted"> and ${ts.length - 40} earlier</span>` : "";
      const noun = cat === "repeat" && ts.length > 1 ? "repeats" : cat;
      parts.push(`<div><span class="label">${ts.length} ${noun}</span> <span class="muted small">(${why})</span> ${shown}${more}</div>`);
    }
    box.innerHTML = parts.join("");
  }

  // ---- progress and contributions ---------------------------------------------------------
  function renderProgress() {
    const el = $("#progress");
    if (typeof Plotly === "undefined") return;
    const p = data.progress;
    const hasHv = p.hypervolume.some((v) => v !== null);
    const traces = [];
    // Markers too while trials are few, so a step at the last trial is not lost on the edge.
    const mode = p.trial.length <= 60 ? "lines+markers" : "lines";
    const marker = { size: 5 };
    if (hasHv) traces.push({ type: "scatter", mode, marker, name: "hypervolume", x: p.trial, y: p.hypervolume, line: { shape: "hv", color: COLORS.front, width: 2 }, hovertemplate: "after #%{x}: %{y:.4g}<extra>hypervolume</extra>" });
    traces.push({ type: "scatter", mode, marker, name: "best feasible speedup", x: p.trial, y: p.best_speedup, yaxis: hasHv ? "y2" : "y", line: { shape: "hv", color: COLORS.infeasible, width: 2 }, connectgaps: false, hovertemplate: "after #%{x}: %{y:.2f}×<extra>best speedup</extra>" });
    const layout = {
      margin: { l: 56, r: 56, t: 10, b: 40 }, height: 260, showlegend: true,
      legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0 },
      xaxis: { title: { text: "trial" }, gridcolor: "#eceff3", zeroline: false,
        range: p.trial.length ? [p.trial[0] - 0.5, p.trial[p.trial.length - 1] + 0.5] : undefined },
      yaxis: { title: { text: hasHv ? "hypervolume" : "speedup ×" }, gridcolor: "#eceff3", zeroline: false, rangemode: "tozero" },
      plot_bgcolor: "#fff", paper_bgcolor: "#fff", font: { family: "system-ui, sans-serif", size: 11 },
      annotations: [],
    };
    if (hasHv) layout.yaxis2 = { title: { text: "speedup ×" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false };
    const empty = !p.trial.length ? "No trials yet"
      : (!hasHv && !p.best_speedup.some((v) => v !== null) ? "No feasible trial yet" : "");
    if (empty) {
      layout.xaxis.visible = false; layout.yaxis.visible = false; layout.showlegend = false;
      layout.annotations.push({ xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, text: empty, font: { size: 13, color: "#6b7280" } });
    }
    Plotly.react(el, traces, layout, { displaylogo: false, responsive: true, displayModeBar: false });
  }

  function renderContrib() {
    const rows = data.contributions;
    const box = $("#contrib");
    if (!rows.length) { box.innerHTML = '<p class="empty">Nothing measured yet.</p>'; return; }
    const maxS = Math.max(1, ...rows.map((r) => r.median_speedup || 0));
    let html = `<table class="grid compact"><thead><tr><th>Family</th><th>Choice</th><th class="num">Trials</th><th class="num">Feasible</th><th>Median speedup</th><th class="num">Median Δ pts</th><th class="num">Best feasible</th></tr></thead><tbody>`;
    let last = null;
    for (const r of rows) {
      if (!data.families.includes(r.family)) continue;
      const fam = r.family === last ? "" : esc(r.family);
      last = r.family;
      const w = r.median_speedup ? Math.round((100 * r.median_speedup) / maxS) : 0;
      const bar = r.median_speedup === null ? '<span class="muted">—</span>'
        : `<span class="bar"><span style="width:${w}%"></span></span> ${times(r.median_speedup)}`;
      const lost = [r.failed ? `${r.failed} failed` : "", r.rejected ? `${r.rejected} rejected` : ""].filter(Boolean).join(", ");
      const failed = lost ? ` <span class="muted small">(${lost})</span>` : "";
      html += `<tr class="${fam ? "group" : ""}"><td>${fam}</td><td>${esc(r.method)}</td><td class="num">${r.n}${failed}</td><td class="num">${r.feasible}</td><td class="barcell">${bar}</td><td class="num ${r.median_dacc < -0.001 ? "neg" : ""}">${pts(r.median_dacc)}</td><td class="num">${times(r.best_feasible_speedup)}</td></tr>`;
    }
    box.innerHTML = html + "</tbody></table>";
  }

  // ---- table ------------------------------------------------------------------------------
  function buildTechFilters() {
    const box = $("#tech-filters");
    const key = data.families.join(",");
    if (box.dataset.families === key && !box.dataset.stale) return refreshTechOptions();
    box.dataset.families = key;
    box.innerHTML = data.families.map((f, i) => `<label>${esc(f)} <select name="tech${i}" data-family="${esc(f)}"><option value="">all</option></select></label>`).join("");
    refreshTechOptions();
  }

  function refreshTechOptions() {
    data.families.forEach((f, i) => {
      const sel = document.querySelector(`select[name="tech${i}"]`);
      if (!sel) return;
      const have = new Set([...sel.options].map((o) => o.value));
      const methods = [...new Set(data.trials.map((t) => t.tech[i]))].sort();
      for (const m of methods) if (!have.has(m)) sel.add(new Option(m, m));
    });
  }

  function filters() {
    const f = new FormData($("#filters"));
    const get = (k) => String(f.get(k) || "");
    return {
      state: get("state"), cat: get("cat"), metric: get("metric"), text: get("text").toLowerCase(),
      min: get("min") === "" ? null : Number(get("min")), max: get("max") === "" ? null : Number(get("max")),
      tech: data.families.map((_, i) => get(`tech${i}`)),
    };
  }

  function visibleTrials() {
    const f = filters();
    const rows = data.trials.filter((t) => {
      if (f.state && t.state !== f.state) return false;
      if (f.cat === "front" && !t.front) return false;
      if (f.cat === "feasible" && (!t.feas || t.cat === "repeat")) return false;
      if (f.cat === "infeasible" && (t.feas || t.state !== "COMPLETE")) return false;
      if (f.cat === "repeat" && t.cat !== "repeat") return false;
      for (let i = 0; i < f.tech.length; i++) if (f.tech[i] && t.tech[i] !== f.tech[i]) return false;
      if (f.min !== null || f.max !== null) {
        const v = t[f.metric];
        if (v === null || v === undefined) return false;
        if (f.min !== null && v < f.min) return false;
        if (f.max !== null && v > f.max) return false;
      }
      if (f.text && !(t.recipe || "").toLowerCase().includes(f.text)) return false;
      return true;
    });
    const { key, dir } = sort;
    const order = { baseline: 0, front: 1, feasible: 2, infeasible: 3, repeat: 4, running: 5, queued: 6, rejected: 7, failed: 8 };
    rows.sort((a, b) => {
      let x = a[key], y = b[key];
      if (key === "cat") { x = order[x]; y = order[y]; }
      if (x === null || x === undefined) return 1; // missing values last, whichever direction
      if (y === null || y === undefined) return -1;
      if (typeof x === "string") return dir * x.localeCompare(y) || a.n - b.n;
      return dir * (x - y) || a.n - b.n;
    });
    return rows;
  }

  function renderTable() {
    const rows = visibleTrials();
    const shown = rows.slice(0, limit);
    const body = shown.map((t) => {
      const reason = t.reason ? `<div class="reason">[${esc(t.stage)}] ${esc(t.reason)}</div>` : "";
      return `<tr data-n="${t.n}" class="cat-${t.cat}">`
        + `<td class="sel"><input type="checkbox" value="${t.n}" ${selected.has(t.n) ? "checked" : ""} aria-label="select trial ${t.n}"></td>`
        + `<td class="num"><a href="${trialUrl(t.n)}">${t.n}</a></td>`
        + `<td>${pill(t)}${loaded(t)}</td>`
        + `<td class="recipe"><span title="${esc(t.recipe)}">${esc(t.recipe || "—")}</span>${reason}</td>`
        + `<td class="num">${fmt(t.acc)}</td><td class="num ${t.dacc < -0.0005 ? "neg" : ""}">${t.base ? "" : pts(t.dacc)}</td>`
        + `<td class="num">${fmt(t.p50)}</td><td class="num">${fmt(t.p90)}</td>`
        + `<td class="num">${t.base && t.p50 !== null ? "1×" : times(t.speedup)}</td><td class="num">${fmt(t.size, 3)}</td>`
        + `<td class="num">${t.dur === null ? "—" : t.dur.toFixed(1)}</td></tr>`;
    }).join("");
    $("#trials tbody").innerHTML = body || `<tr><td colspan="11" class="empty">${data.n_trials ? "No trial matches the filters." : "No trials yet."}</td></tr>`;
    $("#shown").textContent = `${rows.length} of ${data.n_trials} shown`;
    const more = $("#more");
    more.hidden = rows.length <= limit;
    more.textContent = `Show all ${rows.length}`;
    document.querySelectorAll("#trials th.sortable").forEach((th) => {
      th.setAttribute("aria-sort", th.dataset.key === sort.key ? (sort.dir > 0 ? "ascending" : "descending") : "none");
    });
  }

  function updateCompare() {
    const btn = $("#compare-btn");
    btn.disabled = selected.size < 2;
    btn.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  }

  // ---- wiring -----------------------------------------------------------------------------
  function timed(name, step) {
    // performance marks let experiments/bench_dashboard.py see where page-load time goes.
    performance.mark(`autoopt:${name}:start`);
    step();
    performance.measure(`autoopt:${name}`, `autoopt:${name}:start`);
  }

  let chartsPending = false;
  function render() {
    timed("head", renderHead);
    timed("filters", buildTechFilters);
    timed("table", renderTable);
    timed("contrib", renderContrib);
    if (typeof Plotly === "undefined") { chartsPending = true; return; } // drawn on load
    renderCharts();
  }

  function renderCharts() {
    chartsPending = false;
    timed("pareto", renderPareto);
    // The progress chart is secondary: let the browser paint the Pareto chart first.
    setTimeout(() => timed("progress", renderProgress), 0);
  }

  const plotlyTag = document.getElementById("plotly-js");
  if (plotlyTag) {
    plotlyTag.addEventListener("load", () => { if (data && chartsPending) renderCharts(); });
    plotlyTag.addEventListener("error", () => { $("#pareto").textContent = "plotly.js did not load."; });
  }

  function setLive(text, cls) {
    const el = $("#live");
    el.textContent = text;
    el.className = `live ${cls}`;
  }

  async function load() {
    try {
      const res = await fetch(API, { cache: "no-store", headers: etag ? { "If-None-Match": etag } : {} });
      const now = new Date().toLocaleTimeString();
      if (res.status === 304) { setLive(`${data && data.running ? "sweep running · " : ""}checked ${now}`, "ok"); return; }
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        setLive(`${body.detail || res.statusText} — retrying`, "stale");
        return;
      }
      etag = res.headers.get("ETag");
      data = await res.json();
      render();
      setLive(`${data.running ? "sweep running · " : ""}updated ${now}`, "ok");
    } catch (e) {
      setLive("dashboard server unreachable — retrying", "stale");
    }
  }

  document.querySelectorAll("#trials th.sortable").forEach((th) => {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      sort = { key, dir: sort.key === key ? -sort.dir : (["speedup", "acc", "dacc"].includes(key) ? -1 : 1) };
      if (data) renderTable();
    });
  });
  const form = $("#filters");
  form.addEventListener("submit", (e) => e.preventDefault());
  form.addEventListener("input", () => { limit = PAGE; if (data) renderTable(); });
  $("#reset-filters").addEventListener("click", () => { form.reset(); limit = PAGE; if (data) renderTable(); });
  $("#more").addEventListener("click", () => { limit = Infinity; renderTable(); });
  $("#trials tbody").addEventListener("change", (e) => {
    const box = e.target;
    if (box.type !== "checkbox") return;
    const n = Number(box.value);
    if (box.checked) selected.add(n); else selected.delete(n);
    updateCompare();
  });
  $("#compare-btn").addEventListener("click", () => {
    location.href = `/studies/${encodeURIComponent(STUDY)}/compare?trials=${[...selected].sort((a, b) => a - b).join(",")}`;
  });

  load();
  setInterval(() => { if (!document.hidden) load(); }, EVERY);
})();
