// The dashboard page: one websocket (docs/dashboard-protocol.md), rendered section by section.
//
// The server sends a snapshot, then deltas with a sequence number. Every section in a message is
// complete and replaces what the page holds; events are the exception: a delta carries only the new
// ones, which join the top of the feed. Data is only ever written with textContent or attributes.
// Every message also names the state version it shows (an epoch and a number); a heartbeat says
// which version the page should show by now, and a page behind it asks for a snapshot.

// The websocket is served beside the page, by the ASGI server: the page names its address.
const SOCKET_URL = JSON.parse(document.getElementById("dashboard-socket-url").textContent);
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
const OFFLINE_AFTER_FAILURES = 4; // "reconnecting" turns into "offline" after this many tries
const SNAPSHOT_TIMEOUT_MS = 10_000; // a resync that gets no answer ends the connection
const EVENTS_KEPT = 50;
const UNAUTHENTICATED = 4401;
const DASH = "–";

const state = {
  sections: {}, // section name -> the value last received
  receivedAt: {}, // section name -> performance.now() when it arrived, to age "age" fields
  lastSeq: null,
  epoch: null, // the state version shown: the Redis epoch and the number within it
  version: null,
  heartbeatVersion: null, // the last heartbeat's, to notice a counter going backwards
  awaitingSnapshot: true,
  connection: "connecting",
  live: false,
};

// --- formatting --------------------------------------------------------------------------------

const numberFormats = new Map();

function numberFormat(minDigits, maxDigits, signed) {
  const key = `${minDigits}:${maxDigits}:${signed}`;
  if (!numberFormats.has(key)) {
    numberFormats.set(key, new Intl.NumberFormat("en-US", {
      minimumFractionDigits: minDigits,
      maximumFractionDigits: maxDigits,
      signDisplay: signed ? "exceptZero" : "auto",
    }));
  }
  return numberFormats.get(key);
}

/** Returns the number a decimal string (or number) holds, or null when there is none. */
function toNumber(value) {
  if (value === null || value === undefined || value === "") return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

function formatFixed(value, digits, { signed = false, minDigits = digits } = {}) {
  const number = toNumber(value);
  return number === null ? DASH : numberFormat(minDigits, digits, signed).format(number);
}

const formatMoney = (value, signed = false) => formatFixed(value, 2, { signed });
const formatQuantity = (value) => formatFixed(value, 8, { minDigits: 0 });

function formatPrice(value) {
  const number = toNumber(value);
  if (number === null) return DASH;
  const magnitude = Math.abs(number);
  const digits = magnitude >= 1000 ? 2 : magnitude >= 1 ? 4 : 6;
  return numberFormat(2, digits, false).format(number);
}

/** A ratio (0.5432) as a percentage ("54.3 %"). */
function formatRatio(value, digits = 1) {
  const number = toNumber(value);
  return number === null ? DASH : `${numberFormat(digits, digits, false).format(number * 100)} %`;
}

function formatAge(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
  if (seconds < 60) return `${Math.max(0, Math.floor(seconds))} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

const pad = (n) => String(n).padStart(2, "0");

/** An ISO time in UTC: the time of day when it is today, else the date and minute. */
function formatTime(iso) {
  if (!iso) return DASH;
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return String(iso);
  const time = `${pad(moment.getUTCHours())}:${pad(moment.getUTCMinutes())}:${pad(moment.getUTCSeconds())}`;
  const day = moment.toISOString().slice(0, 10);
  return day === new Date().toISOString().slice(0, 10) ? time : `${day} ${time.slice(0, 5)}`;
}

function signOf(value) {
  const number = toNumber(value);
  if (number === null) return "";
  return number > 0 ? "pos" : number < 0 ? "neg" : "zero";
}

// --- DOM helpers -------------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);
const byTestId = (id) => $(`[data-testid="${CSS.escape(id)}"]`);
const field = (root, name) => $(`[data-field="${CSS.escape(name)}"]`, root);

function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

/** Writes a signed amount and colours it by its sign. */
function setSigned(element, value, format = (v) => formatMoney(v, true)) {
  if (!element) return;
  setText(element, format(value));
  element.dataset.sign = signOf(value);
}

/** Shows an age that keeps counting between messages: the server's figure plus time since. */
function setAge(element, seconds, receivedAt, suffix = "") {
  if (!element) return;
  const number = toNumber(seconds);
  if (number === null) {
    delete element.dataset.age;
    setText(element, DASH);
    return;
  }
  element.dataset.age = String(number);
  element.dataset.ageAt = String(receivedAt);
  element.dataset.ageSuffix = suffix;
  setText(element, formatAge(number) + suffix);
}

function tickAges() {
  const now = performance.now();
  for (const element of document.querySelectorAll("[data-age]")) {
    const seconds = Number(element.dataset.age) + (now - Number(element.dataset.ageAt)) / 1000;
    setText(element, formatAge(seconds) + (element.dataset.ageSuffix || ""));
  }
}

function timeElement(iso) {
  const element = document.createElement("time");
  element.textContent = formatTime(iso);
  if (iso) {
    element.dateTime = iso;
    element.title = `${iso} (times are UTC)`;
  }
  return element;
}

/** A table cell holding text (or a node), with an optional class and data-* attributes. */
function cell(content, { className, data, title } = {}) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content === null || content === undefined || content === "" ? DASH : String(content);
  if (className) td.className = className;
  if (title) td.title = title;
  for (const [key, value] of Object.entries(data || {})) td.dataset[key] = value;
  return td;
}

function row(cells, data = {}) {
  const tr = document.createElement("tr");
  for (const [key, value] of Object.entries(data)) {
    if (value !== null && value !== undefined && value !== "") tr.dataset[key] = String(value);
  }
  tr.append(...cells);
  return tr;
}

/** Replaces a table's body in one DOM operation, or shows why it is empty. */
function renderTable(testId, items, emptyText, makeRow) {
  const table = byTestId(testId);
  if (!table) return;
  const body = table.tBodies[0];
  const fragment = document.createDocumentFragment();
  if (!Array.isArray(items) || items.length === 0) {
    const td = document.createElement("td");
    td.colSpan = table.tHead.rows[0].cells.length;
    td.textContent = emptyText;
    const tr = document.createElement("tr");
    tr.className = "empty";
    tr.append(td);
    fragment.append(tr);
  } else {
    for (const item of items) fragment.append(makeRow(item));
  }
  body.replaceChildren(fragment);
}

const sideCell = (side) => cell(side, { className: "side", data: { side: String(side || "").toLowerCase() } });
const statusCell = (status) => cell(status, { className: "status", data: { status: String(status || "").toLowerCase() } });

// --- section renderers -------------------------------------------------------------------------

function renderTrading(trading) {
  const box = byTestId("trading");
  const known = trading && trading.state;
  box.dataset.state = known ? String(trading.state).toLowerCase() : "unknown";
  setText(byTestId("trading-state"), known ? String(trading.state) : DASH);
  setText(byTestId("trading-reason"), known ? trading.reason || "no reason given" : "no data yet");
  const changed = byTestId("trading-changed-at");
  changed.replaceChildren();
  if (known && trading.changed_at) changed.append("since ", timeElement(trading.changed_at));
  document.title = known ? `${trading.state} · Dashboard · Quantum Trader` : "Dashboard · Quantum Trader";
  updateControls();

  renderTable("trading-history", trading && trading.history, "no state changes recorded", (change) =>
    row([
      cell(timeElement(change.at)),
      cell(change.from),
      cell(change.to, { data: { state: String(change.to || "").toLowerCase() } }),
      cell(change.actor),
      cell(change.reason),
    ]));
}

function priceCard(symbol) {
  const container = byTestId("prices");
  let card = $(`.price[data-symbol="${CSS.escape(symbol)}"]`, container);
  if (!card) {
    card = $("#price-template").content.firstElementChild.cloneNode(true);
    card.dataset.symbol = symbol;
    card.dataset.testid = `price-${symbol}`;
    setText(field(card, "symbol"), symbol);
    // Keep the cards in symbol order whatever order they first arrive in.
    const next = [...container.querySelectorAll(".price")].find((other) => other.dataset.symbol > symbol);
    container.insertBefore(card, next || null);
  }
  return card;
}

function renderPrices(prices) {
  const container = byTestId("prices");
  const entries = Object.entries(prices || {});
  const empty = $("[data-empty]", container);
  if (empty) empty.hidden = entries.length > 0;
  if (empty && !entries.length) setText(empty, "no prices yet");
  const seen = new Set();
  for (const [symbol, quote] of entries) {
    seen.add(symbol);
    const card = priceCard(symbol);
    const priceField = field(card, "price");
    const previous = toNumber(card.dataset.price);
    const current = toNumber(quote.price);
    setText(priceField, formatPrice(quote.price));
    card.dataset.price = quote.price ?? "";
    if (previous !== null && current !== null && previous !== current) {
      // Restart the flash animation on every tick.
      priceField.dataset.tick = "";
      void priceField.offsetWidth;
      priceField.dataset.tick = current > previous ? "up" : "down";
    }
    setSigned(field(card, "change"), quote.change_pct, (v) =>
      toNumber(v) === null ? DASH : `${formatFixed(v, 2, { signed: true })} %`);
    const closeTime = field(card, "close-time");
    closeTime.replaceChildren(timeElement(quote.close_time));
    setAge(field(card, "age"), quote.age_seconds, state.receivedAt.prices, " ago");
  }
  // A symbol that left the section keeps its card but no longer shows a price it does not have.
  for (const card of container.querySelectorAll(".price")) {
    if (seen.has(card.dataset.symbol)) continue;
    for (const name of ["price", "change", "close-time"]) setText(field(card, name), DASH);
    setAge(field(card, "age"), null);
    card.dataset.price = "";
  }
}

function renderPnl(pnl) {
  const p = pnl || {};
  setText(byTestId("pnl-equity"), formatMoney(p.equity));
  setText(byTestId("pnl-cash"), formatMoney(p.cash));
  setSigned(byTestId("pnl-realized"), p.realized_pnl);
  setSigned(byTestId("pnl-unrealized"), p.unrealized_pnl);
  setSigned(byTestId("pnl-daily"), p.daily_pnl);
  setText(byTestId("pnl-daily-trades"), toNumber(p.daily_trades) === null ? DASH : String(p.daily_trades));
  setText(byTestId("pnl-exposure"), formatMoney(p.total_exposure));
}

/** A futures position's leverage, margins and liquidation price (a spot position has none). */
function futuresCells(p, shown) {
  const cells = [
    cell(p.leverage ? `${p.leverage}x` : null, { className: "num", data: { field: "leverage" } }),
    cell(p.initial_margin === undefined ? null : `${formatMoney(p.initial_margin)} / ${formatMoney(p.maintenance_margin)}`,
      { className: "num", data: { field: "margin" }, title: "initial / maintenance margin, USDT" }),
    cell(formatPrice(p.liquidation_price), { className: "num", data: { field: "liquidation" } }),
  ];
  for (const td of cells) td.hidden = !shown;
  return cells;
}

function renderPositions(positions) {
  // The futures columns show only while the account's positions carry margins.
  const futures = Array.isArray(positions) && positions.some((p) => p.leverage !== undefined);
  const table = byTestId("positions");
  if (table) for (const th of table.querySelectorAll("th[data-futures]")) th.hidden = !futures;
  renderTable("positions", positions, "no open positions", (p) =>
    row([
      cell(p.symbol, { className: "symbol" }),
      cell(formatQuantity(p.quantity), { className: "num" }),
      cell(formatPrice(p.average_entry_price), { className: "num" }),
      cell(formatPrice(p.mark_price), { className: "num" }),
      cell(formatMoney(p.unrealized_pnl, true), { className: "num", data: { sign: signOf(p.unrealized_pnl), field: "unrealized" } }),
      cell(formatMoney(p.realized_pnl, true), { className: "num", data: { sign: signOf(p.realized_pnl) } }),
      ...futuresCells(p, futures),
      cell(formatPrice(p.stop_loss_price), { className: "num" }),
      cell(formatPrice(p.take_profit_price), { className: "num" }),
      cell(timeElement(p.opened_at)),
    ], { symbol: p.symbol, sign: signOf(p.unrealized_pnl) }));
}

function renderSignals(signals) {
  renderTable("signals", signals, "no signals yet", (s) =>
    row([
      cell(timeElement(s.created_at)),
      cell(s.symbol, { className: "symbol" }),
      sideCell(s.side),
      cell(formatRatio(s.confidence), { className: "num" }),
      cell(s.source, { title: s.model_version ? `model ${s.model_version}` : undefined }),
      statusCell(s.status),
      cell(s.reason || "", { className: "reason" }),
    ], { symbol: s.symbol, id: s.id, status: s.status, reason: s.reason }));
}

function renderOrders(orders) {
  renderTable("orders", orders, "no orders yet", (o) =>
    row([
      cell(timeElement(o.created_at)),
      cell(o.symbol, { className: "symbol" }),
      sideCell(o.side),
      cell(`${formatQuantity(o.filled_quantity)} / ${formatQuantity(o.quantity)}`, { className: "num" }),
      cell(formatPrice(o.average_price), { className: "num" }),
      statusCell(o.status),
      cell(o.purpose),
    ], { symbol: o.symbol, id: o.id, status: o.status, clientOrderId: o.client_order_id }));
}

function renderDenials(denials) {
  renderTable("denials", denials, "no denials", (d) =>
    row([
      cell(timeElement(d.created_at)),
      cell(d.symbol, { className: "symbol" }),
      sideCell(d.side),
      cell(d.reason, { className: "code" }),
      cell(d.detail || "", { className: "reason" }),
      cell(d.source),
    ], { symbol: d.symbol, reason: d.reason }));
}

function renderEvents(events) {
  renderTable("events", events, "no events yet", (e) =>
    row([
      cell(timeElement(e.ts)),
      cell(e.type, { className: "code" }),
      cell(e.service),
      cell(e.summary || "", { className: "reason" }),
    ], { type: e.type, service: e.service, correlationId: e.correlation_id }));
}

function serviceTile(name, service) {
  const tiles = byTestId("services");
  let tile = $(`.tile[data-service="${CSS.escape(name)}"]`, tiles);
  if (!tile && tiles.firstElementChild) {
    // A service the page was not rendered with: copy a tile's layout and point it at this one.
    tile = tiles.firstElementChild.cloneNode(true);
    tile.dataset.service = name;
    for (const link of tile.querySelectorAll("footer a")) {
      link.href = `/services/${encodeURIComponent(name)}/${link.textContent}`;
    }
    const queue = $("dt code", tile);
    if (queue) queue.remove();
    tiles.append(tile);
  }
  if (tile) setText(field(tile, "title"), service.title || name);
  return tile;
}

function renderServices(services) {
  const reported = new Set();
  for (const [name, service] of Object.entries(services || {})) {
    const tile = serviceTile(name, service);
    if (!tile) continue;
    reported.add(name);
    const ready = service.ready === true ? "ready" : service.ready === false ? "not-ready" : "unknown";
    tile.dataset.state = ready;
    const badge = field(tile, "status");
    setText(badge, service.status || "unknown");
    badge.dataset.status = String(service.status || "unknown").toLowerCase();
    setText(field(tile, "ready"), ready === "ready" ? "ready" : ready === "not-ready" ? "not ready" : DASH);
    const workers = Array.isArray(service.workers)
      ? service.workers.map((w) => (typeof w === "string" ? w : w.node)).join(", ") || "none"
      : toNumber(service.workers) === null ? DASH : String(service.workers);
    setText(field(tile, "workers"), workers);
    setAge(field(tile, "heartbeat"), service.heartbeat_age_seconds, state.receivedAt.services);
    setText(field(tile, "queue-length"), toNumber(service.queue_length) === null ? DASH : String(service.queue_length));
    const failing = Array.isArray(service.failing) ? service.failing.join(", ") || "none" : DASH;
    setText(field(tile, "failing"), failing);
    setText(field(tile, "last-error"), service.last_error ? `Last error: ${service.last_error}` : "");
  }
  for (const tile of byTestId("services").querySelectorAll(".tile")) {
    if (reported.has(tile.dataset.service)) continue;
    tile.dataset.state = "unknown";
    setText(field(tile, "status"), "no data");
    setText(field(tile, "ready"), DASH);
  }
}

function renderModel(model) {
  const tile = byTestId("model");
  const empty = $("[data-empty]", tile);
  const body = $("[data-body]", tile);
  if (!model) {
    tile.dataset.state = "none";
    setText(empty, "no model trained yet");
    empty.hidden = false;
    body.hidden = true;
    return;
  }
  empty.hidden = true;
  body.hidden = false;
  setText(field(tile, "version"), model.version ?? DASH);
  setAge(field(tile, "age"), model.age_seconds, state.receivedAt.model);
  const accuracy = toNumber(model.oos_accuracy);
  const baseline = toNumber(model.baseline_accuracy);
  const accuracyField = field(tile, "accuracy");
  const edge = accuracy !== null && baseline !== null ? (accuracy - baseline) * 100 : null;
  setText(accuracyField, accuracy === null ? DASH
    : edge === null ? formatRatio(accuracy)
    : `${formatRatio(accuracy)} (${formatFixed(edge, 1, { signed: true })} pts vs baseline)`);
  accuracyField.dataset.sign = edge === null ? "" : signOf(edge);
  setText(field(tile, "baseline"), formatRatio(baseline));
  setText(field(tile, "window"), model.train_start && model.train_end
    ? `${formatTime(model.train_start)} to ${formatTime(model.train_end)}` : DASH);
  renderLive(tile, model.live);
  setText(field(tile, "hit-rate"), model.hit_rate === null || model.hit_rate === undefined
    ? "no closed trades yet" : formatRatio(model.hit_rate));
  setText(field(tile, "closed-trades"), toNumber(model.closed_trades) === null ? DASH : String(model.closed_trades));
  const psi = toNumber(model.max_psi);
  const psiText = psi === null ? "" : ` · max PSI ${psi.toFixed(3)}`;
  const drift = field(tile, "drift");
  if (model.drift_detected === true) {
    setText(drift, `drift detected${psiText}`);
    tile.dataset.state = "drift";
  } else if (model.drift_detected === false) {
    setText(drift, `none${psiText}`);
    tile.dataset.state = "ok";
  } else {
    setText(drift, "not checked yet for this version");
    tile.dataset.state = "unchecked";
  }
  drift.dataset.drift = String(model.drift_detected ?? "unknown");
}

/** The serving version's signals judged at their horizon, and its reliability table. */
function renderLive(tile, live) {
  const scored = live ? toNumber(live.scored_signals) ?? 0 : 0;
  const pending = live ? toNumber(live.pending_signals) ?? 0 : 0;
  const hitRate = field(tile, "live-hit-rate");
  if (!live || scored === 0) {
    setText(hitRate, pending ? `no signal judged yet (${pending} waiting for their horizon)`
      : "no signal judged yet");
    setText(field(tile, "live-brier"), DASH);
    setText(field(tile, "live-return"), DASH);
  } else {
    setText(hitRate, `${formatRatio(live.hit_rate)} of ${scored} signals (${pending} waiting)`);
    setText(field(tile, "live-brier"),
      `${formatFixed(live.brier_score, 4)} / ${formatFixed(live.log_loss, 4)}`);
    setSigned(field(tile, "live-return"), live.mean_forward_return,
      (v) => formatRatio(v, 3));
  }
  const table = byTestId("reliability");
  table.hidden = !live || scored === 0;
  renderTable("reliability", live ? live.reliability : [], "no signal judged yet", (b) => row([
    cell(b.bucket),
    cell(String(b.count), { className: "num" }),
    cell(formatRatio(b.mean_confidence), { className: "num" }),
    cell(formatRatio(b.observed_rate), { className: "num" }),
    cell(formatRatio(b.mean_forward_return, 3), { className: "num",
      data: { sign: signOf(b.mean_forward_return) } }),
  ], { bucket: b.bucket }));
}

/** A scenario's duration: milliseconds under a second, else seconds. */
function formatDuration(seconds) {
  const number = toNumber(seconds);
  if (number === null) return DASH;
  return number < 1 ? `${Math.round(number * 1000)} ms` : `${formatFixed(number, 2)} s`;
}

const count = (value) => (toNumber(value) === null ? DASH : String(value));

function renderChecks(run) {
  const panel = byTestId("checks");
  const empty = $("[data-empty]", panel);
  const body = $("[data-body]", panel);
  const status = byTestId("checks-status");
  if (!run) {
    status.dataset.status = "none";
    setText(status, "never run");
    setText(empty, "no system checks have run yet");
    empty.hidden = false;
    body.hidden = true;
    updateControls();
    return;
  }
  empty.hidden = true;
  body.hidden = false;
  const known = ["running", "passed", "failed"].includes(run.status);
  status.dataset.status = known ? run.status : "none";
  setText(status, run.status || DASH);
  setText(field(panel, "suite"), run.suite || DASH);
  setText(field(panel, "trigger"), run.trigger || DASH);
  setText(field(panel, "actor"), run.actor || DASH);
  field(panel, "started").replaceChildren(timeElement(run.started_at));
  const finished = field(panel, "finished");
  if (run.finished_at) finished.replaceChildren(timeElement(run.finished_at));
  else setText(finished, run.status === "running" ? "still running" : DASH);

  const counts = byTestId("checks-counts");
  setText(counts, `${count(run.passed)} passed / ${count(run.failed)} failed / ${count(run.skipped)} skipped of ${count(run.total)}`);
  for (const name of ["passed", "failed", "skipped", "total"]) counts.dataset[name] = toNumber(run[name]) === null ? "" : String(run[name]);

  const results = Array.isArray(run.results)
    ? [...run.results].sort((a, b) => (toNumber(a.position) ?? 0) - (toNumber(b.position) ?? 0))
    : [];
  const running = run.status === "running";
  // While a run is in progress, follow the new rows unless the operator has scrolled up to read.
  const wrap = byTestId("checks-results").closest(".table-wrap");
  const following = wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 8;
  renderTable("checks-results", results, running ? "waiting for the first result…" : "no results recorded", (r) =>
    row([
      cell(r.position, { className: "num" }),
      cell(r.title || r.name, { title: r.name }),
      statusCell(r.status),
      cell(formatDuration(r.duration_seconds), { className: "num" }),
      cell(r.detail || "", { className: "reason" }),
    ], { name: r.name, status: r.status, position: r.position }));
  if (running && following) wrap.scrollTop = wrap.scrollHeight;

  const total = toNumber(run.total);
  setText(field(panel, "progress"), !running ? ""
    : total !== null && results.length < total ? `running scenario ${results.length + 1} of ${total}…`
    : "running…");
  updateControls();
}

const RENDERERS = {
  trading: renderTrading,
  prices: renderPrices,
  pnl: renderPnl,
  positions: renderPositions,
  signals: renderSignals,
  orders: renderOrders,
  denials: renderDenials,
  events: renderEvents,
  services: renderServices,
  model: renderModel,
  checks: renderChecks,
};

// --- applying messages -------------------------------------------------------------------------

const dirty = new Set();
let frameRequested = false;

function markDirty(name) {
  dirty.add(name);
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(renderDirty);
  }
}

/** The page's other modules (trade.js, charts.js) follow the messages through DOM events:
 * "dashboard:section" {name, value} for every section received (also those drawn only there),
 * "dashboard:events" {events} for a delta's new events, oldest first, "dashboard:snapshot" after
 * a snapshot, and "dashboard:rendered" {name} after a section's DOM was rebuilt here. */
function announce(type, detail = {}) {
  document.dispatchEvent(new CustomEvent(`dashboard:${type}`, { detail }));
}

function renderDirty() {
  frameRequested = false;
  const names = [...dirty];
  dirty.clear();
  for (const name of names) {
    try {
      RENDERERS[name](state.sections[name]);
      announce("rendered", { name });
    } catch (error) {
      // A rendering bug in one section must not blank the others; a resync would not fix it.
      console.error(`dashboard: could not render ${name}`, error);
    }
  }
}

function setSection(name, value) {
  announce("section", { name, value });
  if (!(name in RENDERERS)) return; // drawn by another module, or not shown (yet)
  state.sections[name] = value;
  state.receivedAt[name] = performance.now();
  markDirty(name);
}

function addEvents(events) {
  announce("events", { events });
  // Delta events arrive oldest first; the feed shows the newest first.
  const feed = [...events].reverse().concat(state.sections.events || []);
  state.sections.events = feed.slice(0, EVENTS_KEPT);
  markDirty("events");
}

function applySnapshot(message) {
  if (!Number.isInteger(message.seq) || typeof message.sections !== "object" || message.sections === null) {
    throw new Error("snapshot without seq or sections");
  }
  applyUser(message.user);
  for (const [name, value] of Object.entries(message.sections)) setSection(name, value);
  state.lastSeq = message.seq;
  state.epoch = message.epoch ?? null;
  state.version = Number.isInteger(message.version) ? message.version : null;
  state.heartbeatVersion = null;
  state.awaitingSnapshot = false;
  clearTimeout(snapshotTimer);
  failures = 0;
  setConnection("live");
  announce("snapshot");
}

function applyDelta(message) {
  if (state.awaitingSnapshot) return; // the snapshot on its way replaces all of it
  if (!Number.isInteger(message.seq)) throw new Error("delta without seq");
  if (message.seq !== state.lastSeq + 1) {
    requestResync(`expected seq ${state.lastSeq + 1}, got ${message.seq}`);
    return;
  }
  state.lastSeq = message.seq;
  if (message.epoch !== state.epoch || !(message.version >= state.version)) {
    requestResync(`version ${message.epoch}/${message.version} after ${state.epoch}/${state.version}`);
    return;
  }
  state.version = message.version;
  for (const [name, value] of Object.entries(message.sections || {})) setSection(name, value);
  if (Array.isArray(message.events) && message.events.length) addEvents(message.events);
}

function applyHeartbeat(message) {
  if (state.awaitingSnapshot) return;
  if (!Number.isInteger(message.seq) || !Number.isInteger(message.version)) throw new Error("heartbeat without seq or version");
  if (message.seq !== state.lastSeq + 1) {
    requestResync(`expected seq ${state.lastSeq + 1}, got ${message.seq}`);
    return;
  }
  state.lastSeq = message.seq;
  const previous = state.heartbeatVersion;
  state.heartbeatVersion = message.version;
  // Another epoch: Redis restarted. A higher version: a broadcast never arrived. A lower one than
  // the last heartbeat's: the counter started again. Each time what the page shows is unknown.
  if (message.epoch !== state.epoch || message.version > state.version || (previous !== null && message.version < previous)) {
    requestResync(`heartbeat at ${message.epoch}/${message.version}, showing ${state.epoch}/${state.version}`);
  }
}

function onMessage(raw) {
  let message;
  try {
    message = JSON.parse(raw);
  } catch (error) {
    requestResync("a message that is not JSON");
    return;
  }
  try {
    if (message.type === "snapshot") applySnapshot(message);
    else if (message.type === "delta") applyDelta(message);
    else if (message.type === "heartbeat") applyHeartbeat(message);
    else if (message.type === "error") console.warn("dashboard: the server says", message.detail);
    else console.warn("dashboard: unknown message type", message.type);
  } catch (error) {
    console.error("dashboard: could not apply a message", error);
    requestResync(String(error));
  }
  setText(byTestId("seq"), state.lastSeq === null ? DASH : String(state.lastSeq));
}

// --- the connection ----------------------------------------------------------------------------

let socket = null;
let failures = 0;
let reconnectTimer = null;
let reconnectAt = null;
let snapshotTimer = null;

function send(payload) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(payload));
}

function requestResync(why) {
  if (state.awaitingSnapshot) return; // one request at a time; the snapshot timer guards it
  console.info("dashboard: resync:", why);
  state.awaitingSnapshot = true;
  send({ action: "resync" });
  armSnapshotTimer();
}

function armSnapshotTimer() {
  clearTimeout(snapshotTimer);
  const waitingOn = socket;
  snapshotTimer = setTimeout(() => {
    if (state.awaitingSnapshot && socket === waitingOn && socket) {
      console.warn("dashboard: no snapshot arrived; reconnecting");
      socket.close(4000, "no snapshot");
    }
  }, SNAPSHOT_TIMEOUT_MS);
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  reconnectAt = null;
  state.awaitingSnapshot = true;
  state.lastSeq = null;
  setConnection(failures === 0 ? "connecting" : failures >= OFFLINE_AFTER_FAILURES ? "offline" : "reconnecting");
  let ws;
  try {
    ws = new WebSocket(SOCKET_URL);
  } catch (error) {
    console.error("dashboard: cannot open the websocket", error);
    scheduleReconnect();
    return;
  }
  socket = ws;
  let opened = false;
  ws.addEventListener("open", () => {
    opened = true;
    if (ws === socket) armSnapshotTimer();
  });
  ws.addEventListener("message", (event) => {
    if (ws === socket) onMessage(event.data);
  });
  ws.addEventListener("close", (event) => {
    if (ws !== socket) return;
    socket = null;
    clearTimeout(snapshotTimer);
    if (event.code === UNAUTHENTICATED) {
      signedOut();
    } else if (!opened) {
      // A handshake the server refused looks like any network failure from here (a consumer that
      // closes before accepting answers HTTP 403): ask the page itself whether the session is gone.
      sessionExpired().then((expired) => (expired ? signedOut() : scheduleReconnect()));
    } else {
      scheduleReconnect();
    }
  });
}

/** Resolves true when the page's own URL now redirects (to the login page). */
async function sessionExpired() {
  try {
    const response = await fetch(location.href, { redirect: "manual", cache: "no-store", credentials: "same-origin" });
    return response.type === "opaqueredirect" || response.status === 401 || response.status === 403;
  } catch {
    return false; // the server is unreachable: that is not a sign-out
  }
}

function signedOut() {
  reconnectAt = null;
  setConnection("offline", "signed out: reload the page to log in");
}

function scheduleReconnect() {
  failures += 1;
  // 1 s doubling to 30 s; up to 30 % less at random so that many pages do not retry in step.
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (failures - 1));
  const delay = ceiling * (1 - 0.3 * Math.random());
  reconnectAt = performance.now() + delay;
  reconnectTimer = setTimeout(connect, delay);
  setConnection(failures >= OFFLINE_AFTER_FAILURES ? "offline" : "reconnecting");
}

function setConnection(status, note) {
  state.connection = status;
  state.live = status === "live";
  const indicator = byTestId("connection");
  indicator.dataset.status = status;
  document.querySelector("main").dataset.live = String(state.live);
  let text = status === "connecting" ? "connecting…" : status;
  if (note) text = `${status}: ${note}`;
  else if (reconnectAt !== null) text += ` · retry in ${Math.max(1, Math.ceil((reconnectAt - performance.now()) / 1000))} s`;
  else if (status !== "live" && status !== "connecting") text += " · connecting…";
  indicator.dataset.note = note || "";
  setText(field(indicator, "status"), text);
  updateControls();
}

// --- operator controls -------------------------------------------------------------------------

function applyUser(user) {
  if (user && user.can_operate === false) {
    // The server rendered controls for an operator who no longer is one: take them away.
    for (const element of document.querySelectorAll('[data-testid="controls"], [data-testid="checks-controls"], dialog.confirm, [data-operator]')) {
      element.remove();
    }
  } else if (user && user.can_operate && !byTestId("controls")) {
    console.warn("dashboard: operator without controls; the page needs can_operate in its context");
  }
}

let checksStarting = false; // a start request is on its way

function updateControls() {
  const resume = byTestId("resume");
  if (resume) {
    // Resuming an active desk does nothing; when the page is not live it cannot know, so it lets
    // the API decide.
    const trading = state.sections.trading;
    resume.disabled = state.live && Boolean(trading) && trading.state === "ACTIVE";
  }
  const runChecks = byTestId("run-checks");
  if (runChecks) {
    // One run at a time: the last known run must have finished (a second one would share the
    // sandbox account with it).
    const checks = state.sections.checks;
    runChecks.disabled = checksStarting || Boolean(checks && checks.status === "running");
  }
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const input = $('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : "";
}

/** Returns the API's explanation of a refusal, in one line. */
function describeError(response, payload) {
  let detail = "";
  if (payload && typeof payload === "object") {
    if (typeof payload.detail === "string") detail = payload.detail;
    else {
      detail = Object.entries(payload)
        .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(" ") : String(value)}`)
        .join("; ");
    }
  } else if (typeof payload === "string") {
    detail = payload.slice(0, 200);
  }
  return `Refused (HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""})${detail ? `: ${detail}` : ""}`;
}

/** POSTs JSON to the API; resolves to the response and its payload (parsed when it is JSON). */
async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRFToken": csrfToken(),
      ...headers,
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let payload = text;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: describeError shows the start of the text
  }
  return { response, payload };
}

async function submitAction(dialog, form) {
  const error = field(form, "error");
  const submit = $('button[type="submit"]', form);
  const body = { reason: form.elements.reason.value.trim() };
  if (form.elements.flatten) body.flatten = form.elements.flatten.checked;
  setText(error, "");
  submit.disabled = true;
  try {
    const { response, payload } = await postJson(form.dataset.url, body);
    if (!response.ok) {
      setText(error, describeError(response, payload));
      return;
    }
    // The API answers with the new trading state; show it now rather than wait for the delta.
    if (payload && typeof payload === "object" && payload.state) {
      setSection("trading", {
        state: payload.state,
        reason: payload.reason,
        changed_at: payload.changed_at,
        history: payload.history,
      });
    }
    dialog.close();
  } catch (failure) {
    setText(error, `The request did not reach the server: ${failure.message}`);
  } finally {
    submit.disabled = false;
  }
}

async function startChecks(form) {
  const error = field(form, "error");
  setText(error, "");
  checksStarting = true;
  updateControls();
  try {
    const { response, payload } = await postJson(
      form.dataset.url, { suite: form.elements.suite.value }, { "X-Requested-From": "dashboard" });
    if (!response.ok) {
      setText(error, describeError(response, payload));
      return;
    }
    // The API answers 202 with the new run; show it now unless the websocket already brought it
    // (or a newer one). Its results then arrive one by one as deltas.
    const current = state.sections.checks;
    const id = payload && typeof payload === "object" ? toNumber(payload.id) : null;
    if (id !== null && !(current && toNumber(current.id) !== null && toNumber(current.id) >= id)) {
      const sameSuite = current && current.suite === payload.suite;
      setSection("checks", { ...payload, total: payload.total ?? (sameSuite ? current.total : null) });
    }
  } catch (failure) {
    setText(error, `The request did not reach the server: ${failure.message}`);
  } finally {
    checksStarting = false;
    updateControls();
  }
}

function setupControls() {
  for (const button of document.querySelectorAll("[data-opens]")) {
    button.addEventListener("click", () => {
      const dialog = document.getElementById(button.dataset.opens);
      if (!dialog) return;
      const form = $("form", dialog);
      form.reset();
      setText(field(form, "error"), "");
      dialog.showModal();
      form.elements.reason.focus();
    });
  }
  for (const dialog of document.querySelectorAll("dialog.confirm")) {
    const form = $("form", dialog);
    $("[data-close]", dialog).addEventListener("click", () => dialog.close());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitAction(dialog, form);
    });
  }
  const checksForm = byTestId("checks-controls");
  if (checksForm) {
    checksForm.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!checksStarting) startChecks(checksForm);
    });
  }
}

// --- start -------------------------------------------------------------------------------------

setupControls();
setInterval(() => {
  tickAges();
  if (reconnectAt !== null) setConnection(state.connection);
}, 1000);
window.addEventListener("online", () => {
  if (reconnectTimer !== null) connect();
});
// A hidden tab's timers are throttled: back in view, check the version at once.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") send({ action: "heartbeat" });
});
connect();
