// Policy versions on the policy and gates pages: while some gate has not yet applied its latest
// version, the gates' versions are asked of the API (GET /api/v1/gates, small), and only when
// one differs from what the page shows is the page fetched again and each [data-live-key]
// element swapped for its fresh copy, so "1 gate still on v6" turns into "all gates on v7" as
// the gate reports.
import { html } from "./api.js";
import { pageUrl, poll } from "./poll.js";

const SLOW_MS = 12_000;

function waiting() {
  return [...document.querySelectorAll("[data-live-key][data-pending]")]
    .some((el) => el.dataset.pending !== "0");
}

async function differs() {
  const response = await fetch("/api/v1/gates", { credentials: "same-origin" });
  if (!response.ok) return true; // the page will say what is wrong
  const now = new Map((await response.json()).map((g) => [String(g.id), g]));
  return [...document.querySelectorAll("[data-testid=policy-version][data-gate-id]")]
    .some((el) => {
      const g = now.get(el.dataset.gateId);
      return !g || el.dataset.applied !== String(g.policy_version ?? "")
        || el.dataset.latest !== String(g.policy_latest);
    });
}

async function tick() {
  if (!waiting()) return "stop";
  if (!(await differs())) return "same";
  const fresh = await html(pageUrl);
  for (const el of fresh.querySelectorAll("[data-live-key]")) {
    const key = CSS.escape(el.dataset.liveKey);
    document.querySelector(`[data-live-key="${key}"]`)?.replaceWith(el);
  }
  return waiting() ? "changed" : "stop";
}

poll(tick, SLOW_MS);
