// Gate tiles: refreshed from the server on every status change and every few seconds; remote
// open through a confirm dialog, its outcome shown on the tile until the tiles are re-rendered.
import { html, post } from "./api.js";
import { t } from "./words.js";

const box = document.getElementById("gates");
const dialog = document.getElementById("open-dialog");
const reason = document.getElementById("open-reason");
const outcomes = new Map();  // gate id -> words shown on its tile
const pending = new Map();  // command id -> gate id
const early = new Map();  // command id -> its remote_open event, when it beat the POST's answer
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
  if (early.has(r.data.command_id)) return setOutcome(gateId, outcomeKey(early.get(r.data.command_id)));
  pending.set(r.data.command_id, gateId);
  setOutcome(gateId, "js.open.sent");
  const wait = new Date(r.data.expires_at).getTime() - Date.now() + 5000;
  setTimeout(() => {
    if (pending.delete(r.data.command_id)) setOutcome(gateId, "js.open.no_answer");
  }, wait);
});

// The gate journals what it did with the command; that event closes the loop.
function outcomeKey(event) {
  if (event.granted) return "js.open.opened";
  return event.reason === "expired" ? "js.open.expired" : "js.open.failed";
}

export function onEvent(event) {
  if (event.type !== "remote_open") return;
  const commandId = event.details?.command_id;
  const gateId = pending.get(commandId);
  if (gateId === undefined) {
    early.set(commandId, event);
    if (early.size > 50) early.delete(early.keys().next().value);
    return;
  }
  pending.delete(commandId);
  setOutcome(gateId, outcomeKey(event));
}

setInterval(() => refresh().catch(() => {}), REFRESH_MS);
