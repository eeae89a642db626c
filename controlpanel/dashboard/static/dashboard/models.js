// The model panel's champion and challenger: both versions' live figures side by side with the
// version that served before (the rollback target), the challenger's trial and the last decision.
// Operators get "Promote challenger" and "Roll back to previous", which go to the JSON API
// (POST /api/v1/models/<version>/promote and /rollback) and are audited there with their name.
// The server renders no buttons for a viewer, and the API refuses a viewer's POST.

const DASH = "–";
const $ = (selector, root = document) => root.querySelector(selector);
const byTestId = (id) => $(`[data-testid="${CSS.escape(id)}"]`);
const number = (value) => (value === null || value === undefined || value === "" || !Number.isFinite(Number(value)) ? null : Number(value));
const ratio = (value, digits = 4) => (number(value) === null ? DASH : number(value).toFixed(digits));
const signed = (value, digits = 5) => (number(value) === null ? DASH : `${number(value) >= 0 ? "+" : ""}${number(value).toFixed(digits)}`);
const percent = (value) => (number(value) === null ? DASH : `${(number(value) * 100).toFixed(3)}%`);
const shortTime = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : DASH);

let shown = null; // the last "versions" object received

const ROWS = [
  ["Version", (v) => v.version],
  ["Trained on", (v) => `${shortTime(v.train_start)} to ${shortTime(v.train_end)}`],
  ["Out-of-sample accuracy", (v) => `${ratio(v.oos_accuracy)} (baseline ${ratio(v.baseline_accuracy)})`],
  ["Live signals judged", (v) => String(v.live?.scored_signals ?? DASH)],
  ["Live hit rate", (v) => ratio(v.live?.hit_rate)],
  ["Live Brier", (v) => ratio(v.live?.brier_score)],
  ["Live log loss", (v) => ratio(v.live?.log_loss)],
  ["Live net return", (v) => percent(v.live?.mean_forward_return)],
];

function render(versions) {
  const panel = byTestId("model-versions");
  if (!panel) return;
  shown = versions ?? null;
  panel.hidden = !shown;
  if (!shown) return;
  const columns = [shown.champion, shown.challenger, shown.previous];
  const body = $("tbody", byTestId("model-compare"));
  body.replaceChildren(
    ...ROWS.map(([label, read]) => {
      const row = document.createElement("tr");
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = label;
      row.append(head);
      for (const version of columns) {
        const cell = document.createElement("td");
        cell.textContent = version ? read(version) : DASH;
        row.append(cell);
      }
      return row;
    }),
  );
  const trial = shown.challenger?.trial;
  let trialText = "no challenger on trial";
  if (trial) {
    const test = trial.test;
    const interval = test
      ? ` Brier difference ${signed(test.brier_difference.mean)} [${signed(test.brier_difference.low)}, ${signed(test.brier_difference.high)}] on ${test.pairs} paired signals.`
      : "";
    trialText = trial.complete ? `Trial complete.${interval}` : `Trial: waiting for ${trial.waiting_for}.${interval}`;
  }
  $('[data-field="trial"]', panel).textContent = trialText;
  $('[data-field="test"]', panel).textContent = `Promotion test: ${shown.promotion_test}.`;
  const last = shown.decisions?.[0];
  $('[data-field="decision"]', panel).textContent = last
    ? `Last decision: ${last.version} ${last.action.replace("_", " ")} by ${last.actor} at ${shortTime(last.at)}${last.reason ? ` (${last.reason})` : ""}`
    : "No decision yet.";
  const promote = byTestId("promote-challenger");
  const rollBack = byTestId("roll-back");
  if (promote) promote.disabled = !shown.challenger;
  if (rollBack) rollBack.disabled = !(shown.champion && shown.previous);
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const input = $('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : "";
}

function showOutcome(text, ok) {
  const box = byTestId("model-action-result");
  if (!box) return;
  box.hidden = false;
  box.dataset.status = ok ? "filled" : "denied";
  box.textContent = text;
}

async function decide(action, version, question) {
  if (!version || !window.confirm(question)) return;
  const base = $(".model .actions[data-url]").dataset.url;
  let response;
  try {
    response = await fetch(`${base}/${encodeURIComponent(version)}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ reason: `${action === "promote" ? "promoted" : "rolled back"} from the dashboard` }),
    });
  } catch (failure) {
    showOutcome(`The request did not reach the server: ${failure.message}`, false);
    return;
  }
  let payload = {};
  try {
    payload = await response.json();
  } catch {
    // not JSON; the status says enough
  }
  if (!response.ok) {
    showOutcome(`Refused (${response.status}): ${payload.detail ?? response.statusText}`, false);
    return;
  }
  const decision = payload.decision;
  showOutcome(`${decision.version} ${decision.action.replace("_", " ")} by ${decision.actor}; ${payload.champion?.version ?? DASH} serves.`, true);
  render(payload);
}

document.addEventListener("dashboard:section", ({ detail: { name, value } }) => {
  if (name === "model") render(value?.versions);
});

byTestId("promote-challenger")?.addEventListener("click", () => {
  const version = shown?.challenger?.version;
  decide("promote", version, `Promote ${version}? It serves from now on; ${shown?.champion?.version ?? "the champion"} becomes the rollback target.`);
});
byTestId("roll-back")?.addEventListener("click", () => {
  const version = shown?.champion?.version;
  decide("rollback", version, `Roll ${version} back? ${shown?.previous?.version ?? "The previous version"} serves again.`);
});
