// The backtests page: starts a run (operators), follows the runs through /api/v1/backtests (every
// second while one is queued or running), draws a run's report (equity and drawdown with the
// vendored uPlot, the metrics beside buy-and-hold, the trades) and two runs side by side.

const DASH = "–";
const POLL_MS = 1000;
const TRADES_SHOWN = 500;
const COLORS = { text: "#e6e9ee", muted: "#8b96a5", grid: "#263040", equity: "#4c8dff", down: "#da3633", other: "#d29922" };
const AXIS = { stroke: COLORS.muted, grid: { stroke: COLORS.grid, width: 1 }, ticks: { stroke: COLORS.grid, width: 1 } };

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const number = (value) => {
  if (value === null || value === undefined || value === "" || value === "Infinity") return value === "Infinity" ? Infinity : null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
};
const seconds = (iso) => Date.parse(iso) / 1000;
const fixed = (digits) => (v) => {
  const n = number(v);
  if (n === Infinity) return "∞";
  return n === null ? DASH : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
};
const percent = (v) => {
  const n = number(v);
  return n === null ? DASH : `${(n * 100).toFixed(2)} %`;
};
const money = fixed(2);
const ratio = fixed(2);
const whole = fixed(0);
const utc = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : DASH);
const sign = (v) => {
  const n = number(v);
  return n === null || n === 0 ? "" : n > 0 ? "pos" : "neg";
};

// The report's figures, in the order the metrics table shows them.
const METRICS = [
  ["total_return", "Total return", percent],
  ["annualised_return", "Annualised return", percent],
  ["final_equity", "Final equity", money],
  ["starting_cash", "Starting cash", money],
  ["max_drawdown", "Maximum drawdown", percent],
  ["sharpe", "Sharpe", ratio],
  ["sortino", "Sortino", ratio],
  ["calmar", "Calmar", ratio],
  ["profit_factor", "Profit factor", ratio],
  ["expectancy", "Expectancy (per trade)", money],
  ["win_rate", "Win rate", percent],
  ["trades", "Round trips", whole],
  ["fills", "Fills", whole],
  ["fees", "Fees", money],
  ["exposure", "Exposure", percent],
  ["stated_confidence", "Stated confidence", (v) => (v === null || v === undefined ? "mixed" : fixed(2)(v))],
  ["hit_rate", "Measured hit rate", percent],
  ["signals", "Signals", whole],
  ["signals_denied", "Signals denied", whole],
  ["bars", "Bars", whole],
];

const state = {
  runs: JSON.parse($("#bt-runs-data").textContent || "[]"),
  reports: new Map(), // id -> finished run with its report
  shown: null, // the run whose report is drawn
  started: null, // the run this page started, opened when it finishes
  plots: [],
  picked: new Set(), // ids of the runs ticked for comparison, kept across re-renders
  asked: 0, // the newest list request sent, and the newest applied: older answers are dropped
  applied: 0,
};

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const active = (run) => run.status === "queued" || run.status === "running";

function progressText(run) {
  if (run.status === "queued") return "queued";
  if (run.status === "running") {
    const bars = run.bars_total ? ` · ${whole(run.bars_done)}/${whole(run.bars_total)} bars` : "";
    return `running ${Math.floor((run.progress || 0) * 100)} %${bars}`;
  }
  return run.status;
}

// --- the list of runs ----------------------------------------------------------------------------

function renderRuns() {
  const body = $('[data-testid="bt-runs"] [data-body]');
  const done = new Set(state.runs.filter((run) => run.status === "done").map((run) => String(run.id)));
  for (const id of state.picked) if (!done.has(id)) state.picked.delete(id);
  body.replaceChildren();
  if (!state.runs.length) {
    const row = document.createElement("tr");
    row.className = "empty";
    row.append(cell("no backtests yet"));
    row.firstChild.colSpan = 9;
    body.append(row);
  }
  for (const run of state.runs) {
    const row = document.createElement("tr");
    row.dataset.runId = run.id;
    row.dataset.status = run.status;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = run.id;
    box.dataset.compare = "";
    box.checked = state.picked.has(String(run.id));
    box.disabled = run.status !== "done";
    box.setAttribute("aria-label", `compare run ${run.id}`);
    const pick = document.createElement("td");
    pick.append(box);
    const status = cell(progressText(run), "status");
    status.dataset.status = run.status;
    if (run.status === "running") {
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = run.progress || 0;
      status.prepend(bar);
    }
    if (run.error) status.title = run.error;
    const strategy = cell("", "strategy");
    const name = document.createElement("strong");
    name.textContent = run.strategy;
    const version = document.createElement("div");
    version.className = "muted small";
    const described = run.strategy_version || "";
    version.textContent = run.model_version ? `${described} · model ${run.model_version}` : described;
    strategy.append(name, version);
    const range = cell("", "range small");
    range.append(`${utc(run.start)} →`, document.createElement("br"), utc(run.end));
    const returned = cell(percent(run.total_return), "num");
    returned.dataset.sign = sign(run.total_return);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "secondary small-button";
    open.dataset.open = run.id;
    open.textContent = "Report";
    open.disabled = run.status !== "done";
    const actions = document.createElement("td");
    actions.append(open);
    row.append(
      pick, cell(String(run.id), "num"), strategy, cell(run.symbols.join(", "), "symbols"),
      range, status, returned,
      cell(run.code_version || DASH, "code small"), actions,
    );
    if (state.shown === run.id) row.setAttribute("aria-current", "true");
    body.append(row);
  }
  updateCompareButton();
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function refreshRuns() {
  const asked = ++state.asked;
  const runs = await getJSON("/api/v1/backtests?limit=50");
  if (asked < state.applied) return; // a slower, older answer
  state.applied = asked;
  state.runs = runs;
  renderRuns();
  const mine = state.started && state.runs.find((run) => run.id === state.started);
  if (mine) {
    showProgress(mine);
    if (!active(mine)) {
      state.started = null;
      if (mine.status === "done") openReport(mine.id);
    }
  }
}

let polling = false;
async function poll() {
  if (!polling && (state.started || state.runs.some(active))) {
    polling = true;
    try {
      await refreshRuns();
    } catch (error) {
      console.warn("backtests: refresh failed", error);
    } finally {
      polling = false;
    }
  }
  setTimeout(poll, POLL_MS);
}

// --- starting a run --------------------------------------------------------------------------------

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const input = $('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : "";
}

function showProgress(run) {
  const box = $('[data-testid="bt-progress"]');
  if (!box) return;
  box.hidden = false;
  box.dataset.status = run.status;
  box.dataset.runId = run.id;
  $("progress", box).value = run.status === "done" ? 1 : run.progress || 0;
  const text = run.status === "failed" ? `run ${run.id} failed: ${run.error}` : `run ${run.id}: ${progressText(run)}`;
  $('[data-field="text"]', box).textContent = text;
}

function requestBody(form) {
  const data = new FormData(form);
  const body = {
    strategy: data.get("strategy"),
    symbols: data.getAll("symbols"),
    // The inputs are in UTC, as the labels say.
    start: data.get("start") ? `${data.get("start")}:00Z` : "",
    end: data.get("end") ? `${data.get("end")}:00Z` : "",
  };
  for (const name of ["fee", "slippage_bps", "volume_share", "starting_cash", "model_version"]) {
    const value = String(data.get(name) || "").trim();
    if (value) body[name] = value;
  }
  return body;
}

async function startRun(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = $('[data-testid="bt-start"]', form);
  for (const error of $$("[data-error-for]", form)) error.textContent = "";
  $('[data-testid="bt-progress"]', form).hidden = true; // until this request's run is known
  button.disabled = true;
  try {
    const response = await fetch(form.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(requestBody(form)),
    });
    const answer = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (response.status !== 202) {
      for (const [field, messages] of Object.entries(answer)) {
        const slot = $(`[data-error-for="${field}"]`, form) || $('[data-error-for="detail"]', form);
        slot.textContent = Array.isArray(messages) ? messages.join(" ") : String(messages);
      }
      return;
    }
    state.started = answer.id;
    showProgress({ id: answer.id, status: answer.status, progress: 0 });
    await refreshRuns();
  } catch (error) {
    $('[data-error-for="detail"]', form).textContent = `could not start the backtest: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

// --- charts ------------------------------------------------------------------------------------------

function axisTimes(splits) {
  const daysApart = splits.length > 1 && splits[1] - splits[0] >= 86400;
  return splits.map((ts) => {
    const iso = new Date(ts * 1000).toISOString();
    return daysApart ? iso.slice(5, 10) : iso.slice(5, 16).replace("T", " ");
  });
}

const tzDate = (ts) => window.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

function chartOptions(width, height, series, yValues, sync) {
  return {
    width,
    height,
    tzDate,
    cursor: { drag: { x: true, y: false }, sync: { key: sync } },
    scales: { x: { time: true } },
    series: [{ label: "Time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}" }, ...series],
    axes: [
      // Wide enough apart for "09-13 08:00" labels not to run into each other.
      { ...AXIS, space: 110, values: (u, splits) => axisTimes(splits) },
      { ...AXIS, size: 96, values: (u, splits) => splits.map(yValues) },
    ],
  };
}

function plot(container, options, data) {
  const chart = new window.uPlot(options, data, container);
  const resize = new ResizeObserver(() => {
    const width = container.clientWidth;
    if (width && width !== chart.width) chart.setSize({ width, height: options.height });
  });
  resize.observe(container);
  state.plots.push({ chart, resize });
  return chart;
}

function clearPlots(containers) {
  state.plots = state.plots.filter(({ chart, resize }) => {
    if (!containers.includes(chart.root.parentElement)) return true;
    resize.disconnect();
    chart.destroy();
    return false;
  });
}

function drawReportCharts(report) {
  const equityBox = $('[data-testid="bt-equity-chart"]');
  const drawdownBox = $('[data-testid="bt-drawdown-chart"]');
  clearPlots([equityBox, drawdownBox]);
  const xs = report.equity_curve.map(([ts]) => seconds(ts));
  const equity = report.equity_curve.map(([, value]) => number(value));
  const drawdown = report.drawdown_curve.map(([, value]) => -100 * number(value));
  const empty = $("[data-empty]", equityBox);
  empty.hidden = xs.length > 0;
  equityBox.dataset.points = String(xs.length);
  drawdownBox.dataset.points = String(xs.length);
  if (!xs.length) return;
  if (!window.uPlot) {
    empty.hidden = false;
    empty.textContent = "the chart library did not load";
    return;
  }
  const width = equityBox.clientWidth;
  plot(equityBox, chartOptions(width, 240, [
    { label: "Equity", stroke: COLORS.equity, width: 2, fill: "rgba(76, 141, 255, 0.12)", value: (u, v) => money(v) },
  ], (v) => money(v), "bt-report"), [xs, equity]);
  plot(drawdownBox, chartOptions(width, 120, [
    { label: "Drawdown", stroke: COLORS.down, width: 1.5, fill: "rgba(218, 54, 51, 0.18)", value: (u, v) => (v === null ? DASH : `${v.toFixed(2)} %`) },
  ], (v) => `${v.toFixed(1)} %`, "bt-report"), [xs, drawdown]);
}

// --- one run's report ------------------------------------------------------------------------------

function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function renderReport(run) {
  const report = run.report;
  const section = $('[data-testid="bt-report"]');
  section.hidden = false;
  section.dataset.runId = run.id;
  $('[data-field="title"]', section).textContent = `Run ${run.id}: ${run.strategy_version || run.strategy}`;
  $('[data-field="subtitle"]', section).textContent = [
    run.symbols.join(", "),
    `${utc(report.start)} → ${utc(report.end)} UTC`,
    `fee ${run.settings.taker_fee_rate}, slippage ${run.settings.slippage_bps} bps, volume share ${run.settings.max_volume_share}`,
    run.model_version ? `model ${run.model_version}` : null,
    `code ${run.code_version}`,
  ].filter(Boolean).join(" · ");
  $('[data-field="csv"]', section).href = run.trades_csv_url;
  drawReportCharts(report);

  const metrics = $('[data-testid="bt-metrics"] [data-body]');
  metrics.replaceChildren(...METRICS.map(([key, label, format]) => {
    const value = cell(format(report[key]), "num");
    value.dataset.metric = key;
    if (key.endsWith("return")) value.dataset.sign = sign(report[key]);
    return row([cell(label), value]);
  }));

  const hold = report.buy_and_hold || { per_symbol: {} };
  const holdBody = $('[data-testid="bt-hold"] [data-body]');
  const holdRows = Object.entries(hold.per_symbol).map(([symbol, value]) => {
    const figure = cell(percent(value), "num");
    figure.dataset.sign = sign(value);
    return row([cell(symbol), figure]);
  });
  const average = cell(percent(hold.return), "num");
  average.dataset.sign = sign(hold.return);
  const strategy = cell(percent(report.total_return), "num");
  strategy.dataset.sign = sign(report.total_return);
  holdRows.push(row([cell("Buy and hold, equal weights"), average]), row([cell("This strategy"), strategy]));
  holdRows.at(-2).className = "total";
  holdRows.at(-1).className = "total";
  holdBody.replaceChildren(...holdRows);

  const fills = run.fills || [];
  $('[data-field="trade-count"]', section).textContent = fills.length > TRADES_SHOWN
    ? `(the first ${TRADES_SHOWN} of ${fills.length} fills; the CSV has them all)`
    : `(${fills.length} fills)`;
  const trades = $('[data-testid="bt-trades"] [data-body]');
  trades.replaceChildren(...fills.slice(0, TRADES_SHOWN).map((fill) => {
    const side = cell(fill.side, "side");
    side.dataset.side = fill.side.toLowerCase();
    const pnl = cell(money(fill.realized_pnl), "num");
    pnl.dataset.sign = sign(fill.realized_pnl);
    return row([cell(utc(fill.ts), "small"), cell(fill.symbol), side, cell(fill.quantity, "num"),
      cell(fixed(4)(fill.price), "num"), cell(fixed(4)(fill.fee), "num"), pnl, cell(fill.purpose || DASH)]);
  }));
  if (!fills.length) trades.append(row([Object.assign(cell("no trades"), { colSpan: 8, className: "empty" })]));
}

async function loadRun(id) {
  if (!state.reports.has(id)) {
    const run = await getJSON(`/api/v1/backtests/${id}`);
    if (run.status !== "done") return run;
    state.reports.set(id, run);
  }
  return state.reports.get(id);
}

async function openReport(id) {
  const run = await loadRun(id);
  if (!run.report) return;
  state.shown = id;
  renderReport(run);
  renderRuns();
  $('[data-testid="bt-report"]').scrollIntoView({ block: "start" });
}

// --- two runs side by side -----------------------------------------------------------------------

function pickedIds() {
  return [...state.picked].sort((a, b) => Number(a) - Number(b));
}

function updateCompareButton() {
  const picked = pickedIds();
  const button = $('[data-testid="bt-compare-button"]');
  button.disabled = picked.length !== 2;
  $('[data-field="picked"]').textContent = picked.length === 2
    ? `runs ${picked.join(" and ")}`
    : `pick two finished runs to compare (${picked.length} picked)`;
}

/** Both runs' returns over time on one time axis: each curve has nulls where the other has points. */
function joinedReturns(runs) {
  const times = [...new Set(runs.flatMap((run) => run.report.equity_curve.map(([ts]) => seconds(ts))))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const series = runs.map((run) => {
    const values = new Array(times.length).fill(null);
    const start = number(run.report.starting_cash);
    for (const [ts, equity] of run.report.equity_curve) values[index.get(seconds(ts))] = (number(equity) / start - 1) * 100;
    return values;
  });
  return [times, ...series];
}

async function compareRuns() {
  const ids = pickedIds().map(Number);
  if (ids.length !== 2) return;
  const runs = await Promise.all(ids.map(loadRun));
  if (runs.some((run) => !run.report)) return;
  const section = $('[data-testid="bt-compare"]');
  section.hidden = false;
  section.dataset.runs = ids.join(",");
  $('[data-field="title"]', section).textContent = `Run ${ids[0]} and run ${ids[1]}`;

  const head = $("[data-head]", section);
  const headRow = row([Object.assign(document.createElement("th"), { textContent: "" })]);
  for (const run of runs) {
    const th = document.createElement("th");
    th.className = "num";
    th.textContent = `Run ${run.id}`;
    th.title = run.strategy_version;
    headRow.append(th);
  }
  head.replaceChildren(headRow);
  const described = [
    ["Strategy", (run) => run.strategy_version || run.strategy],
    ["Symbols", (run) => run.symbols.join(", ")],
    ["Data (UTC)", (run) => `${utc(run.report.start)} → ${utc(run.report.end)}`],
    ["Fee / slippage", (run) => `${run.settings.taker_fee_rate} / ${run.settings.slippage_bps} bps`],
    ["Code", (run) => run.code_version],
  ];
  const body = $("[data-body]", section);
  body.replaceChildren(
    ...described.map(([label, text]) => row([cell(label), ...runs.map((run) => cell(text(run), "num"))])),
    ...METRICS.map(([key, label, format]) => row([cell(label), ...runs.map((run) => {
      const value = cell(format(run.report[key]), "num");
      value.dataset.metric = key;
      if (key.endsWith("return")) value.dataset.sign = sign(run.report[key]);
      return value;
    })])),
    row([cell("Buy and hold"), ...runs.map((run) => cell(percent(run.report.buy_and_hold.return), "num"))]),
  );

  const chartBox = $('[data-testid="bt-compare-chart"]');
  clearPlots([chartBox]);
  const data = joinedReturns(runs);
  chartBox.dataset.series = String(runs.length);
  chartBox.dataset.points = String(data[0].length);
  if (window.uPlot && data[0].length) {
    const colors = [COLORS.equity, COLORS.other];
    plot(chartBox, chartOptions(chartBox.clientWidth, 240, runs.map((run, i) => ({
      label: `Run ${run.id} return`, stroke: colors[i], width: 2, spanGaps: true,
      value: (u, v) => (v === null ? DASH : `${v.toFixed(2)} %`),
    })), (v) => `${v.toFixed(1)} %`, "bt-compare"), data);
  }
  section.scrollIntoView({ block: "start" });
}

// --- wiring --------------------------------------------------------------------------------------

function start() {
  const form = $('[data-testid="bt-form"]');
  if (form) form.addEventListener("submit", startRun);
  const runs = $('[data-testid="bt-runs"]');
  runs.addEventListener("click", (event) => {
    const open = event.target.closest("[data-open]");
    if (open) openReport(Number(open.dataset.open));
  });
  runs.addEventListener("change", (event) => {
    const box = event.target;
    if (!box.matches("input[data-compare]")) return;
    if (box.checked) state.picked.add(box.value);
    else state.picked.delete(box.value);
    updateCompareButton();
  });
  $('[data-testid="bt-compare-button"]').addEventListener("click", compareRuns);
  renderRuns();
  poll();
}

start();
