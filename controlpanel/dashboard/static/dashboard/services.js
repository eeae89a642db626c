// Service tiles: each reads its service's health document and shows what it says.
const REFRESH_MS = 2000;

function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function show(tile, health) {
  const field = (name) => tile.querySelector(`[data-field="${name}"]`);
  const workers = health.workers || [];
  const ages = workers.map((w) => w.heartbeat_age_seconds);
  tile.dataset.state = health.ready ? "ready" : "not-ready";
  field("status").textContent = `${health.status}`;
  field("ready").textContent = health.ready ? "ready" : "not ready";
  field("workers").textContent = workers.length ? workers.map((w) => w.node).join(", ") : "none";
  field("heartbeat").textContent = ages.length ? formatSeconds(Math.max(...ages)) : "–";
  field("uptime").textContent = formatSeconds(health.uptime_seconds);
  const failing = Object.entries(health.checks || {})
    .filter(([, check]) => check.status !== "pass")
    .map(([name, check]) => `${name}: ${check.output || check.status}`);
  field("detail").textContent = failing.join("; ");
}

async function refresh(tile) {
  try {
    const response = await fetch(`/services/${tile.dataset.service}/health`, {
      headers: { Accept: "application/health+json" },
      cache: "no-store",
    });
    show(tile, await response.json());
  } catch (error) {
    tile.dataset.state = "unknown";
    tile.querySelector('[data-field="detail"]').textContent = `unreachable: ${error}`;
  }
}

function refreshAll() {
  document.querySelectorAll(".tile[data-service]").forEach(refresh);
}

refreshAll();
setInterval(refreshAll, REFRESH_MS);
