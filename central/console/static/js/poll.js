// Asking the server again, politely: every second for the first half-minute after something
// changed (a gate that is online applies a change within that), then at the slow rate; never
// while the tab is hidden (asked again at once when it is shown). The address asked is the
// page's own GET one, rendered by the server as <main data-poll-url>: after a form error the
// page stands at an address that only takes POST.
export const pageUrl = document.getElementById("main")?.dataset.pollUrl || "/";

const FAST_MS = 1000;
const FAST_FOR_MS = 30_000;

// `tick()` asks once and resolves to "changed", "same" or "stop" (nothing left to wait for);
// `slowMs`: the wait once nothing has changed for a while, or while `eager()` says nothing is
// under way that is worth the fast rate.
export function poll(tick, slowMs, eager = () => true) {
  let fastUntil = Date.now() + FAST_FOR_MS;
  let timer = null;
  let stopped = false;

  function schedule(ms) {
    if (stopped || timer !== null || document.hidden) return;
    const fast = eager() && Date.now() < fastUntil;
    timer = setTimeout(run, ms ?? (fast ? FAST_MS : slowMs));
  }

  async function run() {
    timer = null;
    if (document.hidden) return;
    let found = "same";
    try {
      found = await tick();
    } catch {
      // offline for a moment: try again
    }
    if (found === "stop") stopped = true;
    if (found === "changed") fastUntil = Date.now() + FAST_FOR_MS;
    schedule();
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else {
      schedule(0);
    }
  });
  schedule();
}
