// The lockdown and emergency-release banner on every page: asked for again every second for a
// while after an order or a count changed (counts fall as gates report), else at the idle rate,
// so an order started elsewhere appears. Its content is swapped only when an order or a count
// changed, so the live region speaks (and keyboard focus moves) only for news.
import { html } from "./api.js";
import { pageUrl, poll } from "./poll.js";

const IDLE_MS = 5000;
const box = document.getElementById("orders");

async function tick() {
  const fresh = (await html(`/_partials/orders?path=${encodeURIComponent(pageUrl)}`))
    .getElementById("orders");
  if (!fresh || fresh.dataset.signature === box.dataset.signature) return "same";
  box.replaceChildren(...fresh.childNodes);
  box.dataset.signature = fresh.dataset.signature;
  box.dataset.waiting = fresh.dataset.waiting;
  return "changed";
}

if (box) poll(tick, IDLE_MS, () => box.dataset.waiting === "true");
