// Alert banners: they stay until acknowledged; every console hears of a change on the stream.
import { html, post } from "./api.js";
import { play } from "./sound.js";
import { t } from "./words.js";

const box = document.getElementById("alerts");
const known = new Set(idsIn(box));

function idsIn(root) {
  return [...root.querySelectorAll("[data-alert-ids]")].flatMap((el) => el.dataset.alertIds.split(",").map(Number));
}

// Swap in the server's current banners, keeping any banner in which a guard is typing a note.
export async function refresh() {
  const fresh = await html("/_partials/alerts");
  for (const article of fresh.querySelectorAll('[data-testid="alert"]')) {
    const old = box.querySelector(`[data-testid="alert"][data-alert-ids="${article.dataset.alertIds}"]`);
    const note = old?.querySelector('[name="note"]');
    if (note && (note.value || old.contains(document.activeElement))) article.replaceWith(old);
  }
  box.replaceChildren(fresh);
  const ids = idsIn(box);
  const isNew = ids.some((id) => !known.has(id));
  ids.forEach((id) => known.add(id));
  return isNew;
}

export async function onAlert(alert) {
  if (alert.state !== "open") {
    // Acknowledged or resolved somewhere: drop it here at once, then ask the server.
    box.querySelectorAll("[data-alert-ids]").forEach((el) => {
      if (el.dataset.alertIds.split(",").map(Number).includes(alert.id)) el.remove();
    });
  }
  const isNew = await refresh();
  if (alert.state === "open" && isNew) play();
}

box.addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const form = submit.target;
  const action = submit.submitter?.value === "resolve" ? "resolve" : "ack";
  const note = form.querySelector('[name="note"]').value;
  const results = await Promise.all(
    form.dataset.alertIds.split(",").map((id) => post(`/api/v1/alerts/${id}/${action}`, { note })),
  );
  if (results.some((r) => !r.ok && r.status !== 409)) {
    form.querySelector('[name="note"]').setCustomValidity(t("js.alert.failed"));
    form.reportValidity();
    return;
  }
  form.closest('[data-testid="alert"]').remove();
  await refresh();
});
