// Gate tiles: refreshed from the server on every status change and every few seconds; remote
// open through a confirm dialog, its outcome shown on the tile until the tiles are re-rendered.
import { html, post } from "./api.js";
import { t } from "./words.js";

const box = document.getElementById("gates");
const dialog = document.getElementById("open-dialog");
const reason = document.getElementById("open-reason");
const outcomes = new Map();  // gate id -> words shown on its tile
const pending = new Map();  // command id -> gate id
const REFRESH_MS = 5000;
let target = null;

function showOutcomes() {
  for (const [gateId, words] of outcomes) {
    const el = box.querySelector(`[data-gate-id="${gateId}"] [data-testid="open-outcome"]`);
    if (el) el.textContent = words;
  }
}

export async function refresh() {
  box.replaceChildren(await html("/_partials/gates"));
  showOutcomes();
}

function setOutcome(gateId, key) {
  outcomes.set(gateId, t(key));
  showOutcomes();
}

box.addEventListener("click", (click) => {
  const button = click.target.closest('[data-testid="remote-open"]');
  if (!button) return;
  target = button.closest('[data-testid="gate-tile"]');
  document.getElementById("open-gate").textContent = t("open.gate", { gate: target.dataset.gate });
  reason.value = "";
  dialog.showModal();
});

dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "confirm" || !target) return;
  const gateId = target.dataset.gateId;
  if (target.dataset.online !== "true") return setOutcome(gateId, "js.open.offline");
  const r = await post(`/api/v1/gates/${gateId}/open`, { reason: reason.value });
  if (r.status === 403) return setOutcome(gateId, "js.open.forbidden");
  if (!r.ok) return setOutcome(gateId, "js.open.error");
  pending.set(r.data.command_id, gateId);
  setOutcome(gateId, "js.open.sent");
  const wait = new Date(r.data.expires_at).getTime() - Date.now() + 5000;
  setTimeout(() => {
    if (pending.delete(r.data.command_id)) setOutcome(gateId, "js.open.no_answer");
  }, wait);
});

// The gate journals what it did with the command; that event closes the loop.
export function onEvent(event) {
  if (event.type !== "remote_open") return;
  const gateId = pending.get(event.details?.command_id);
  if (gateId === undefined) return;
  pending.delete(event.details.command_id);
  const key = event.granted ? "js.open.opened" : event.reason === "expired" ? "js.open.expired" : "js.open.failed";
  setOutcome(gateId, key);
}

setInterval(() => refresh().catch(() => {}), REFRESH_MS);
