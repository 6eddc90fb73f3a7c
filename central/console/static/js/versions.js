// Policy versions on the policy and gates pages: while some gate has not yet applied its latest
// version, the page is fetched again and each [data-live-key] element swapped for its fresh
// copy, so "1 gate still on v6" turns into "all gates on v7" as the gate reports.
import { html } from "./api.js";

const POLL_MS = 1000;

function waiting() {
  return [...document.querySelectorAll("[data-live-key][data-pending]")]
    .some((el) => el.dataset.pending !== "0");
}

async function poll() {
  if (!waiting()) return;
  try {
    const fresh = await html(location.pathname + location.search);
    for (const el of fresh.querySelectorAll("[data-live-key]")) {
      const key = CSS.escape(el.dataset.liveKey);
      document.querySelector(`[data-live-key="${key}"]`)?.replaceWith(el);
    }
  } catch {
    // offline for a moment: try again
  }
  setTimeout(poll, POLL_MS);
}

setTimeout(poll, POLL_MS);
