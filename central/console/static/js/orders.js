// The lockdown and emergency-release banner on every page: asked for again often while some
// gate has not yet applied an order (its count falls as gates report), else slowly so an order
// started elsewhere appears. Its content is swapped only when an order or a count changed, so
// the live region speaks (and keyboard focus moves) only for news.
import { html } from "./api.js";

const WAITING_MS = 1000;
const IDLE_MS = 5000;
const box = document.getElementById("orders");

async function refresh() {
  try {
    const fresh = (await html(`/_partials/orders?path=${encodeURIComponent(location.pathname)}`))
      .getElementById("orders");
    if (fresh && fresh.dataset.signature !== box.dataset.signature) {
      box.replaceChildren(...fresh.childNodes);
      box.dataset.signature = fresh.dataset.signature;
      box.dataset.waiting = fresh.dataset.waiting;
    }
  } catch {
    // offline for a moment: try again
  }
  setTimeout(refresh, box.dataset.waiting === "true" ? WAITING_MS : IDLE_MS);
}

if (box) setTimeout(refresh, box.dataset.waiting === "true" ? WAITING_MS : IDLE_MS);
