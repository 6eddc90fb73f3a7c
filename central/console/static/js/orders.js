// The lockdown and emergency-release banner on every page: refreshed from the server, often
// while some gate has not yet applied an order (its count falls as gates report), else slowly
// so an order started elsewhere appears.
import { html } from "./api.js";

const WAITING_MS = 1000;
const IDLE_MS = 5000;

async function refresh() {
  const box = document.getElementById("orders");
  if (!box) return;
  try {
    const fresh = await html(`/_partials/orders?path=${encodeURIComponent(location.pathname)}`);
    box.replaceWith(fresh);
  } catch {
    // offline for a moment: try again
  }
  const waiting = document.getElementById("orders")?.dataset.waiting === "true";
  setTimeout(refresh, waiting ? WAITING_MS : IDLE_MS);
}

const waiting = document.getElementById("orders")?.dataset.waiting === "true";
setTimeout(refresh, waiting ? WAITING_MS : IDLE_MS);
