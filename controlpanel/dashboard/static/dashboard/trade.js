// The operator's trade ticket and close buttons. Everything goes to the JSON API as a signal
// (POST /api/v1/signals?wait=1), through the same intake and risk checks as any other; the answer
// waits for the signal's fate, which is shown inline with its reason code when it is denied.
//
// An operator's order is not a model's prediction: it carries confidence 1 and is recorded with
// the source "dashboard". Closing a position is a signal with close_position, which sells (or buys
// back) what the position holds when the order is sized; "Close all" sends one per open position.
// The server renders none of this for a viewer, and the API refuses a viewer's POST.

const DASH = "–";
const MANUAL_CONFIDENCE = "1";

const $ = (selector, root = document) => root.querySelector(selector);
const byTestId = (id) => $(`[data-testid="${CSS.escape(id)}"]`);
const toNumber = (value) => {
  if (value === null || value === undefined || value === "") return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
};
const quantityText = (v) => (toNumber(v) === null ? DASH : toNumber(v).toLocaleString("en-US", { maximumFractionDigits: 8 }));
const priceText = (v) => {
  const n = toNumber(v);
  if (n === null) return DASH;
  return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: Math.abs(n) >= 1000 ? 2 : 4 });
};

const sections = { prices: {}, positions: [] };

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const input = $('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : "";
}

/** Sends one signal and waits for its fate; resolves to {status, reason, detail, filled, price}
 * or, when the request itself was refused, {error}. */
async function sendSignal(url, body) {
  let response;
  try {
    response = await fetch(`${url}?wait=1`, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
        "X-Requested-From": "dashboard",
      },
      body: JSON.stringify({ ...body, confidence: MANUAL_CONFIDENCE }),
    });
  } catch (failure) {
    return { error: `the request did not reach the server: ${failure.message}` };
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // not JSON; the status says enough
  }
  if (response.status === 202) {
    return { status: "pending", detail: "accepted; its outcome will show under Signals" };
  }
  if (response.status === 504) {
    return { status: "pending", detail: "accepted, but no outcome in time; it will show under Signals" };
  }
  if (!response.ok) return { error: refusal(response, payload) };
  const outcome = { status: payload.status, reason: payload.reason || "", detail: "" };
  // The fate is known; the signal's page adds the denial's detail and the fills.
  try {
    const detail = await fetch(payload.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (detail.ok) {
      const signal = await detail.json();
      outcome.detail = signal.detail || "";
      const fills = (signal.orders || []).flatMap((order) => order.fills || []);
      const filled = fills.reduce((sum, f) => sum + Number(f.quantity), 0);
      const value = fills.reduce((sum, f) => sum + Number(f.quantity) * Number(f.price), 0);
      if (filled > 0) {
        outcome.filled = filled;
        outcome.price = value / filled;
      }
    }
  } catch {
    // the outcome stands without its detail
  }
  return outcome;
}

function refusal(response, payload) {
  let detail = "";
  if (payload && typeof payload === "object") {
    detail = typeof payload.detail === "string"
      ? payload.detail
      : Object.entries(payload).map(([key, value]) => `${key}: ${[].concat(value).join(" ")}`).join("; ");
  }
  return `refused (HTTP ${response.status})${detail ? `: ${detail}` : ""}`;
}

/** Writes an outcome into a result element: its state, reason code and detail. */
function showOutcome(element, heading, outcome) {
  element.hidden = false;
  element.replaceChildren();
  const state = outcome.error ? "error" : String(outcome.status || "").toLowerCase();
  element.dataset.status = state;
  element.dataset.reason = outcome.reason || "";
  const title = document.createElement("strong");
  title.textContent = heading;
  const status = document.createElement("span");
  status.className = "outcome-status";
  status.dataset.testid = "outcome-status";
  status.textContent = outcome.error ? "not sent" : String(outcome.status || "").toUpperCase();
  element.append(title, " ", status);
  if (outcome.reason) {
    const reason = document.createElement("code");
    reason.dataset.testid = "outcome-reason";
    reason.textContent = outcome.reason;
    element.append(" ", reason);
  }
  const lines = [];
  if (outcome.filled) lines.push(`filled ${quantityText(outcome.filled)} at ${priceText(outcome.price)}`);
  if (outcome.detail) lines.push(outcome.detail);
  if (outcome.error) lines.push(outcome.error);
  for (const text of lines) {
    const line = document.createElement("div");
    line.className = "muted small";
    line.textContent = text;
    element.append(line);
  }
}

// --- the confirmation dialog -------------------------------------------------------------------

const dialog = { element: null, action: null };

function confirmWith(title, lines, confirmText, danger, action) {
  const box = dialog.element;
  $("[data-field='title']", box).textContent = title;
  const summary = $("[data-field='summary']", box);
  summary.replaceChildren(...lines.map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
  const confirm = $("[data-confirm]", box);
  confirm.textContent = confirmText;
  confirm.className = danger ? "danger" : "primary";
  confirm.disabled = false;
  dialog.action = action;
  box.showModal();
  confirm.focus();
}

function setupDialog() {
  const box = byTestId("trade-dialog");
  if (!box) return;
  dialog.element = box;
  $("[data-close]", box).addEventListener("click", () => box.close());
  $("form", box).addEventListener("submit", (event) => {
    event.preventDefault();
    const action = dialog.action;
    dialog.action = null;
    box.close();
    if (action) action();
  });
}

// --- the ticket --------------------------------------------------------------------------------

function ticketOrder(form) {
  const amount = form.elements.amount.value.trim();
  const body = { symbol: form.elements.symbol.value, side: form.elements.side.value };
  body[form.elements.sizing.value] = amount;
  if (form.elements.leverage) body.leverage = Number(form.elements.leverage.value || 1);
  if (form.elements.reduce_only && form.elements.reduce_only.checked) body.reduce_only = true;
  return body;
}

function describeTicket(order, sizing) {
  const quote = sections.prices[order.symbol];
  const price = quote ? toNumber(quote.price) : null;
  const amount = toNumber(order[sizing]);
  const lines = [];
  if (sizing === "notional") {
    lines.push(`${order.side} ${order.symbol} for ${priceText(amount)} USDT at market`);
    if (price) lines.push(`about ${quantityText(amount / price)} at the last price ${priceText(price)}`);
  } else {
    lines.push(`${order.side} ${quantityText(amount)} ${order.symbol} at market`);
    if (price) lines.push(`about ${priceText(amount * price)} USDT at the last price ${priceText(price)}`);
  }
  if (order.leverage) lines.push(`leverage ${order.leverage}×${order.reduce_only ? ", reduce-only" : ""}`);
  lines.push("A manual order: confidence 1, every other risk check applies.");
  return lines;
}

function setupTicket() {
  const form = byTestId("trade-ticket");
  if (!form) return;
  const result = byTestId("ticket-result");
  const review = byTestId("ticket-review");
  const sizingHint = $("[data-field='unit']", form);
  const announceSymbol = () => document.dispatchEvent(new CustomEvent("ticket:symbol", { detail: { symbol: form.elements.symbol.value } }));
  form.elements.symbol.addEventListener("change", announceSymbol);
  for (const radio of form.querySelectorAll("input[name='sizing']")) {
    radio.addEventListener("change", () => {
      sizingHint.textContent = form.elements.sizing.value === "notional" ? "USDT" : form.elements.symbol.value;
    });
  }
  form.elements.symbol.addEventListener("change", () => {
    if (form.elements.sizing.value === "quantity") sizingHint.textContent = form.elements.symbol.value;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const amount = toNumber(form.elements.amount.value.trim());
    if (amount === null || amount <= 0) {
      showOutcome(result, "Ticket", { error: "enter a positive amount" });
      form.elements.amount.focus();
      return;
    }
    const order = ticketOrder(form);
    const sizing = form.elements.sizing.value;
    confirmWith(`Confirm ${order.side} ${order.symbol}`, describeTicket(order, sizing), `Confirm ${order.side}`,
      order.side === "SELL", async () => {
        review.disabled = true;
        result.hidden = false;
        result.dataset.status = "sending";
        result.textContent = `Sending ${order.side} ${order.symbol}… waiting for its outcome`;
        try {
          showOutcome(result, `${order.side} ${order.symbol}`, await sendSignal(form.dataset.url, order));
        } finally {
          review.disabled = false;
        }
      });
  });
}

// --- close buttons -----------------------------------------------------------------------------

function closeOrder(position) {
  return {
    symbol: position.symbol,
    side: toNumber(position.quantity) < 0 ? "BUY" : "SELL",
    close_position: true,
  };
}

function closeLine(position) {
  const order = closeOrder(position);
  return `${order.side} all of ${position.symbol} (${quantityText(Math.abs(toNumber(position.quantity)))} held) at market`;
}

function closePositions(positions, url, result) {
  result.hidden = false;
  result.dataset.status = "sending";
  result.textContent = `Closing ${positions.map((p) => p.symbol).join(", ")}… waiting for the outcome`;
  return Promise.all(positions.map((p) => sendSignal(url, closeOrder(p)))).then((outcomes) => {
    result.replaceChildren();
    const states = new Set();
    positions.forEach((position, index) => {
      const line = document.createElement("div");
      line.dataset.symbol = position.symbol;
      showOutcome(line, `Close ${position.symbol}`, outcomes[index]);
      states.add(line.dataset.status);
      result.append(line);
    });
    result.dataset.status = states.size === 1 ? [...states][0] : "mixed";
  });
}

function decoratePositions() {
  const table = byTestId("positions");
  const panel = byTestId("positions-panel");
  if (!table || !panel || !panel.dataset.url) return;
  const result = byTestId("close-result");
  for (const tr of table.tBodies[0].rows) {
    const symbol = tr.dataset.symbol;
    if (!symbol || tr.querySelector("[data-close-symbol]")) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary small-button";
    button.textContent = "Close";
    button.dataset.closeSymbol = symbol;
    button.dataset.testid = `close-${symbol}`;
    button.addEventListener("click", () => {
      const position = sections.positions.find((p) => p.symbol === symbol);
      if (!position) return;
      confirmWith(`Close ${symbol}`, [closeLine(position), "Through the same risk checks as any order."], `Close ${symbol}`, true,
        () => closePositions([position], panel.dataset.url, result));
    });
    const td = document.createElement("td");
    td.className = "actions";
    td.append(button);
    tr.append(td);
  }
  const closeAll = byTestId("close-all");
  if (closeAll) closeAll.disabled = sections.positions.length === 0;
}

function setupCloseAll() {
  const closeAll = byTestId("close-all");
  const panel = byTestId("positions-panel");
  if (!closeAll || !panel) return;
  closeAll.disabled = true;
  closeAll.addEventListener("click", () => {
    const open = [...sections.positions];
    if (!open.length) return;
    confirmWith(`Close all ${open.length} position${open.length === 1 ? "" : "s"}`,
      [...open.map(closeLine), "One close order per position; trading stays as it is (this is not a halt)."],
      "Close all", true, () => closePositions(open, panel.dataset.url, byTestId("close-result")));
  });
}

// --- wiring ------------------------------------------------------------------------------------

document.addEventListener("dashboard:section", ({ detail: { name, value } }) => {
  if (name === "prices") sections.prices = value || {};
  if (name === "positions") sections.positions = Array.isArray(value) ? value : [];
});

document.addEventListener("dashboard:rendered", ({ detail: { name } }) => {
  if (name === "positions") decoratePositions();
});

setupDialog();
setupTicket();
setupCloseAll();
