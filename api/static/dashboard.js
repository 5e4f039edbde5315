// The Driftline dashboard: a model list and a page per model, drawn from the JSON API.
//
// Routing lives in the URL hash (#/ and #/models/<name>?range=1h&refresh=10), so a view can
// be bookmarked and shared. Endpoints that a server may not have yet (drift, alerts,
// retraining) are looked up in its OpenAPI document first, and a panel without data says so
// instead of failing.

import {
  PALETTE, el, fmtAgo, fmtClock, fmtDateTime, fmtMs, fmtNumber, fmtP, fmtPercent,
  heatMap, hideTooltip, sparkline, timeChart,
} from "./charts.js";

const RANGES = { "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800,
  all: null };
const DEFAULT_RANGE = "1h";
const DEFAULT_REFRESH = 10;

const state = { path: "/", range: DEFAULT_RANGE, from: null, to: null,
  refresh: DEFAULT_REFRESH, feature: null, slice: null };

// -- URL state ----------------------------------------------------------------------------
function readHash() {
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  const q = new URLSearchParams(search ?? "");
  state.path = path || "/";
  const range = q.get("range");
  state.range = range in RANGES || range === "custom" ? range : DEFAULT_RANGE;
  state.from = Number(q.get("from")) || null;
  state.to = Number(q.get("to")) || null;
  if (state.range === "custom" && !(state.from && state.to)) state.range = DEFAULT_RANGE;
  state.refresh = q.has("refresh") ? Number(q.get("refresh")) || 0 : DEFAULT_REFRESH;
  state.feature = q.get("feature");
  state.slice = q.get("slice");
}

function hrefFor(path, extra = {}) {
  const q = new URLSearchParams({ range: state.range });
  if (state.range === "custom") {
    q.set("from", String(state.from));
    q.set("to", String(state.to));
  }
  q.set("refresh", String(state.refresh));
  for (const [k, v] of Object.entries(extra)) if (v) q.set(k, v);
  return `#${path}?${q}`;
}

function writeHash() {
  history.replaceState(null, "", hrefFor(state.path, { feature: state.feature, slice: state.slice }));
}

/** Long ranges read the store's hourly or daily rollups (`step=`), not every window: a day of
 * 60 s windows is 1,440 points a series, and the rollups answer in tens of milliseconds at
 * 100 million rows (README: Reads at scale). Up to 6 hours, every window. */
function rollupStep() {
  const { start, end } = timeWindow();
  const span = (end ?? Date.now() / 1000) - (start ?? 0);
  if (start === null || span > 8 * 86400) return 86400;
  return span > 6 * 3600 + 60 ? 3600 : null;
}

function timeWindow() {
  if (state.range === "custom") return { start: state.from, end: state.to };
  const seconds = RANGES[state.range];
  return { start: seconds ? Math.floor(Date.now() / 1000 - seconds) : null, end: null };
}

// -- API key ------------------------------------------------------------------------------
// With a key configured, the API answers 401 to reads without one: the page asks for a key
// (the read-only DRIFTLINE_API_READ_KEY is enough) and sends it as a Bearer header on every
// request. It is kept for this tab (sessionStorage), or on this device if asked (localStorage).
const KEY_NAME = "driftline.apiKey";

const storedKey = () => sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME);

function keepKey(key, remember) {
  forgetKey();
  (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
}

class NeedsKey extends Error {
  constructor(hadKey) {
    super(hadKey ? "the API refused this key" : "the API needs a key");
    this.hadKey = hadKey;
  }
}

let askingForKey = false; // the key form is up: auto-refresh must not redraw over it

function askForKey(refused) {
  askingForKey = true;
  setCrumbs([]);
  const input = el("input", { id: "api-key", type: "password", name: "api-key", required: true,
    autocomplete: "current-password", placeholder: "DRIFTLINE_API_READ_KEY or DRIFTLINE_API_KEY" });
  const remember = el("input", { id: "remember-key", type: "checkbox" });
  const form = el("form", { id: "key-form", class: "key-form" },
    el("label", { for: "api-key" }, "API key"), input,
    el("label", { class: "remember" }, remember, "Remember on this device"),
    el("button", { type: "submit" }, "Show the data"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    keepKey(key, remember.checked);
    askingForKey = false;
    syncKeyButton();
    render();
  });
  document.getElementById("problem").hidden = true;
  document.getElementById("view").replaceChildren(el("section", { class: "panel key-panel" },
    el("h1", {}, "This Driftline needs an API key"),
    el("p", {}, "Its API answers only requests that carry a key. The read-only key " +
      "(DRIFTLINE_API_READ_KEY) is enough for the dashboard; the admin key works too."),
    refused ? el("p", { class: "key-refused", role: "alert" },
      "That key was refused: check it and try again.") : null,
    form));
  input.focus();
}

function syncKeyButton() {
  document.getElementById("forget-key").hidden = !storedKey();
}

// -- API ----------------------------------------------------------------------------------
let endpoints = null;

async function getJSON(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const key = storedKey();
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const reply = await fetch(url, { headers });
  if (reply.status === 401) throw new NeedsKey(Boolean(key));
  if (reply.status === 404) return null;
  if (!reply.ok) throw new Error(`${url.pathname} answered HTTP ${reply.status}`);
  return reply.json();
}

/** Which optional endpoints this server has, from its OpenAPI document. */
async function discover() {
  if (endpoints === null) {
    const spec = await getJSON("openapi.json");
    endpoints = new Set(Object.keys(spec?.paths ?? {}));
  }
  return endpoints;
}

const has = (path) => endpoints.has(path);
const enc = encodeURIComponent;
const epoch = (iso) => (iso ? Date.parse(iso) / 1000 : null);
const asList = (body) => (Array.isArray(body) ? body : body?.items ?? body?.alerts ?? body?.jobs ?? body?.versions ?? []);
const first = (obj, ...names) => names.map((n) => obj?.[n]).find((v) => v !== undefined && v !== null);

async function metric(model, name, extra = {}) {
  const { start, end } = timeWindow();
  const step = rollupStep();
  // a rolled-up point: the sum of its windows' counts, the mean of their other figures
  const rolled = step && !extra.version
    ? { step, agg: name.startsWith("traffic.") && name !== "traffic.human_share" ? "sum" : "mean" }
    : {};
  const body = await getJSON(`v1/models/${enc(model)}/metrics`,
    { name, start, end, limit: 100000, ...rolled, ...extra });
  return (body?.series ?? []).map((s) => ({
    metric: s.metric, feature: s.feature, category: s.category, step: s.window_seconds,
    points: s.points.map((p) => ({ t: epoch(p.window_start), v: p.value, version: p.version })),
  }));
}

/** An optional panel's data: a failure there leaves the rest of the page working. */
async function soft(promise, fallback) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof NeedsKey) throw err; // not one panel's problem: the whole page's
    problems.push(err.message);
    return fallback;
  }
}
let problems = [];

async function alerts(alertState, model = null) {
  if (!has("/v1/alerts")) return [];
  return soft(getJSON("v1/alerts", { state: alertState, model, limit: 200 }).then(asList), []);
}

// -- shared pieces ------------------------------------------------------------------------
const latest = (series) => {
  const points = series?.points ?? [];
  for (let i = points.length - 1; i >= 0; i--) if (points[i].v !== null) return points[i];
  return null;
};
const one = (list, feature = "", category = "") =>
  list.find((s) => s.feature === feature && s.category === category) ?? null;
const pts = (series) => series?.points ?? [];

function health({ firing, share, lastWindow, step }) {
  const now = Date.now() / 1000;
  if (firing > 0) return { level: "firing", text: `${firing} alert${firing > 1 ? "s" : ""} firing` };
  if (share && share.v > 0) return { level: "drifting", text: `Drifting · ${fmtPercent(share.v)} of features` };
  if (lastWindow !== null && now - lastWindow > Math.max(300, 10 * (step || 60))) {
    return { level: "quiet", text: `Quiet · last window ${fmtAgo(lastWindow)}` };
  }
  return { level: "healthy", text: "Healthy" };
}

const pill = (h) => el("span", { class: `pill ${h.level}`, "data-health": h.level }, h.text);

function panel(title, body, { id, wide = false, note = null, tools = null } = {}) {
  return el("section", { class: wide ? "panel wide" : "panel", id },
    el("header", {}, el("h2", {}, title), note ? el("span", { class: "note" }, note) : null,
      tools),
    body);
}

function alertTime(a) {
  return epoch(first(a, "fired_at", "started_at", "active_since", "created_at"));
}

/** Where an alert goes on a time axis: the start of its first breaching window. */
function alertWindow(a) {
  return epoch(first(a, "active_since", "fired_at", "started_at"));
}

function alertLabel(a) {
  const what = [first(a, "metric"), first(a, "feature")].filter(Boolean).join(" · ");
  return `${first(a, "severity") ?? "alert"}: ${first(a, "rule_name", "rule", "rule_id") ?? ""}` +
    (what ? ` (${what})` : "");
}

function fmtWhen(t) {
  const sameDay = new Date(t * 1000).toDateString() === new Date().toDateString();
  return sameDay ? fmtClock(t) : fmtDateTime(t);
}

/** Where an alert's trouble is: the top slice it found when it fired, every one in the title. */
function alertFinding(a) {
  const items = a?.findings?.items ?? [];
  if (!items.length) return el("td", { class: "finding empty-finding", title: a?.findings?.note ?? "" }, "–");
  const line = (f) => f.kind === "shift"
    ? `${f.slice}: drift effect ${fmtNumber(f.value)} (overall ${fmtNumber(f.reference)})`
    : `${f.slice}: error ${fmtNumber(f.value)} (elsewhere ${fmtNumber(f.reference)}, ${f.size} examples)`;
  return el("td", { class: "finding", title: [...items.map(line), a.findings.note].filter(Boolean).join("\n") },
    items[0].slice);
}

function alertsTable(list, emptyText, { showModel = true } = {}) {
  if (!list.length) return el("div", { class: "empty" }, emptyText);
  const where = (a) => [showModel ? first(a, "model") : null, first(a, "feature"), first(a, "segment")]
    .filter(Boolean).join(" · ") || (showModel ? "–" : "model");
  return el("table", { class: "table alerts" },
    el("thead", {}, el("tr", {}, ["State", "Severity", "Rule", showModel ? "Model · feature" : "Feature",
      "Value", "Threshold", "Top slice", "Fired"].map((h) => el("th", {}, h)))),
    el("tbody", {}, list.map((a) => {
      const st = first(a, "state", "status") ?? "";
      const since = alertTime(a);
      const resolved = epoch(first(a, "resolved_at"));
      return el("tr", { class: `alert-row ${st}`, "data-alert-state": st },
        el("td", {}, el("span", { class: `pill ${st === "firing" ? "firing" : "resolved"}` }, st || "?")),
        el("td", {}, first(a, "severity") ?? "–"),
        el("td", {}, String(first(a, "rule_name", "rule", "rule_id", "id") ?? "–")),
        el("td", {}, where(a)),
        el("td", { class: "num" }, fmtNumber(first(a, "value"))),
        el("td", { class: "num" }, `${first(a, "comparison", "op") ?? ""} ${fmtNumber(first(a, "threshold"))}`),
        alertFinding(a),
        el("td", { class: "when" }, since ? `${fmtWhen(since)}${resolved ? ` → ${fmtWhen(resolved)}` : ""}` : "–"));
    })));
}

async function postJSON(path, body) {
  const key = storedKey();
  const headers = { Accept: "application/json", "Content-Type": "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const reply = await fetch(new URL(path, document.baseURI), {
    method: "POST", headers, body: JSON.stringify(body) });
  if (!reply.ok) {
    const detail = await reply.json().catch(() => null);
    const why = typeof detail?.detail === "string" ? detail.detail : `HTTP ${reply.status}`;
    throw new Error(reply.status === 403 || reply.status === 401
      ? `tagging needs the admin key (${why})` : why);
  }
  return reply.json();
}

// -- error analysis -----------------------------------------------------------------------
/** The error-analysis table and the newest wrong examples of the range. */
async function errorAnalysis(model) {
  const { start, end } = timeWindow();
  const [table, wrong] = await Promise.all([
    getJSON(`v1/models/${enc(model)}/error-analysis`, { start, end, min_size: 10 }),
    has("/v1/models/{model}/examples")
      ? getJSON(`v1/models/${enc(model)}/examples`, { start, end, errors: "true", limit: 10 })
        .catch(() => null) : null,
  ]);
  return table ? { table, wrong: wrong?.rows ?? [] } : null;
}

function errorAnalysisBody(model, { table, wrong }) {
  const groups = table.rows.length
    ? el("table", { class: "table error-table" },
      el("thead", {}, el("tr", {}, ["Group", "Examples", "Share of data", "Share of errors",
        "Error", "Gap", "Potential gain"].map((h) => el("th", {}, h)))),
      el("tbody", {}, table.rows.slice(0, 12).map((r) => el("tr", { "data-group": r.name,
        "data-kind": r.kind },
      el("td", {}, `${r.kind === "tag" ? "tag " : ""}${r.name}`),
      el("td", { class: "num" }, fmtNumber(r.size)),
      el("td", { class: "num" }, fmtPercent(r.share_of_data)),
      el("td", { class: "num" }, fmtPercent(r.share_of_errors)),
      el("td", { class: "num" }, table.task === "regression" ? fmtNumber(r.error) : fmtPercent(r.error)),
      el("td", { class: `num ${r.gap > 0 ? "bad" : ""}` }, `${r.gap > 0 ? "+" : ""}${
        table.task === "regression" ? fmtNumber(r.gap) : fmtPercent(r.gap)}`),
      el("td", { class: "num" }, fmtNumber(r.potential_gain))))))
    : el("div", { class: "empty" }, "No segment or tag with enough labelled examples in range");
  const status = el("p", { class: "muted", id: "tag-status" });
  const examples = wrong.length
    ? el("table", { class: "table examples" },
      el("thead", {}, el("tr", {}, ["Example", "Segment", "Prediction", "Label", "Tags", "Tag it"]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, wrong.map((x) => {
        const input = el("input", { type: "text", placeholder: "e.g. mislabelled",
          "aria-label": `Tag ${x.id}`, maxlength: "100" });
        const tag = async (e) => {
          e.preventDefault();
          const name = input.value.trim();
          if (!name) return;
          try {
            await postJSON(`v1/models/${enc(model)}/tags`, { tag: name, ids: [x.id] });
            status.textContent = `Tagged ${x.id} "${name}"`;
            input.value = "";
            input.blur();
            render();
          } catch (err) {
            status.textContent = `Could not tag ${x.id}: ${err.message}`;
          }
        };
        return el("tr", { "data-example": x.id },
          el("td", {}, x.id),
          el("td", {}, Object.entries(x.segment ?? {}).map(([k, v]) => `${k}=${v}`).join(" ") || "–"),
          el("td", { class: "num" }, JSON.stringify(x.prediction)),
          el("td", { class: "num" }, JSON.stringify(x.label)),
          el("td", { class: "tags" }, (x.tags ?? []).join(", ") || "–"),
          el("td", {}, el("form", { class: "tag-form", onsubmit: tag }, input,
            el("button", { type: "submit" }, "Tag"))));
      })))
    : el("div", { class: "empty" }, "No wrong examples in range");
  return el("div", { class: "columns" }, el("div", {}, el("h3", {}, "Where the errors are"), groups),
    el("div", {}, el("h3", {}, "Newest wrong examples"), examples, status));
}

// -- overview -----------------------------------------------------------------------------
async function overview() {
  const [models, firing] = await Promise.all([getJSON("v1/models"), alerts("firing")]);
  const rows = await Promise.all((models ?? []).map(async (m) => {
    const [traffic, share] = await Promise.all([
      metric(m.model, "traffic.count"), metric(m.model, "drift.share_drifted"),
    ]);
    return { ...m, traffic: one(traffic), share: one(share),
      firing: firing.filter((a) => a.model === m.model) };
  }));
  return () => {
    setCrumbs([]);
    const view = document.getElementById("view");
    if (!rows.length) {
      view.replaceChildren(el("section", { class: "panel wide onboarding" },
        el("h1", {}, "No models yet"),
        el("p", {}, "Send prediction events to Kafka (topic driftline.predictions, key = model id) " +
          "or POST them to /v1/events. A model appears here once its first window closes."),
        el("p", { class: "muted" }, "Tip: `driftline demo` starts a synthetic model that drifts.")));
      return;
    }
    const cards = rows.map((m) => {
      const last = latest(m.traffic);
      const step = m.traffic?.step ?? 60;
      const h = health({ firing: m.firing.length, share: latest(m.share),
        lastWindow: epoch(m.last_window), step });
      const spark = el("div", { class: "spark-box" });
      const card = el("a", { class: `card ${h.level}`, href: hrefFor(`/models/${enc(m.model)}`),
        "data-model": m.model },
        el("div", { class: "card-head" }, el("h3", {}, m.model), pill(h)),
        el("dl", { class: "stats" },
          stat("Traffic", last ? `${fmtNumber(last.v / step)}/s` : "–", "latest window"),
          stat("Drift share", latest(m.share) ? fmtPercent(latest(m.share).v) : "–", "of features"),
          stat("Firing alerts", String(m.firing.length), has("/v1/alerts") ? "now" : "alarms not enabled"),
          stat("Last window", fmtAgo(epoch(m.last_window)), `${fmtNumber(m.events)} events in ${fmtNumber(m.windows)} windows`)),
        spark);
      return { card, spark, points: pts(m.traffic) };
    });
    const firingPanel = firing.length
      ? panel("Firing alerts", alertsTable(firing, ""), { wide: true })
      : null;
    view.replaceChildren(...[
      el("div", { class: "page-head" }, el("h1", {}, "Models"),
        el("span", { class: "muted" }, `${rows.length} model${rows.length > 1 ? "s" : ""} with stored windows`)),
      firingPanel,
      el("div", { class: "cards" }, cards.map((c) => c.card)),
    ].filter(Boolean));
    for (const c of cards) sparkline(c.spark, c.points, { label: "traffic.count" });
  };
}

function stat(label, value, sub) {
  return el("div", { class: "stat" }, el("dt", {}, label), el("dd", {}, value),
    sub ? el("small", {}, sub) : null);
}

// -- model page ---------------------------------------------------------------------------
const QUALITY_PREFIXES = ["quality.", "labels."];
const ESTIMATED = "quality.estimated.";
const ESTIMATED_HEADLINES = ["accuracy", "mae"]; // CBPE's for classifiers, DLE's for regressors

/** What the estimation route says when the estimates are not to be trusted, or missing. */
function estimationNote(e) {
  if (!e || e.status === "estimating") {
    const r = e?.reliability;
    return r?.reliable ? el("p", { class: "muted", id: "estimation-status", "data-status": "estimating" },
      `Estimates checked against ${r.windows} complete windows: mean error ${fmtNumber(r.mean_abs_error)}`)
      : null;
  }
  const tone = e.status === "unreliable" ? "problem" : "muted";
  const head = { unreliable: "Estimates unreliable: ", unavailable: "No estimated quality: ",
    no_labels: "No estimated quality yet: " }[e.status] ?? "";
  return el("p", { class: tone, id: "estimation-status", "data-status": e.status }, head + e.message);
}
const PREDICTION = "__prediction__"; // the output's name among drift results
// model-level metrics worth comparing across slices (segment values), best first
const SLICE_METRICS = ["quality.accuracy", "quality.mae", "quality.error_rate", "labels.coverage",
  "traffic.count", "output.mean", "output.null_rate", "latency.p95"];
const MAX_SLICES = 12;
// custom (business) metrics: custom.<name>.<stat> from prediction events, and
// labels.custom.<name>.<stat> sent with labels (outcomes); a name may itself hold dots
const CUSTOM_METRIC = /^((?:labels\.)?custom\.(.+))\.(count|mean|sum|p50|p95)$/;
const CUSTOM_LINES = [["mean", PALETTE[5], null], ["p50", PALETTE[4], "4 3"], ["p95", PALETTE[3], "2 2"]];

/** The custom metrics among a model's metric names: [{base, name, outcome}], sorted. */
function customMetrics(metricNames) {
  const found = new Map();
  for (const n of metricNames) {
    const m = CUSTOM_METRIC.exec(n);
    if (m && !found.has(m[1])) found.set(m[1], { base: m[1], name: m[2], outcome: m[1].startsWith("labels.") });
  }
  return [...found.values()].sort((a, b) => a.outcome - b.outcome || a.name.localeCompare(b.name));
}

/** One custom metric's series over the page's time range (overall, like the other charts). */
async function customSeries(model, names, c) {
  const stats = ["mean", "p50", "p95", "count"];
  const lists = await Promise.all(stats.map((stat) => (names.has(`${c.base}.${stat}`)
    ? soft(metric(model, `${c.base}.${stat}`), []) : [])));
  return { ...c, ...Object.fromEntries(stats.map((stat, i) => [stat, one(lists[i])])) };
}

/** One series per slice of the model for one metric (the API's segment= filter). */
async function sliceSeries(model, name, segments) {
  return Promise.all(segments.map((segment) => soft(metric(model, name, { segment }), [])
    .then((list) => ({ segment, series: one(list) }))));
}

// -- versions and deployments -------------------------------------------------------------
// per version, side by side: its latest figure of each (the quality figure: the error rate,
// else the accuracy, whichever is stored), read with version=<v>
const VERSION_METRICS = [["quality.error_rate", "quality.accuracy"], ["latency.p95"],
  ["output.null_rate"], ["drift.share_drifted"]];
const VERSION_FORMAT = { "latency.p95": fmtMs };
const MAX_VERSIONS = 8;
const MAX_VERDICTS = 50;

/** The versions (traffic, latest figures, share per window) and deployments of a model; null
 * when there is nothing to compare: one version and no deployment. */
const SHADOW_SERIES = ["shadow.agreement", "shadow.quality.accuracy", "shadow.quality.live_accuracy"];

async function versionsAndDeployments(model, detail, names) {
  const traffic = (detail.traffic ?? []).slice(0, MAX_VERSIONS);
  const listed = has("/v1/models/{model}/deployments")
    ? asList(await getJSON(`v1/models/${enc(model)}/deployments`)) : [];
  const shadowed = names.has("shadow.joined");
  if (traffic.length < 2 && !listed.length && !shadowed) return null;
  const metricNames = VERSION_METRICS.map((alts) => alts.find((n) => names.has(n)))
    .filter(Boolean);
  const [newest, figures, counts, shadow] = await Promise.all([
    listed.length
      ? soft(getJSON(`v1/models/${enc(model)}/deployments/${enc(listed[0].id)}`), null)
        .then((d) => d ?? listed[0])
      : null,
    Promise.all(traffic.map(({ version }) => Promise.all(metricNames.map((n) =>
      soft(metric(model, n, { version }), []).then((l) => latest(one(l))))))),
    Promise.all(traffic.map(({ version }) =>
      soft(metric(model, "traffic.count", { version }), []).then((l) => one(l)))),
    // a shadow model against the live one on the same requests (the @shadow=true cut)
    Promise.all(SHADOW_SERIES.filter((n) => shadowed && names.has(n)).map((n) =>
      soft(metric(model, n, { shadow: "true" }), []).then((l) => ({ label: n, points: pts(one(l)) })))),
  ]);
  // each version's share of the events, window by window
  const totals = new Map();
  for (const s of counts) for (const p of pts(s)) totals.set(p.t, (totals.get(p.t) ?? 0) + (p.v ?? 0));
  const shares = counts.map((s) => pts(s).filter((p) => p.v !== null && totals.get(p.t) > 0)
    .map((p) => ({ t: p.t, v: p.v / totals.get(p.t) })));
  return {
    versions: traffic.map((t, i) => ({ ...t, figures: figures[i], shares: shares[i] })),
    more: (detail.traffic ?? []).length - traffic.length,
    metricNames, newest, older: listed.slice(1),
    shadow: shadow.filter((s) => s.points.length),
  };
}

const fmtShare = (pct) => `${fmtNumber(pct)}%`; // a deployment's shares are in %
const stateText = (s) => String(s ?? "?").replace("_", " ");

function versionsTable(vd) {
  const roles = new Map();
  if (vd.newest) {
    roles.set(vd.newest.baseline, "baseline");
    roles.set(vd.newest.candidate, "candidate");
  }
  return el("table", { class: "table versions" },
    el("thead", {}, el("tr", {}, ["Version", "Share (last hour)", "Events (last hour)", "Events",
      ...vd.metricNames].map((h, i) => el("th", { class: i ? "num" : null }, h)))),
    el("tbody", {}, vd.versions.map((v) => el("tr", { "data-version": v.version,
      "data-share": String(v.share) },
    el("td", {}, v.version, roles.has(v.version)
      ? el("span", { class: "note role" }, ` ${roles.get(v.version)}`) : null),
    el("td", { class: "num share" }, fmtPercent(v.share)),
    el("td", { class: "num" }, fmtNumber(v.events_last_hour)),
    el("td", { class: "num" }, fmtNumber(v.events)),
    vd.metricNames.map((n, i) => el("td", { class: "num", "data-metric": n },
      (VERSION_FORMAT[n] ?? fmtPercent)(v.figures[i]?.v)))))));
}

/** A deployment's steps (the candidate's share at each), the current one highlighted. */
function deploymentSteps(d) {
  const steps = d.steps ?? [];
  const current = Math.min(d.step ?? 0, steps.length - 1);
  return el("ol", { class: "steps", "aria-label": "Steps" }, steps.map((s, i) => {
    const where = i < current || (d.state === "promoted" && i === current) ? "done"
      : i > current ? "pending" : d.state === "rolled_back" ? "rolled_back" : "current";
    return el("li", { class: `step ${where}`, "data-step": String(i), "data-step-state": where,
      "aria-current": i === current ? "step" : null },
    el("span", { class: "step-n" }, `step ${i + 1}`), el("b", {}, fmtShare(s)));
  }));
}

function verdictsTable(verdicts) {
  if (!verdicts.length) return el("div", { class: "empty small" }, "No verdicts yet: the judge gives one per closed window");
  return el("table", { class: "table verdicts" },
    el("thead", {}, el("tr", {}, ["Window", "Step", "Candidate share", "Decision", "Reason"]
      .map((h) => el("th", { class: h === "Candidate share" ? "num" : null }, h)))),
    el("tbody", {}, verdicts.slice().reverse().slice(0, MAX_VERDICTS).map((v) => {
      const t = epoch(v.window_start);
      return el("tr", { class: "verdict", "data-decision": v.decision,
        "data-window": t ? new Date(t * 1000).toISOString() : null },
      el("td", { class: "when" }, t ? fmtWhen(t) : "–"),
      el("td", {}, String((v.step ?? 0) + 1)),
      el("td", { class: "num" }, fmtShare(v.share)),
      el("td", {}, el("span", { class: `pill decision ${v.decision}` }, v.decision)),
      el("td", {}, v.reason || "–"));
    })));
}

function deploymentBlock(d) {
  const created = epoch(d.created_at);
  const verdicts = d.verdicts ?? [];
  return el("div", { class: "deployment", id: "deployment", "data-deployment": d.id,
    "data-state": d.state },
  el("h3", {}, el("span", { class: "deploy-what" },
    `${d.strategy === "blue_green" ? "Blue-green" : "Canary"} ${d.baseline} → ${d.candidate}`),
  " ", el("span", { class: `pill ${d.state}` }, stateText(d.state))),
  el("p", { class: "deploy-meta muted" }, [
    `candidate share now ${fmtShare(d.share)}`,
    created ? `started ${fmtWhen(created)}` : null,
    d.state !== "active" && d.by ? `by ${d.by}` : null,
    d.reason || null,
  ].filter(Boolean).join(" · ")),
  deploymentSteps(d),
  el("h3", {}, "Verdicts", el("span", { class: "note" }, verdicts.length > MAX_VERDICTS
    ? ` · newest ${MAX_VERDICTS} of ${verdicts.length}` : verdicts.length ? " · newest first" : "")),
  verdictsTable(verdicts));
}

function olderDeployments(list) {
  return el("table", { class: "table deployments-older" },
    el("thead", {}, el("tr", {}, ["Started", "Strategy", "Baseline → candidate", "State", "By",
      "Reason"].map((h) => el("th", {}, h)))),
    el("tbody", {}, list.slice(0, 10).map((d) => {
      const created = epoch(d.created_at);
      return el("tr", { "data-deployment": d.id, "data-state": d.state },
        el("td", { class: "when" }, created ? fmtWhen(created) : "–"),
        el("td", {}, d.strategy),
        el("td", {}, `${d.baseline} → ${d.candidate}`),
        el("td", {}, el("span", { class: `pill ${d.state}` }, stateText(d.state))),
        el("td", {}, d.by || "–"),
        el("td", {}, d.reason || "–"));
    })));
}

function deploymentsBody(vd) {
  return el("div", {},
    el("div", { class: "columns" },
      el("div", {}, el("h3", {}, "Versions side by side"), versionsTable(vd),
        vd.more > 0 ? el("p", { class: "muted" }, `and ${vd.more} more`) : null),
      el("div", {}, el("h3", {}, "Traffic share by version"),
        el("div", { class: "chart", id: "chart-version-share" }))),
    vd.shadow.length
      ? el("div", { class: "shadow" }, el("h3", {}, "Shadow against live",
        el("span", { class: "note" }, " · the same requests: agreement, and accuracy once labels come")),
      el("div", { class: "chart", id: "chart-shadow" }))
      : null,
    vd.newest ? deploymentBlock(vd.newest)
      : el("p", { class: "muted" }, "No deployments yet"),
    vd.older.length
      ? el("div", {}, el("h3", {}, `Earlier deployments (${vd.older.length})`), olderDeployments(vd.older))
      : null);
}

async function modelView(model) {
  const detail = await getJSON(`v1/models/${enc(model)}`);
  if (!detail) {
    return () => {
      setCrumbs([model]);
      document.getElementById("view").replaceChildren(el("section", { class: "panel wide" },
        el("h1", {}, model), el("div", { class: "empty" },
          "No data yet: this model has no stored windows. Send events for it, then wait for " +
          "its first window to close.")));
    };
  }
  const names = new Set(detail.metrics);
  const want = (name, extra) => (names.has(name) ? metric(model, name, extra) : Promise.resolve([]));
  // outcome metrics (labels.custom.*) get their own charts, not lines on the quality chart
  // (confusion counts are a table's, not a chart's: a line per cell would drown the rest)
  // estimated quality (no labels needed) is drawn as one headline with its band, beside
  // the measured figures, not as a line per estimated metric
  // (of the label figures, only the coverage is a share: counts and delays would flatten the
  // quality lines to the floor of the chart)
  const qualityNames = detail.metrics.filter((n) => QUALITY_PREFIXES.some((p) => n.startsWith(p)) &&
    !CUSTOM_METRIC.test(n) && n !== "quality.confusion" && !n.startsWith(ESTIMATED) &&
    (!n.startsWith("labels.") || n === "labels.coverage"));
  const estimatedName = ESTIMATED_HEADLINES.map((h) => ESTIMATED + h).find((n) => names.has(n));
  const customs = customMetrics(detail.metrics);
  const [traffic, invalid, late, p50, p95, p99, missing, outMean, outP05, outP50, outP95,
    outNull, classes, share, maxEffect, quality, drift, firing, resolved, jobs, versions, custom,
    deploys, [estimated, estLower, estUpper], estimation, analysis] =
    await Promise.all([
      want("traffic.count"), want("traffic.invalid"), want("traffic.late"),
      want("latency.p50"), want("latency.p95"), want("latency.p99"), want("input.missing_rate"),
      want("output.mean"), want("output.p05"), want("output.p50"), want("output.p95"),
      want("output.null_rate"), want("output.class_freq"),
      want("drift.share_drifted"), want("drift.max_effect"),
      Promise.all(qualityNames.map((n) => metric(model, n))).then((l) => l.flat()),
      soft(driftCells(model, names), { rows: [], cells: new Map(), step: null, source: "none" }),
      alerts("firing", model), alerts("resolved", model),
      has("/v1/retrain-jobs") ? soft(getJSON("v1/retrain-jobs", { model }).then(asList), []) : [],
      has("/v1/models/{model}/versions")
        ? soft(getJSON(`v1/models/${enc(model)}/versions`).then(asList), []) : [],
      Promise.all(customs.map((c) => customSeries(model, names, c))),
      soft(versionsAndDeployments(model, detail, names), null),
      estimatedName ? Promise.all(["", ".lower", ".upper"].map((x) => metric(model, estimatedName + x)))
        : [[], [], []],
      has("/v1/models/{model}/estimation")
        ? soft(getJSON(`v1/models/${enc(model)}/estimation`), null) : null,
      names.has("labels.count") ? soft(errorAnalysis(model), null) : null,
    ]);
  const featureNames = detail.features.map((f) => f.name);
  const feature = featureNames.includes(state.feature) ? state.feature
    : drift.rows.find((r) => featureNames.includes(r)) ?? featureNames[0] ?? null;
  const kind = detail.features.find((f) => f.name === feature)?.kind;
  const segments = (detail.segments ?? []).slice(0, MAX_SLICES);
  const sliceNames = [...SLICE_METRICS.filter((n) => names.has(n)),
    ...customs.map((c) => `${c.base}.mean`).filter((n) => names.has(n))];
  const sliceMetric = sliceNames.includes(state.slice) ? state.slice : sliceNames[0] ?? null;
  // the feature explorer and the slices depend on the first round of answers: one more round
  const [explorer, slices] = await Promise.all([
    feature === null ? [] : Promise.all(
      (kind === "categorical"
        ? ["input.category_freq", "input.new_category_rate", "input.missing_rate"]
        : ["input.mean", "input.p05", "input.p50", "input.p95", "input.missing_rate"]
      ).map((n) => want(n, { feature })),
    ).then((l) => l.flat()),
    segments.length && sliceMetric ? sliceSeries(model, sliceMetric, segments) : [],
  ]);

  const count = one(traffic);
  const step = count?.step ?? drift.step ?? 60;
  const domain = fitDomain(pts(count), step);
  const mine = (list) => list.filter((a) => a.model === model);
  const firingHere = mine(firing);
  const recent = mine(resolved).sort((a, b) => (epoch(b.resolved_at) ?? 0) - (epoch(a.resolved_at) ?? 0)).slice(0, 10);
  const markers = [...firingHere, ...recent].map((a) => ({ t: alertWindow(a), label: alertLabel(a),
    kind: first(a, "state") === "firing" ? "alert" : "resolved" }))
    .filter((m) => m.t !== null).slice(0, 30);
  const zoom = (t0, t1) => {
    state.range = "custom";
    state.from = Math.floor(t0);
    state.to = Math.ceil(t1);
    syncControls();
    writeHash();
    render();
  };
  const common = { domain, step, markers, onZoom: zoom };

  return () => {
    setCrumbs([model]);
    const h = health({ firing: firingHere.length, share: latest(one(share)),
      lastWindow: epoch(detail.last_window), step });
    const slot = (id) => el("div", { class: "chart", id });
    const featureSelect = el("select", { id: "feature", "aria-label": "Feature",
      onchange: (e) => { state.feature = e.target.value; writeHash(); render(); } },
    detail.features.map((f) => el("option", { value: f.name, selected: f.name === feature },
      `${f.name} (${f.kind})`)));
    const sliceSelect = el("select", { id: "slice-metric", "aria-label": "Metric by slice",
      onchange: (e) => { state.slice = e.target.value; writeHash(); render(); } },
    sliceNames.map((n) => el("option", { value: n, selected: n === sliceMetric }, n)));
    const lastCount = latest(count);
    const customSlots = new Map();
    const coverage = quality.find((s) => s.metric === "labels.coverage");
    const view = document.getElementById("view");
    view.replaceChildren(...[
      el("div", { class: "page-head" }, el("h1", {}, model), pill(h),
        el("span", { class: "muted" },
          `versions ${detail.versions.join(", ") || "–"} · ${detail.features.length} features · ` +
          `${step} s windows · last window ${fmtAgo(epoch(detail.last_window))}`)),
      el("div", { class: "tiles" },
        tile("Traffic", lastCount ? `${fmtNumber(lastCount.v / step)}/s` : "–",
          `${fmtNumber(pts(count).reduce((a, p) => a + (p.v ?? 0), 0))} events in range`),
        tile("Latency p95", fmtMs(latest(one(p95))?.v), "latest window"),
        tile("Features drifted", latest(one(share)) ? fmtPercent(latest(one(share)).v) : "–",
          latest(one(maxEffect)) ? `max effect ${fmtNumber(latest(one(maxEffect)).v)}` : "latest window",
          latest(one(share))?.v > 0 ? "warn" : ""),
        tile("Alerts firing", has("/v1/alerts") ? String(firingHere.length) : "–",
          has("/v1/alerts") ? `${recent.length} resolved recently` : "alarms not enabled",
          firingHere.length ? "bad" : ""),
        tile("Label coverage", latest(coverage) ? fmtPercent(latest(coverage).v) : "–",
          latest(coverage) ? "latest window" : "no labels yet")),
      firingHere.length
        ? el("div", { class: "banner firing", id: "firing-banner" },
          el("strong", {}, `${firingHere.length} alert${firingHere.length > 1 ? "s" : ""} firing: `),
          firingHere.map(alertLabel).join(" · "))
        : null,
      el("div", { class: "grid" },
        panel("Drift by feature and window", slot("chart-drift"), { wide: true,
          note: drift.source === "metrics" ? "from stored drift.drifted metrics" : "two-sample tests vs reference" }),
        panel("Share of features drifted", slot("chart-share")),
        panel("Alerts", el("div", {}, alertsTable([...firingHere, ...recent],
          has("/v1/alerts") ? "No firing or recent alerts" : "No data yet: alarms are not enabled on this server",
          { showModel: false })),
        { id: "alerts" }),
        panel("Traffic", slot("chart-traffic"), { note: "events per window" }),
        panel("Latency", slot("chart-latency"), { note: "milliseconds" }),
        panel("Missing values", slot("chart-missing"), { note: "share of events, per feature" }),
        panel("Output distribution", slot("chart-output"),
          { note: classes.length ? "class shares" : "prediction p05–p95, median, mean" }),
        panel("Quality and label coverage", el("div", {}, slot("chart-quality"),
          estimationNote(estimation)), { id: "quality",
          note: estimatedName ? "measured as labels land; estimated (dashed, 95 % band) before" : null }),
        panel("Feature", slot("chart-feature"), { tools: featureSelect, note: kind ?? "" }),
        slices.length
          ? panel("By slice", slot("chart-slices"), { id: "slices", wide: true, tools: sliceSelect,
            note: `one line per segment value (${slices.length}${
              (detail.segments ?? []).length > MAX_SLICES ? ` of ${detail.segments.length}` : ""})` })
          : null,
        analysis
          ? panel("Error analysis", errorAnalysisBody(model, analysis), { id: "error-analysis",
            wide: true, note: `${fmtNumber(analysis.table.examples)} labelled examples in range · ` +
              "ranked by potential gain: (error − baseline) × share of data" })
          : null,
        custom.length
          ? panel("Custom metrics", el("div", { class: "columns custom-metrics" },
            custom.map((c) => customBlock(c, customSlots))), { id: "custom-metrics", wide: true,
            note: `mean per window, p50 and p95 where stored · ${custom.length} metric${custom.length > 1 ? "s" : ""}` })
          : null,
        deploys
          ? panel("Versions and deployments", deploymentsBody(deploys), { id: "deployments",
            wide: true, note: `${deploys.versions.length} version${deploys.versions.length > 1 ? "s" : ""}` +
              ` · figures: latest window of each in range` })
          : null,
        panel("Retraining", retrainingBody(jobs, versions, detail.versions),
          { id: "retraining", wide: true })),
    ].filter(Boolean));

    heatMap(document.getElementById("chart-drift"), { ...common, rows: drift.rows,
      cells: drift.cells, empty: "No drift results yet: drift is tested once a reference exists for the model" });
    timeChart(document.getElementById("chart-share"), { ...common, id: "share", format: fmtPercent,
      yMin: 0, yMax: 1, series: [
        { label: "features drifted", color: PALETTE[3], points: pts(one(share)), kind: "bar" },
      ] });
    timeChart(document.getElementById("chart-traffic"), { ...common, id: "traffic", series: [
      { label: "traffic.count", color: PALETTE[0], points: pts(count), kind: "bar" },
      { label: "traffic.invalid", color: PALETTE[3], points: pts(one(invalid)) },
      { label: "traffic.late", color: PALETTE[2], points: pts(one(late)), dash: "4 3" },
    ] });
    timeChart(document.getElementById("chart-latency"), { ...common, id: "latency", format: fmtMs,
      series: [
        { label: "latency.p50", color: PALETTE[1], points: pts(one(p50)) },
        { label: "latency.p95", color: PALETTE[2], points: pts(one(p95)) },
        { label: "latency.p99", color: PALETTE[3], points: pts(one(p99)) },
      ] });
    timeChart(document.getElementById("chart-missing"), { ...common, id: "missing", format: fmtPercent,
      yMin: 0, series: missing.map((s, i) => ({ label: s.feature, color: PALETTE[i % PALETTE.length],
        points: s.points })) });
    const nullRate = one(outNull);
    const showNull = pts(nullRate).some((p) => p.v > 0);
    timeChart(document.getElementById("chart-output"), classes.length
      ? { ...common, id: "output", format: fmtPercent, yMin: 0,
        stack: classes.map((s, i) => ({ label: s.category, color: PALETTE[i % PALETTE.length], points: s.points })) }
      : { ...common, id: "output",
        bands: [{ label: "p05–p95", color: PALETTE[4], lo: pts(one(outP05)), hi: pts(one(outP95)) }],
        series: [
          { label: "output.p50", color: PALETTE[4], points: pts(one(outP50)) },
          { label: "output.mean", color: PALETTE[6], points: pts(one(outMean)), dash: "4 3" },
          ...(showNull ? [{ label: "output.null_rate", color: PALETTE[9], points: pts(nullRate), dash: "2 2" }] : []),
        ] });
    timeChart(document.getElementById("chart-quality"), { ...common, id: "quality", yMin: 0,
      empty: "No labels yet: send label events (topic driftline.labels, with the prediction id) to see accuracy and label coverage",
      bands: estimatedName ? [{ label: "estimated 95 %", color: PALETTE[1],
        lo: pts(one(estLower)), hi: pts(one(estUpper)) }] : [],
      series: [
        ...quality.map((s, i) => ({ label: s.metric, color: PALETTE[(i + 1) % PALETTE.length],
          points: s.points, dash: s.metric.startsWith("labels.") ? "4 3" : null })),
        ...(estimatedName ? [{ label: estimatedName, color: PALETTE[1], points: pts(one(estimated)),
          dash: "6 3" }] : []),
      ] });
    drawFeature(document.getElementById("chart-feature"), common, kind, explorer, feature);
    if (slices.length) {
      const isShare = /^(quality\.(accuracy|error_rate)|labels\.coverage|output\.null_rate)$/;
      timeChart(document.getElementById("chart-slices"), { ...common, id: "slices", yMin: 0,
        format: isShare.test(sliceMetric) ? fmtPercent : undefined,
        empty: `No ${sliceMetric} per slice in this range`,
        series: slices.map((s, i) => ({ label: s.segment, color: PALETTE[i % PALETTE.length],
          points: pts(s.series) })) });
    }
    if (deploys) {
      timeChart(document.getElementById("chart-version-share"), { ...common, id: "version-share",
        format: fmtPercent, yMin: 0, yMax: 1,
        empty: "No traffic per version in this range",
        stack: deploys.versions.map((v, i) => ({ label: `version ${v.version}`,
          color: PALETTE[i % PALETTE.length], points: v.shares })) });
      if (deploys.shadow.length) {
        timeChart(document.getElementById("chart-shadow"), { ...common, id: "shadow",
          format: fmtPercent, yMin: 0, yMax: 1,
          series: deploys.shadow.map((s, i) => ({ label: s.label,
            color: PALETTE[(i + 3) % PALETTE.length], points: s.points,
            dash: s.label.endsWith("live_accuracy") ? "4 3" : null })) });
      }
    }
    for (const c of custom) {
      timeChart(customSlots.get(c.base), { ...common, id: c.base,
        empty: `No values of ${c.name} in this range`,
        series: CUSTOM_LINES.map(([stat, color, dash]) => ({ label: `${c.base}.${stat}`, color,
          dash, points: pts(c[stat]) })) });
    }
    hideTooltip();
  };
}

/** A custom metric's title (its name, where it comes from, its latest count) and chart slot. */
function customBlock(c, slots) {
  const count = latest(c.count);
  const slot = el("div", { class: "chart" });
  slots.set(c.base, slot);
  return el("div", { class: "custom-metric", "data-custom-metric": c.base,
    "data-latest-count": count ? String(count.v) : null },
  el("h3", {}, el("span", { class: "custom-name" }, c.name),
    el("span", { class: "note" }, ` · ${c.outcome ? "outcome, sent with labels" : "sent with predictions"}` +
      ` · latest count ${count ? fmtNumber(count.v) : "–"}`)),
  slot);
}

function tile(label, value, sub, tone = "") {
  return el("div", { class: `tile ${tone}` }, el("span", { class: "tile-label" }, label),
    el("span", { class: "tile-value" }, value), el("small", {}, sub));
}

function drawFeature(container, common, kind, list, feature) {
  if (feature === null) {
    container.replaceChildren(el("div", { class: "empty" }, "No features yet"));
    return;
  }
  const get = (name) => list.filter((s) => s.metric === name);
  if (kind === "categorical") {
    timeChart(container, { ...common, id: "feature", format: fmtPercent, yMin: 0,
      stack: get("input.category_freq").map((s, i) => ({ label: s.category,
        color: PALETTE[i % PALETTE.length], points: s.points })),
      series: [{ label: "new categories", color: "#111827", points: pts(get("input.new_category_rate")[0]), dash: "4 3" }] });
    return;
  }
  timeChart(container, { ...common, id: "feature",
    bands: [{ label: "p05–p95", color: PALETTE[0], lo: pts(get("input.p05")[0]), hi: pts(get("input.p95")[0]) }],
    series: [
      { label: `${feature} p50`, color: PALETTE[0], points: pts(get("input.p50")[0]) },
      { label: `${feature} mean`, color: PALETTE[6], points: pts(get("input.mean")[0]), dash: "4 3" },
    ] });
}

// A version's headline numbers: its holdout scores when it was evaluated, else training's.
function versionMetrics(v) {
  const m = v.metrics ?? {};
  const scores = m.evaluation?.challenger ?? m.training ?? m;
  return Object.entries(scores).filter(([, x]) => typeof x === "number").slice(0, 4);
}

function retrainingBody(jobs, versions, seen) {
  const jobsPart = jobs.length
    ? el("table", { class: "table" },
      el("thead", {}, el("tr", {}, ["Job", "State", "Reason", "Created", "Version",
        "Bias · variance · mismatch"].map((h) => el("th", {}, h)))),
      el("tbody", {}, jobs.slice(0, 10).map((j) => {
        const created = epoch(first(j, "created_at", "requested_at"));
        // where the new version's error comes from (training, training-dev, holdout errors)
        const e = j.metrics?.errors;
        const fmt = e?.metric === "mae" ? fmtNumber : fmtPercent;
        return el("tr", { "data-job": String(first(j, "id", "job_id") ?? "") },
          el("td", {}, String(first(j, "id", "job_id") ?? "–")),
          el("td", {}, String(first(j, "state", "status") ?? "–")),
          el("td", {}, String(first(j, "reason", "trigger", "rule_id") ?? "–")),
          el("td", {}, created ? fmtDateTime(created) : "–"),
          el("td", {}, String(first(j, "version", "new_version") ?? "–")),
          el("td", { class: "errors", title: e ? `training ${fmt(e.training)} · training-dev ` +
            `${fmt(e.training_dev)} · holdout ${fmt(e.holdout)}` +
            (e.human === null ? "" : ` · human ${fmt(e.human)}`) : "" },
          e ? `${fmt(e.avoidable_bias)} · ${fmt(e.variance)} · ${fmt(e.data_mismatch)}` : "–"));
      })))
    : el("div", { class: "empty" }, "No retraining jobs yet");
  const versionsPart = versions.length
    ? el("table", { class: "table" },
      el("thead", {}, el("tr", {}, ["Version", "Status", "Created", "Metrics"].map((h) => el("th", {}, h)))),
      el("tbody", {}, versions.map((v) => {
        const created = epoch(first(v, "created_at"));
        return el("tr", {},
          el("td", {}, String(first(v, "version", "name") ?? "–")),
          el("td", {}, String(first(v, "status", "stage", "state") ?? (v.champion ? "champion" : "–"))),
          el("td", {}, created ? fmtDateTime(created) : "–"),
          el("td", {}, versionMetrics(v).map(([k, x]) => `${k} ${fmtNumber(x)}`).join(" · ") || "–"));
      })))
    : el("div", { class: "empty" }, `No registered versions yet · seen in traffic: ${seen.join(", ") || "none"}`);
  return el("div", { class: "columns" },
    el("div", {}, el("h3", {}, "Jobs"), jobsPart),
    el("div", {}, el("h3", {}, "Versions"), versionsPart));
}

/** The x range of every chart on a page: the range picked, fitted to the stored windows. */
function fitDomain(points, step) {
  const { start, end } = timeWindow();
  const now = Date.now() / 1000;
  if (state.range === "custom") return [start, end];
  const times = points.map((p) => p.t);
  if (!times.length) return [start ?? now - 3600, now];
  const lo = Math.min(...times);
  const hi = Math.max(...times) + step;
  return [Math.max(start ?? lo, lo), Math.max(hi, lo + step * 3)];
}

/** Heat-map cells: from the drift endpoint, else from the stored drift.drifted metric. */
async function driftCells(model, names) {
  const { start, end } = timeWindow();
  const cells = new Map();
  const drifted = new Map();
  let step = null;
  let source = "drift";
  // long ranges: the hourly or daily share of windows each feature drifted in (rollups)
  const body = has("/v1/models/{model}/drift") && !rollupStep()
    ? await getJSON(`v1/models/${enc(model)}/drift`, { start, end }) : null;
  // a range with more tests than one answer holds comes back cut (its newest windows only):
  // the heat map then shows the whole range from the stored drift.drifted flags instead
  const windows = body?.truncated ? [] : body?.windows ?? [];
  for (const w of windows) {
    const t = epoch(w.window_start);
    step = w.window_seconds ?? step;
    const byFeature = new Map();
    for (const r of w.results ?? []) {
      if (!byFeature.has(r.feature)) byFeature.set(r.feature, []);
      byFeature.get(r.feature).push(r);
    }
    for (const [name, results] of byFeature) {
      // streaming change-point detectors are shown, but only the window tests decide
      const deciding = results.filter((r) => r.in_decision !== false);
      const ratio = Math.max(0, ...deciding.map((r) => (r.min_effect > 0
        ? r.effect_size / r.min_effect : r.effect_size > 0 ? 1 : 0)));
      const isDrift = deciding.some((r) => r.drifted);
      const feature = name === PREDICTION ? "prediction" : name;
      cells.set(`${feature}|${t}`, { ratio, drifted: isDrift, tip: resultRows(results) });
      drifted.set(feature, (drifted.get(feature) ?? 0) + (isDrift ? 1 : 0));
    }
  }
  if (!cells.size && names.has("drift.drifted")) {
    source = "metrics";
    for (const s of await metric(model, "drift.drifted")) {
      step = s.step ?? step;
      for (const p of s.points) {
        if (p.v === null) continue;
        // a window's flag, or a rolled-up bucket's share of windows that drifted
        const isDrift = s.step > 3000 ? p.v > 0 : p.v >= 0.5;
        cells.set(`${s.feature}|${p.t}`, { ratio: s.step > 3000 ? p.v : isDrift ? 1 : 0, drifted: isDrift,
          tip: [el("div", {}, s.step > 3000 ? `drifted in ${fmtPercent(p.v)} of its windows`
            : isDrift ? "drifted" : "no drift")] });
        drifted.set(s.feature, (drifted.get(s.feature) ?? 0) + (isDrift ? 1 : 0));
      }
    }
  }
  // most drifted features first, so the eye lands on them
  const rows = [...drifted.keys()].sort((a, b) => drifted.get(b) - drifted.get(a) || a.localeCompare(b));
  return { rows, cells, step, source };
}

function resultRows(results) {
  return [el("table", { class: "tip-table" },
    el("thead", {}, el("tr", {}, ["test", "statistic", "p (adjusted)", "effect / min", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, results.map((r) => el("tr", { class: r.drifted ? "drift" : "" },
      el("td", {}, r.in_decision === false ? `${r.test} (streaming)` : r.test),
      el("td", {}, fmtNumber(r.statistic)),
      el("td", {}, r.p_value === null || r.p_value === undefined ? "–"
        : `${fmtP(r.p_value)}${r.adjusted_p_value != null ? ` (${fmtP(r.adjusted_p_value)})` : ""}`),
      el("td", {}, `${fmtNumber(r.effect_size)} / ${fmtNumber(r.min_effect)}`),
      el("td", {}, r.drifted ? "drift" : "ok")))))];
}

// -- chrome: breadcrumbs, controls, refresh -----------------------------------------------
function setCrumbs(parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(el("a", { href: hrefFor("/") }, "Models"),
    ...parts.map((p) => [el("span", { class: "sep" }, "/"), el("span", { class: "here" }, p)]).flat());
}

function toLocalInput(t) {
  const d = new Date(t * 1000 - new Date(t * 1000).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

function syncControls() {
  document.getElementById("range").value = state.range;
  const refresh = document.getElementById("refresh");
  if (![...refresh.options].some((o) => o.value === String(state.refresh))) {
    refresh.append(el("option", { value: String(state.refresh) }, `${state.refresh} s`));
  }
  refresh.value = String(state.refresh);
  document.getElementById("custom-range").hidden = state.range !== "custom";
  if (state.range === "custom") {
    document.getElementById("from").value = toLocalInput(state.from);
    document.getElementById("to").value = toLocalInput(state.to);
  }
}

let timer = null;
function schedule() {
  clearInterval(timer);
  timer = state.refresh > 0
    // a tick while a render is still waiting on the API is skipped: a slow API is not sent a
    // new round of requests every few seconds on top of the ones it has not answered yet
    ? setInterval(() => {
      // (nor while the user types in the page: a tag being written is not redrawn away)
      const typing = document.activeElement?.matches?.("input[type=text], textarea");
      if (!document.hidden && !askingForKey && rendering === 0 && !typing) render();
    }, state.refresh * 1000)
    : null;
}

let renderSeq = 0;
let drawnSeq = 0; // the newest render drawn so far
let rendering = 0; // renders waiting on the API
let lastDraw = null;
async function render() {
  const seq = ++renderSeq;
  const view = location.hash;
  rendering += 1;
  problems = [];
  try {
    await discover();
    const draw = state.path.startsWith("/models/")
      ? await modelView(decodeURIComponent(state.path.slice("/models/".length)))
      : await overview();
    // an older render that answers late never draws over a newer one, but a render still
    // draws when a newer one has started and not yet drawn: under an API slower than the
    // refresh interval the page would otherwise never draw at all (unless it is of another
    // view: the user has moved on)
    if (seq < drawnSeq || (seq !== renderSeq && view !== location.hash)) return;
    drawnSeq = seq;
    draw();
    lastDraw = draw;
    const problem = document.getElementById("problem");
    problem.textContent = problems.length ? `Some panels could not load: ${problems.join("; ")}` : "";
    problem.hidden = !problems.length;
    document.getElementById("updated").textContent = `Updated ${fmtClock(Date.now() / 1000)}`;
    document.body.dataset.rendered = String(seq);
  } catch (err) {
    if (seq < drawnSeq || seq !== renderSeq) return;
    if (err instanceof NeedsKey) {
      if (err.hadKey) forgetKey();
      syncKeyButton();
      askForKey(err.hadKey);
      return;
    }
    const problem = document.getElementById("problem");
    problem.textContent = `Could not load data from the Driftline API: ${err.message}. ` +
      (state.refresh ? "Retrying…" : "Reload to try again.");
    problem.hidden = false;
  } finally {
    rendering -= 1;
  }
}

function start() {
  readHash();
  syncControls();
  syncKeyButton();
  document.getElementById("forget-key").addEventListener("click", () => {
    forgetKey();
    syncKeyButton();
    render();
  });
  const now = () => Math.floor(Date.now() / 1000);
  document.getElementById("range").addEventListener("change", (e) => {
    if (e.target.value === "custom") {
      const { start: s } = timeWindow();
      state.from = s ?? now() - 3600;
      state.to = now();
    }
    state.range = e.target.value;
    syncControls();
    writeHash();
    render();
  });
  document.getElementById("refresh").addEventListener("change", (e) => {
    state.refresh = Number(e.target.value);
    writeHash();
    schedule();
  });
  document.getElementById("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    const from = Date.parse(document.getElementById("from").value) / 1000;
    const to = Date.parse(document.getElementById("to").value) / 1000;
    if (!(from < to)) return;
    state.range = "custom";
    state.from = Math.floor(from);
    state.to = Math.ceil(to);
    writeHash();
    render();
  });
  window.addEventListener("hashchange", () => {
    readHash();
    syncControls();
    schedule();
    window.scrollTo(0, 0);
    render();
  });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => lastDraw?.(), 150);
  });
  schedule();
  render();
}

start();
