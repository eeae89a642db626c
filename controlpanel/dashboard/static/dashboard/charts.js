// The dashboard's charts, drawn with the vendored uPlot: a candlestick chart per symbol from the
// bar store (GET /api/v1/bars), with the operator's fills as markers and the open position's
// entry, stop loss and take profit as lines, kept current by the market.bar events of the deltas;
// and the equity curve, scaled to its data, with its drawdown below it.
//
// dashboard.js owns the websocket and announces what arrives as DOM events (see announce() there).

const BARS_SHOWN = 200;
const DASH = "–";
const COLORS = {
  up: "#2ea043", down: "#da3633", text: "#e6e9ee", muted: "#8b96a5", grid: "#263040",
  entry: "#4c8dff", stop: "#da3633", take: "#2ea043", buy: "#3fb950", sell: "#f85149",
};
const AXIS = {
  stroke: COLORS.muted,
  grid: { stroke: COLORS.grid, width: 1 },
  ticks: { stroke: COLORS.grid, width: 1 },
};

const toNumber = (value) => {
  if (value === null || value === undefined || value === "") return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
};
const seconds = (iso) => {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms / 1000 : null;
};
const priceFormat = (v) => {
  const digits = Math.abs(v) >= 1000 ? 2 : Math.abs(v) >= 1 ? 4 : 6;
  return v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits });
};
const money = (v) => v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** Axis labels in UTC, 24-hour: times of day, or dates when the ticks are days apart. */
function axisTimes(splits) {
  const daysApart = splits.length > 1 && splits[1] - splits[0] >= 86400;
  return splits.map((ts) => {
    const iso = new Date(ts * 1000).toISOString();
    return daysApart ? iso.slice(5, 10) : iso.slice(11, 16);
  });
}

/** [min, max] with a margin, for data that never reaches zero: the axis starts near the data. */
function padded(min, max) {
  if (min === null || max === null) return [0, 1];
  const span = max - min || Math.abs(max) * 0.01 || 1;
  return [min - span * 0.08, max + span * 0.08];
}

/** Tick labels with as many decimals as the step between ticks needs. */
function axisNumbers(splits) {
  const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
  const digits = Math.min(6, Math.max(0, -Math.floor(Math.log10(step || 1))));
  return splits.map((v) => v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }));
}

/** An x range around the data's times: a bar's width either side, or an hour around one point. */
function spread(times, min, max) {
  if (min === null || max === null) return [0, 1];
  if (min === max) return [min - 3600, max + 3600];
  const step = times.length > 1 ? (max - min) / (times.length - 1) : 0;
  return [min - step, max + step];
}

const tzDate = (ts) => window.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

/** Keeps a chart as wide as its container. */
function followWidth(container, plot, height) {
  new ResizeObserver(() => {
    const width = container.clientWidth;
    if (width && width !== plot.width) plot.setSize({ width, height });
  }).observe(container);
}

// --- candlesticks ------------------------------------------------------------------------------

const candles = {
  container: null,
  symbol: null,
  bars: new Map(), // symbol -> Map(open time in seconds -> {o, h, l, c})
  loading: new Map(), // symbol -> the fetch in flight
  fills: [],
  positions: [],
  plot: null,
};

function barsOf(symbol) {
  if (!candles.bars.has(symbol)) candles.bars.set(symbol, new Map());
  return candles.bars.get(symbol);
}

function addBar(symbol, bar) {
  const t = seconds(bar.open_time);
  const [o, h, l, c] = [bar.open, bar.high, bar.low, bar.close].map(toNumber);
  if (t === null || [o, h, l, c].includes(null)) return false;
  const held = barsOf(symbol);
  held.set(t, { o, h, l, c });
  if (held.size > BARS_SHOWN * 1.5) {
    const times = [...held.keys()].sort((a, b) => a - b);
    for (const old of times.slice(0, held.size - BARS_SHOWN)) held.delete(old);
  }
  return true;
}

/** Reads the symbol's stored bars again: on load, on a symbol change and after every snapshot
 * (a reconnect may have missed bars). */
async function loadBars(symbol) {
  if (candles.loading.has(symbol)) return candles.loading.get(symbol);
  const url = `${candles.container.dataset.barsUrl}?symbol=${encodeURIComponent(symbol)}&limit=${BARS_SHOWN}`;
  const request = (async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const payload = await response.json();
      for (const bar of payload.bars || []) addBar(symbol, bar);
      candles.container.dataset.error = "";
    } catch (error) {
      console.warn(`charts: could not read the bars of ${symbol}`, error);
      candles.container.dataset.error = String(error.message || error);
    } finally {
      candles.loading.delete(symbol);
    }
    if (symbol === candles.symbol) drawCandles();
  })();
  candles.loading.set(symbol, request);
  return request;
}

function candleData() {
  const held = barsOf(candles.symbol);
  const times = [...held.keys()].sort((a, b) => a - b).slice(-BARS_SHOWN);
  const column = (key) => times.map((t) => held.get(t)[key]);
  return [times, column("o"), column("h"), column("l"), column("c")];
}

/** The open position's levels on this chart: [{label, price, color}]. */
function levels() {
  const position = candles.positions.find((p) => p.symbol === candles.symbol);
  if (!position) return [];
  return [
    ["entry", position.average_entry_price, COLORS.entry],
    ["stop loss", position.stop_loss_price, COLORS.stop],
    ["take profit", position.take_profit_price, COLORS.take],
  ]
    .map(([label, price, color]) => ({ label, price: toNumber(price), color }))
    .filter((level) => level.price !== null);
}

/** This symbol's fills that fall on a shown bar: [{time, price, side}]. */
function markers(times) {
  if (!times.length) return [];
  const first = times[0];
  const last = times[times.length - 1];
  return candles.fills
    .filter((f) => f.symbol === candles.symbol)
    .map((f) => ({ time: seconds(f.bar_time), price: toNumber(f.price), side: f.side }))
    .filter((m) => m.time !== null && m.price !== null && m.time >= first && m.time <= last);
}

function drawOverlay(u) {
  const { ctx } = u;
  const [times, opens, highs, lows, closes] = u.data;
  const { left, top, width, height } = u.bbox;
  const step = times.length > 1 ? (times[times.length - 1] - times[0]) / (times.length - 1) : 300;
  const bodyWidth = Math.max(1, Math.min(14, (u.valToPos(times[0] + step, "x", true) - u.valToPos(times[0], "x", true)) * 0.7));
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  for (let i = 0; i < times.length; i++) {
    const x = Math.round(u.valToPos(times[i], "x", true));
    const [yo, yh, yl, yc] = [opens[i], highs[i], lows[i], closes[i]].map((v) => u.valToPos(v, "y", true));
    ctx.fillStyle = ctx.strokeStyle = closes[i] >= opens[i] ? COLORS.up : COLORS.down;
    ctx.fillRect(x - 0.5 * devicePixelRatio, yh, devicePixelRatio, yl - yh);
    ctx.fillRect(x - bodyWidth / 2, Math.min(yo, yc), bodyWidth, Math.max(devicePixelRatio, Math.abs(yc - yo)));
  }
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
  ctx.lineWidth = devicePixelRatio;
  for (const level of levels()) {
    const y = Math.round(u.valToPos(level.price, "y", true));
    ctx.strokeStyle = ctx.fillStyle = level.color;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
    ctx.fillText(`${level.label} ${priceFormat(level.price)}`, left + 4 * devicePixelRatio, y - 4 * devicePixelRatio);
  }
  ctx.setLineDash([]);
  const size = 7 * devicePixelRatio;
  for (const m of markers(times)) {
    const x = u.valToPos(m.time, "x", true);
    const y = u.valToPos(m.price, "y", true);
    const buy = m.side === "BUY";
    ctx.fillStyle = buy ? COLORS.buy : COLORS.sell;
    ctx.strokeStyle = "#0f1419";
    ctx.beginPath(); // a triangle pointing at the price: up from below for a buy, down for a sell
    const tip = buy ? y + 2 * devicePixelRatio : y - 2 * devicePixelRatio;
    const base = buy ? tip + size * 1.5 : tip - size * 1.5;
    ctx.moveTo(x, tip);
    ctx.lineTo(x - size, base);
    ctx.lineTo(x + size, base);
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
  }
  ctx.restore();
}

function candleOptions(width) {
  const priceValue = (u, v) => (v === null || v === undefined ? DASH : priceFormat(v));
  const hidden = (label) => ({ label, value: priceValue, paths: () => null, points: { show: false } });
  return {
    width,
    height: 320,
    tzDate,
    scales: {
      // Half a bar of room either side, so the newest candle and its markers stay clear of the edge.
      x: { time: true, range: (u, min, max) => spread(u.data[0], min, max) },
      y: {
        // The bars' range, widened to the position's levels so that a far stop stays in view.
        range: (u, min, max) => {
          const prices = levels().map((l) => l.price);
          return padded(Math.min(min ?? Infinity, ...prices), Math.max(max ?? -Infinity, ...prices));
        },
      },
    },
    cursor: { drag: { x: false, y: false } },
    series: [
      { label: "Time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}" },
      hidden("Open"), hidden("High"), hidden("Low"), hidden("Close"),
    ],
    axes: [
      { ...AXIS, values: (u, splits) => axisTimes(splits) },
      { ...AXIS, size: 90, values: (u, splits) => axisNumbers(splits) },
    ],
    hooks: { draw: [drawOverlay] },
  };
}

function drawCandles() {
  const container = candles.container;
  if (!container) return;
  const empty = container.querySelector("[data-empty]");
  if (!window.uPlot) {
    empty.textContent = "the chart library did not load";
    return;
  }
  const data = candleData();
  const shown = markers(data[0]);
  container.dataset.symbol = candles.symbol;
  container.dataset.bars = String(data[0].length);
  container.dataset.lastBar = data[0].length ? new Date(data[0][data[0].length - 1] * 1000).toISOString() : "";
  container.dataset.markers = String(shown.length);
  container.dataset.buyMarkers = String(shown.filter((m) => m.side === "BUY").length);
  container.dataset.sellMarkers = String(shown.filter((m) => m.side === "SELL").length);
  container.dataset.lines = levels().map((l) => l.label).join(",");
  empty.hidden = data[0].length > 0;
  if (!data[0].length) empty.textContent = candles.loading.size ? "loading bars…" : `no bars of ${candles.symbol} stored yet`;
  if (candles.plot) {
    candles.plot.setData(data);
  } else if (data[0].length) {
    candles.plot = new window.uPlot(candleOptions(container.clientWidth), data, container);
    followWidth(container, candles.plot, 320);
  }
}

function selectSymbol(symbol) {
  candles.symbol = symbol;
  for (const tab of document.querySelectorAll('[data-testid="chart-symbols"] [data-symbol]')) {
    tab.setAttribute("aria-selected", String(tab.dataset.symbol === symbol));
  }
  if (candles.plot) candles.plot.setData([[], [], [], [], []]);
  drawCandles();
  loadBars(symbol);
}

// --- equity and drawdown -----------------------------------------------------------------------

const equity = { container: null, plot: null, drawdown: null };

/** Drawdown at each point: how far equity is below the highest equity of the curve up to it. */
function drawdowns(values) {
  let peak = -Infinity;
  return values.map((v) => {
    peak = Math.max(peak, v);
    return peak > 0 ? (v / peak - 1) * 100 : 0;
  });
}

function equityOptions(width) {
  return {
    width,
    height: 220,
    tzDate,
    scales: { x: { time: true, range: (u, min, max) => spread([], min, max) }, y: { range: (u, min, max) => padded(min, max) } },
    cursor: { drag: { x: false, y: false }, sync: { key: "equity" } },
    series: [
      { label: "Time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" },
      {
        label: "Equity", stroke: COLORS.entry, width: 2, fill: "rgba(76, 141, 255, 0.12)",
        value: (u, v) => (v === null || v === undefined ? DASH : money(v)),
      },
    ],
    axes: [
      { ...AXIS, values: (u, splits) => axisTimes(splits) },
      { ...AXIS, size: 90, values: (u, splits) => axisNumbers(splits) },
    ],
  };
}

function drawdownOptions(width) {
  return {
    width,
    height: 110,
    tzDate,
    scales: {
      x: { time: true, range: (u, min, max) => spread([], min, max) },
      y: { range: (u, min) => [Math.min(min ?? 0, -0.01) * 1.1, 0] },
    },
    cursor: { drag: { x: false, y: false }, sync: { key: "equity" } },
    legend: { show: true },
    series: [
      { label: "Time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" },
      {
        label: "Drawdown", stroke: COLORS.down, width: 1.5, fill: "rgba(218, 54, 51, 0.18)",
        value: (u, v) => (v === null || v === undefined ? DASH : `${v.toFixed(2)} %`),
      },
    ],
    axes: [
      { ...AXIS, values: (u, splits) => axisTimes(splits) },
      { ...AXIS, size: 90, values: (u, splits) => axisNumbers(splits).map((v) => `${v} %`) },
    ],
  };
}

function renderEquity(points) {
  const container = equity.container;
  const empty = container.querySelector("[data-empty]");
  const xs = [];
  const ys = [];
  for (const point of Array.isArray(points) ? points : []) {
    const ts = seconds(point.ts);
    const value = toNumber(point.equity);
    if (ts !== null && value !== null) {
      xs.push(ts);
      ys.push(value);
    }
  }
  if (!window.uPlot) {
    empty.textContent = "the chart library did not load";
    return;
  }
  empty.hidden = xs.length > 0;
  if (!xs.length) empty.textContent = "no equity recorded yet";
  const dd = drawdowns(ys);
  container.dataset.points = String(xs.length);
  container.dataset.min = xs.length ? String(Math.min(...ys)) : "";
  container.dataset.max = xs.length ? String(Math.max(...ys)) : "";
  container.dataset.maxDrawdown = xs.length ? Math.min(...dd).toFixed(4) : "";
  if (equity.plot) {
    equity.plot.setData([xs, ys]);
    equity.drawdown.setData([xs, dd]);
  } else if (xs.length) {
    const width = container.clientWidth;
    const upper = container.querySelector("[data-plot='equity']");
    const lower = container.querySelector("[data-plot='drawdown']");
    equity.plot = new window.uPlot(equityOptions(width), [xs, ys], upper);
    equity.drawdown = new window.uPlot(drawdownOptions(width), [xs, dd], lower);
    followWidth(container, equity.plot, 220);
    followWidth(container, equity.drawdown, 110);
  }
  if (equity.plot && xs.length) {
    // uPlot widens a lone point's time range to years; keep it to an hour around the data.
    const [min, max] = spread([], xs[0], xs[xs.length - 1]);
    equity.plot.setScale("x", { min, max });
    equity.drawdown.setScale("x", { min, max });
  }
  const scale = equity.plot && equity.plot.scales.y;
  if (scale) {
    container.dataset.yMin = String(scale.min);
    container.dataset.yMax = String(scale.max);
  }
}

// --- wiring ------------------------------------------------------------------------------------

document.addEventListener("dashboard:section", ({ detail: { name, value } }) => {
  if (name === "equity_curve" && equity.container) requestAnimationFrame(() => renderEquity(value));
  if (!candles.container) return;
  if (name === "fills") {
    candles.fills = Array.isArray(value) ? value : [];
    requestAnimationFrame(drawCandles);
  } else if (name === "positions") {
    candles.positions = Array.isArray(value) ? value : [];
    requestAnimationFrame(drawCandles);
  }
});

document.addEventListener("dashboard:events", ({ detail: { events } }) => {
  if (!candles.container) return;
  let changed = false;
  for (const event of events) {
    if (event.type === "market.bar" && event.bar && event.bar.symbol === candles.symbol) {
      changed = addBar(event.bar.symbol, event.bar) || changed;
    }
  }
  if (changed) requestAnimationFrame(drawCandles);
});

document.addEventListener("dashboard:snapshot", () => {
  if (candles.container && candles.symbol) loadBars(candles.symbol);
});

// The ticket's symbol and the chart's go together: choosing one shows its prices.
document.addEventListener("ticket:symbol", ({ detail: { symbol } }) => {
  if (candles.container && symbol && symbol !== candles.symbol) selectSymbol(symbol);
});

function start() {
  equity.container = document.querySelector('[data-testid="equity-chart"]');
  candles.container = document.querySelector('[data-testid="price-chart"]');
  if (!candles.container) return;
  for (const tab of document.querySelectorAll('[data-testid="chart-symbols"] [data-symbol]')) {
    tab.addEventListener("click", () => selectSymbol(tab.dataset.symbol));
  }
  selectSymbol(candles.container.dataset.symbol);
}

start();
