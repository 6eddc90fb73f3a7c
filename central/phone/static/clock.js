// Central's time as the phone should use it: its own clock plus the last measured offset.
import * as store from "./store.js";

let offsetMs = 0;
let measuredAt = null;

export async function load() {
  const saved = await store.get("clock");
  if (saved) ({ offsetMs, measuredAt } = saved);
}

// One round trip to /api/v1/time; the server's reading is taken to be at the midpoint.
export async function measure() {
  const t0 = Date.now();
  const r = await fetch("/api/v1/time", { cache: "no-store" });
  const t1 = Date.now();
  if (!r.ok) throw new Error(`time: HTTP ${r.status}`);
  const { unix_ms: server } = await r.json();
  offsetMs = server - (t0 + t1) / 2;
  measuredAt = server;
  await store.put("clock", { offsetMs, measuredAt });
  return offsetMs;
}

export const now = () => Date.now() + offsetMs;
export const offset = () => offsetMs;
export const lastMeasured = () => measuredAt;
