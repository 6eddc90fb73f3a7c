// The office's pages: select every pass for printing, copy a pass's text, and refresh which
// gates have applied a revocation until all of them have.
import { html } from "./api.js";

const all = document.getElementById("select-all");
if (all) {
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="pass_ids"]')) box.checked = all.checked;
  });
}

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const outcome = document.querySelector('[data-testid="copy-outcome"]');
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      if (outcome) outcome.textContent = button.dataset.done;
    } catch {
      const range = document.createRange();  // no clipboard: select it for Ctrl+C
      range.selectNodeContents(outcome || button);
      if (outcome) outcome.textContent = button.dataset.copy;
    }
  });
}

const applied = document.getElementById("applied");
const POLL_MS = 500;

async function poll() {
  const table = applied.querySelector('[data-testid="applied-table"]');
  const waiting = applied.querySelector('[data-applied="no"]');
  if (!table || table.dataset.revoked !== "yes" || !waiting) return;  // nothing to wait for
  try {
    applied.replaceChildren(await html(`/passes/${applied.dataset.passId}/_gates`));
  } catch {
    // offline for a moment: try again
  }
  setTimeout(poll, POLL_MS);
}

if (applied) setTimeout(poll, POLL_MS);
