// Small SVG charts for the dashboard: time series (lines, bands, bars, stacked bars), a
// feature × window heat map and sparklines. No dependencies; every chart is redrawn from
// scratch, so a chart is a pure function of (container size, data).
//
// Every drawn series carries data-series / data-values attributes: the values as drawn,
// which is what the browser tests compare with the store.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = [
  "#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed",
  "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569",
];

// -- formatting ---------------------------------------------------------------------------
export function fmtNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1 || a === 0) return v.toFixed(2).replace(/\.?0+$/, "") || "0";
  if (a >= 0.001) return v.toPrecision(2);
  return v.toExponential(1);
}

export function fmtPercent(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const p = v * 100;
  if (p === 0) return "0%";
  if (Math.abs(p) < 0.1) return "<0.1%";
  return (Math.abs(p) < 10 ? p.toFixed(1) : p.toFixed(0)) + "%";
}

export function fmtMs(v) {
  return v === null || v === undefined ? "–" : fmtNumber(v) + " ms";
}

export function fmtP(v) {
  if (v === null || v === undefined) return "–";
  return v < 1e-4 ? v.toExponential(1) : v.toPrecision(2);
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtClock(t, withSeconds = true) {
  const d = new Date(t * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return withSeconds ? `${hm}:${pad(d.getSeconds())}` : hm;
}

export function fmtDateTime(t) {
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtClock(t)}`;
}

export function fmtAgo(t, now = Date.now() / 1000) {
  const s = Math.max(0, Math.round(now - t));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

// -- DOM helpers --------------------------------------------------------------------------
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  if (parent) parent.append(node);
  return node;
}

// -- tooltip (one for the page) -----------------------------------------------------------
function tooltipNode() {
  return document.getElementById("tooltip");
}

export function showTooltip(event, rows) {
  const tip = tooltipNode();
  tip.replaceChildren(...rows.map((row) => (row instanceof Node ? row : el("div", {}, row))));
  tip.hidden = false;
  const { innerWidth: w, innerHeight: h } = window;
  const box = tip.getBoundingClientRect();
  let x = event.clientX + 14;
  let y = event.clientY + 14;
  if (x + box.width > w - 8) x = event.clientX - box.width - 14;
  if (y + box.height > h - 8) y = event.clientY - box.height - 14;
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${Math.max(4, y)}px`;
}

export function hideTooltip() {
  tooltipNode().hidden = true;
}

// -- scales -------------------------------------------------------------------------------
function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function yTicks(lo, hi, count = 4) {
  const step = niceStep(hi - lo, count);
  // whole multiples of the step (no accumulated rounding), the top one at or above hi
  const from = Math.ceil(lo / step - 1e-9);
  const to = Math.ceil(hi / step - 1e-9);
  const ticks = [];
  for (let k = from; k <= to; k++) ticks.push(Number((k * step).toPrecision(12)));
  return { ticks, top: to * step };
}

const TIME_STEPS = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function xTicks(t0, t1, width) {
  const want = Math.max(2, Math.floor(width / 90));
  const step = TIME_STEPS.find((s) => (t1 - t0) / s <= want) ?? 86400 * 7;
  const offset = new Date().getTimezoneOffset() * 60; // ticks on local round times
  const ticks = [];
  for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) {
    ticks.push(t);
  }
  const label = (t) =>
    t1 - t0 > 86400 * 1.5
      ? `${pad(new Date(t * 1000).getMonth() + 1)}-${pad(new Date(t * 1000).getDate())} ` +
        fmtClock(t, false)
      : fmtClock(t, step < 60);
  return ticks.map((t) => ({ t, label: label(t) }));
}

function frame(container, height, margin) {
  const width = Math.max(240, Math.floor(container.clientWidth || 600));
  const root = svg("svg", {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    class: "chart-svg",
    role: "img",
  });
  const plot = {
    left: margin.left,
    top: margin.top,
    width: width - margin.left - margin.right,
    height: height - margin.top - margin.bottom,
  };
  return { root, width, plot };
}

// -- thinning: at most a few windows per pixel ----------------------------------------------
/** How many windows go into one drawn bucket, so a long range stays a light drawing. */
function bucketFactor(t0, t1, step, pixels) {
  return Math.max(1, Math.ceil((t1 - t0) / step / Math.max(1, pixels / 2)));
}

/** Mean of the values in each bucket of ``k`` windows (k = 1: the points unchanged). */
function thin(points, t0, step, k) {
  if (k === 1) return points;
  const buckets = new Map();
  for (const p of points) {
    if (p.v === null) continue;
    const t = t0 + Math.floor((p.t - t0) / (k * step)) * k * step;
    const b = buckets.get(t) ?? { t, sum: 0, n: 0 };
    b.sum += p.v;
    b.n += 1;
    buckets.set(t, b);
  }
  return [...buckets.values()].map((b) => ({ t: b.t, v: b.sum / b.n }));
}

// -- time series --------------------------------------------------------------------------
/**
 * Draw a time-series chart into ``container``.
 *
 * opts: {id, domain: [t0, t1], step (window seconds), height, yMin, yMax, format,
 *        series: [{label, color, points: [{t, v}], kind: "line" | "bar", dash}],
 *        bands: [{label, color, lo: [{t, v}], hi: [{t, v}]}],
 *        stack: [{label, color, points}]  (stacked bars, e.g. category shares),
 *        markers: [{t, label}], onZoom(t0, t1), empty}
 */
export function timeChart(container, opts) {
  container.replaceChildren();
  const [t0, t1] = opts.domain;
  const { root, plot } = frame(container, opts.height ?? 190, {
    left: 52, right: 14, top: 12, bottom: 24,
  });
  // a long range of short windows: draw means over k windows (the tooltip says so)
  const k = bucketFactor(t0, t1, opts.step || 60, plot.width);
  const fit = (points) => thin(points, t0, opts.step || 60, k);
  const series = (opts.series ?? []).filter((s) => s.points.length)
    .map((s) => ({ ...s, points: fit(s.points) }));
  const bands = (opts.bands ?? []).filter((b) => b.lo.length && b.hi.length)
    .map((b) => ({ ...b, lo: fit(b.lo), hi: fit(b.hi) }));
  const stack = (opts.stack ?? []).filter((s) => s.points.length)
    .map((s) => ({ ...s, points: fit(s.points) }));
  if (!series.length && !bands.length && !stack.length) {
    container.append(el("div", { class: "empty" }, opts.empty ?? "No data yet"));
    return;
  }
  const format = opts.format ?? fmtNumber;
  const step = (opts.step || 60) * k;
  root.dataset.windowsPerPoint = String(k);
  root.dataset.chart = opts.id ?? "";
  const span = Math.max(1, t1 - t0);
  const x = (t) => plot.left + ((t - t0) / span) * plot.width;
  const bw = Math.max(1, (step / span) * plot.width);
  const gap = bw > 4 ? 1 : 0; // thin bars touch, or they would be mostly gap

  // stacked bars: running totals per window
  const stackTotals = new Map();
  const stacked = stack.map((s) =>
    s.points.map((p) => {
      const base = stackTotals.get(p.t) ?? 0;
      stackTotals.set(p.t, base + (p.v ?? 0));
      return { t: p.t, v: p.v, lo: base, hi: base + (p.v ?? 0) };
    }),
  );

  const values = [
    ...series.flatMap((s) => s.points.map((p) => p.v)),
    ...bands.flatMap((b) => [...b.lo, ...b.hi].map((p) => p.v)),
    ...stackTotals.values(),
  ].filter((v) => v !== null && Number.isFinite(v));
  let lo = opts.yMin ?? Math.min(0, ...values);
  let hi = opts.yMax ?? Math.max(...values);
  if (!(hi > lo)) hi = lo + (Math.abs(lo) || 1);
  const { ticks: all, top } = yTicks(lo, hi);
  hi = opts.yMax ?? top;
  const ticks = all.filter((v) => v <= hi + 1e-12);
  const y = (v) => plot.top + plot.height - ((v - lo) / (hi - lo)) * plot.height;

  // grid and axes
  const grid = svg("g", { class: "grid" }, root);
  for (const v of ticks) {
    svg("line", { x1: plot.left, x2: plot.left + plot.width, y1: y(v), y2: y(v) }, grid);
    const label = svg("text", { x: plot.left - 6, y: y(v) + 4, class: "axis y" }, grid);
    label.textContent = format(v);
  }
  for (const tick of xTicks(t0, t1, plot.width)) {
    svg("line", { x1: x(tick.t), x2: x(tick.t), y1: plot.top, y2: plot.top + plot.height,
      class: "vgrid" }, grid);
    const label = svg("text", { x: x(tick.t), y: plot.top + plot.height + 17, class: "axis x" },
      grid);
    label.textContent = tick.label;
  }

  const layer = svg("g", { class: "data" }, root);
  const mid = (t) => x(t + step / 2);
  const path = (points, yOf = (p) => y(p.v)) => {
    let d = "";
    let prev = null;
    for (const p of points) {
      if (p.v === null || p.v === undefined) {
        prev = null;
        continue;
      }
      const gap = prev === null || p.t - prev.t > step * 1.5;
      d += `${gap ? "M" : "L"}${mid(p.t).toFixed(1)},${yOf(p).toFixed(1)}`;
      prev = p;
    }
    return d;
  };

  stack.forEach((s, i) => {
    const g = svg("g", { "data-series": s.label, "data-values": values_(s.points) }, layer);
    for (const p of stacked[i]) {
      if (!p.v) continue;
      svg("rect", {
        x: x(p.t) + gap / 2, width: Math.max(0.5, bw - gap), y: y(p.hi),
        height: Math.max(0, y(p.lo) - y(p.hi)), fill: s.color,
      }, g);
    }
  });
  for (const b of bands) {
    const his = new Map(b.hi.map((p) => [p.t, p.v]));
    const pairs = b.lo.filter((p) => p.v !== null && his.get(p.t) != null);
    // one polygon per run of consecutive windows
    let run = [];
    const flush = () => {
      if (!run.length) return;
      const upper = run.map((p) => `${mid(p.t).toFixed(1)},${y(his.get(p.t)).toFixed(1)}`);
      const lower = run.slice().reverse().map((p) => `${mid(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      svg("polygon", { points: [...upper, ...lower].join(" "), fill: b.color,
        "fill-opacity": 0.16, "data-band": b.label }, layer);
      run = [];
    };
    for (const p of pairs) {
      if (run.length && p.t - run[run.length - 1].t > step * 1.5) flush();
      run.push(p);
    }
    flush();
  }
  for (const s of series) {
    if (s.kind === "bar") {
      const g = svg("g", { "data-series": s.label, "data-values": values_(s.points),
        fill: s.color }, layer);
      for (const p of s.points) {
        if (p.v === null) continue;
        svg("rect", { x: x(p.t) + gap / 2, width: Math.max(0.5, bw - gap), y: y(Math.max(p.v, 0)),
          height: Math.abs(y(p.v) - y(0)), "fill-opacity": 0.75 }, g);
      }
    } else {
      svg("path", { d: path(s.points), stroke: s.color, fill: "none",
        "stroke-width": s.width ?? 2, "stroke-dasharray": s.dash ?? null,
        "stroke-linejoin": "round", "data-series": s.label,
        "data-values": values_(s.points) }, layer);
      if (s.points.length === 1 && s.points[0].v !== null) {
        svg("circle", { cx: mid(s.points[0].t), cy: y(s.points[0].v), r: 3, fill: s.color },
          layer);
      }
    }
  }
  drawMarkers(root, opts.markers ?? [], x, plot, t0, t1);
  attachHover(root, container, { opts, plot, x, step, t0, t1, series, bands, stack, format });
  container.append(root, legend(series, bands, stack, format));
}

function values_(points) {
  return points.map((p) => (p.v === null ? "" : String(p.v))).join(",");
}

function drawMarkers(root, markers, x, plot, t0, t1) {
  const g = svg("g", { class: "markers" }, root);
  for (const m of markers) {
    if (m.t < t0 || m.t > t1) continue;
    const mx = x(m.t);
    const group = svg("g", { class: `marker ${m.kind ?? "alert"}`, "data-marker": m.label }, g);
    svg("line", { x1: mx, x2: mx, y1: plot.top, y2: plot.top + plot.height }, group);
    svg("path", { d: `M${mx - 5},${plot.top - 1} L${mx + 5},${plot.top - 1} L${mx},${plot.top + 6} Z` },
      group);
    svg("title", {}, group).textContent = m.label;
  }
}

function legend(series, bands, stack, format) {
  const items = [
    ...series.map((s) => ({ label: s.label, color: s.color, last: lastValue(s.points), dash: s.dash })),
    ...bands.map((b) => ({ label: b.label, color: b.color, band: true })),
    ...stack.map((s) => ({ label: s.label, color: s.color, last: lastValue(s.points) })),
  ];
  return el("div", { class: "legend" }, items.map((item) =>
    el("span", { class: "legend-item" },
      el("i", { class: item.band ? "swatch band" : item.dash ? "swatch dash" : "swatch",
        style: `--c:${item.color}` }),
      item.label,
      item.last === undefined ? null : el("b", {}, format(item.last)))));
}

function lastValue(points) {
  for (let i = points.length - 1; i >= 0; i--) if (points[i].v !== null) return points[i].v;
  return null;
}

function attachHover(root, container, ctx) {
  const { plot, x, step, t0, t1, series, bands, stack, format, opts } = ctx;
  const windows = [...new Set([
    ...series.flatMap((s) => s.points.map((p) => p.t)),
    ...stack.flatMap((s) => s.points.map((p) => p.t)),
    ...bands.flatMap((b) => b.lo.map((p) => p.t)),
  ])].sort((a, b) => a - b);
  const cross = svg("line", { class: "crosshair", y1: plot.top, y2: plot.top + plot.height,
    visibility: "hidden" }, root);
  const selection = svg("rect", { class: "selection", y: plot.top, height: plot.height,
    visibility: "hidden" }, root);
  const overlay = svg("rect", { x: plot.left, y: plot.top, width: plot.width,
    height: plot.height, class: "overlay" }, root);
  const toT = (clientX) => {
    const box = root.getBoundingClientRect();
    return t0 + ((clientX - box.left - plot.left) / plot.width) * (t1 - t0);
  };
  let dragFrom = null;
  overlay.addEventListener("mousemove", (event) => {
    const t = toT(event.clientX) - step / 2;
    let best = null;
    for (const w of windows) if (best === null || Math.abs(w - t) < Math.abs(best - t)) best = w;
    if (best === null) return;
    const cx = x(best + step / 2);
    cross.setAttribute("x1", cx);
    cross.setAttribute("x2", cx);
    cross.setAttribute("visibility", "visible");
    if (dragFrom !== null) {
      const a = Math.min(dragFrom.px, event.clientX - root.getBoundingClientRect().left);
      const b = Math.max(dragFrom.px, event.clientX - root.getBoundingClientRect().left);
      selection.setAttribute("x", Math.max(plot.left, a));
      selection.setAttribute("width", Math.min(plot.left + plot.width, b) - Math.max(plot.left, a));
      selection.setAttribute("visibility", "visible");
    }
    const at = (points) => points.find((p) => p.t === best)?.v;
    const rows = [el("div", { class: "tip-title" },
      `${fmtClock(best)} – ${fmtClock(best + step)}${root.dataset.windowsPerPoint !== "1"
        ? ` (mean of ${root.dataset.windowsPerPoint} windows)` : ""}`)];
    const line = (color, label, value) => rows.push(el("div", { class: "tip-row" },
      el("i", { class: "swatch", style: `--c:${color}` }), el("span", {}, label),
      el("b", {}, value)));
    for (const s of series) {
      const v = at(s.points);
      if (v !== undefined) line(s.color, s.label, format(v));
    }
    for (const b of bands) {
      const l = at(b.lo);
      const h = at(b.hi);
      if (l !== undefined && h !== undefined) line(b.color, b.label, `${format(l)} – ${format(h)}`);
    }
    for (const s of stack.slice().reverse()) {
      const v = at(s.points);
      if (v !== undefined && v !== null) line(s.color, s.label, format(v));
    }
    showTooltip(event, rows);
  });
  overlay.addEventListener("mouseleave", () => {
    cross.setAttribute("visibility", "hidden");
    selection.setAttribute("visibility", "hidden");
    dragFrom = null;
    hideTooltip();
  });
  if (opts.onZoom) {
    overlay.addEventListener("mousedown", (event) => {
      dragFrom = { px: event.clientX - root.getBoundingClientRect().left, t: toT(event.clientX) };
    });
    overlay.addEventListener("mouseup", (event) => {
      if (dragFrom === null) return;
      const to = toT(event.clientX);
      const from = dragFrom.t;
      dragFrom = null;
      selection.setAttribute("visibility", "hidden");
      if (Math.abs(to - from) >= step) opts.onZoom(Math.min(from, to), Math.max(from, to));
    });
  }
}

// -- heat map -----------------------------------------------------------------------------
function mix(a, b, f) {
  const pa = a.match(/\w\w/g).map((h) => parseInt(h, 16));
  const pb = b.match(/\w\w/g).map((h) => parseInt(h, 16));
  return `rgb(${pa.map((v, i) => Math.round(v + (pb[i] - v) * f)).join(",")})`;
}

/** Colour of a cell: grey-green when far from drift, amber near it, red once drifted. */
export function driftColor(ratio, drifted) {
  if (drifted) return mix("#f87171", "#991b1b", Math.min(1, Math.max(0, (ratio - 1) / 3)));
  return mix("#e3ebe5", "#f6c453", Math.min(1, Math.max(0, ratio)) ** 2);
}

/**
 * Feature × window heat map. opts: {domain, step, rows: [feature],
 *   cells: Map("feature|t" -> {ratio, drifted, tip: [rows]}), markers, empty}
 */
export function heatMap(container, opts) {
  container.replaceChildren();
  if (!opts.rows.length) {
    container.append(el("div", { class: "empty" }, opts.empty ?? "No drift results yet"));
    return;
  }
  const rowH = 22;
  const [t0, t1] = opts.domain;
  const step = opts.step || 60;
  const labelWidth = Math.min(170, 16 + 7.2 * Math.max(...opts.rows.map((r) => r.length)));
  const { root, plot } = frame(container, opts.rows.length * rowH + 36, {
    left: labelWidth, right: 14, top: 6, bottom: 28,
  });
  root.dataset.chart = "drift-heatmap";
  const span = Math.max(1, t1 - t0);
  const x = (t) => plot.left + ((t - t0) / span) * plot.width;
  const k = bucketFactor(t0, t1, step, plot.width);
  const bw = Math.max(1, ((step * k) / span) * plot.width);
  opts.rows.forEach((row, i) => {
    const label = svg("text", { x: plot.left - 8, y: plot.top + i * rowH + rowH / 2 + 4,
      class: "axis y row-label" }, root);
    label.textContent = row;
    svg("rect", { x: plot.left, y: plot.top + i * rowH + 1, width: plot.width,
      height: rowH - 2, class: "heat-bg" }, root);
  });
  const grid = svg("g", { class: "grid" }, root);
  for (const tick of xTicks(t0, t1, plot.width)) {
    const label = svg("text", { x: x(tick.t), y: plot.top + plot.height + 18, class: "axis x" },
      grid);
    label.textContent = tick.label;
  }
  const cells = svg("g", { class: "cells" }, root);
  // k windows per cell on long ranges: the cell shows the worst of them
  const shown = new Map();
  for (const [key, cell] of opts.cells) {
    const [row, ts] = splitKey(key);
    const t = t0 + Math.floor((Number(ts) - t0) / (k * step)) * k * step;
    const prev = shown.get(`${row}|${t}`);
    const worse = !prev || (cell.drifted && !prev.drifted) ||
      (cell.drifted === prev.drifted && cell.ratio > prev.ratio);
    if (worse) shown.set(`${row}|${t}`, cell);
  }
  for (const [key, cell] of shown) {
    const [row, ts] = splitKey(key);
    const i = opts.rows.indexOf(row);
    const t = Number(ts);
    if (i < 0 || t < t0 || t >= t1) continue;
    const rect = svg("rect", {
      x: x(t) + 0.5, y: plot.top + i * rowH + 1, width: Math.max(1, bw - 1), height: rowH - 2,
      rx: bw > 6 ? 2 : 0, fill: driftColor(cell.ratio, cell.drifted), class: "cell",
      "data-feature": row, "data-window": new Date(t * 1000).toISOString(),
      "data-drifted": cell.drifted ? "1" : "0", "data-effect": cell.ratio.toFixed(3),
    }, cells);
    rect.addEventListener("mousemove", (event) => showTooltip(event, [
      el("div", { class: "tip-title" }, `${row} · ${fmtClock(t)} – ${fmtClock(t + step * k)}` +
        (k > 1 ? ` (worst of ${k} windows)` : "")),
      ...cell.tip,
    ]));
    rect.addEventListener("mouseleave", hideTooltip);
  }
  drawMarkers(root, opts.markers ?? [], x, plot, t0, t1);
  container.append(root, el("div", { class: "legend heat-legend" },
    el("span", { class: "legend-item" }, el("i", { class: "swatch", style: `--c:${driftColor(0, false)}` }), "no drift"),
    el("span", { class: "legend-item" }, el("i", { class: "swatch", style: `--c:${driftColor(0.8, false)}` }), "effect near its threshold"),
    el("span", { class: "legend-item" }, el("i", { class: "swatch", style: `--c:${driftColor(1, true)}` }),
      el("i", { class: "swatch", style: `--c:${driftColor(4, true)}` }), "drifted (darker = larger effect)"),
    el("span", { class: "legend-item muted" }, "hover a cell for the test and its effect size")));
}

function splitKey(key) {
  const at = key.lastIndexOf("|");
  return [key.slice(0, at), key.slice(at + 1)];
}

// -- sparkline ----------------------------------------------------------------------------
export function sparkline(container, points, { color = PALETTE[0], height = 42, label = "" } = {}) {
  container.replaceChildren();
  const values = points.filter((p) => p.v !== null);
  if (values.length < 1) {
    container.append(el("div", { class: "empty small" }, "no traffic in range"));
    return;
  }
  const width = Math.max(120, Math.floor(container.clientWidth || 200));
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "spark",
    "data-series": label, "data-values": values_(points) });
  const t0 = values[0].t;
  const t1 = Math.max(t0 + 1, values[values.length - 1].t);
  const hi = Math.max(...values.map((p) => p.v)) || 1;
  const x = (t) => 2 + ((t - t0) / (t1 - t0)) * (width - 4);
  const y = (v) => height - 3 - (v / hi) * (height - 8);
  const line = values.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
  svg("path", { d: `${line.join("")}L${x(t1)},${height}L${x(t0)},${height}Z`, fill: color,
    "fill-opacity": 0.12 }, root);
  svg("path", { d: line.join(""), stroke: color, fill: "none", "stroke-width": 1.6 }, root);
  container.append(root);
}
