// The resident's phone page: enrol once from the one-time link, then show the live code,
// redrawn every slot, with or without a network.
import * as clock from "./clock.js";
import * as livecode from "./livecode.js";
import * as qr from "./qr.js";
import * as store from "./store.js";

const KINDS = {
  resident: "住户", tenant: "租户", visitor: "访客",
  staff: "工作人员", delivery: "配送", contractor: "施工",
};
const CLOCK_EVERY_MS = 60_000;
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

function show(section) {
  for (const id of ["enrol-view", "pass-view", "empty-view"]) $(id).hidden = id !== section;
}

function say(id, text) {
  $(id).textContent = text;
}

function enrolToken() {
  const m = location.pathname.match(/^\/phone\/enrol\/([A-Za-z0-9_-]+)$/);
  return m ? m[1] : null;
}

async function linkState(token) {
  try {
    const r = await fetch(`/api/v1/enrol/${token}`, { cache: "no-store" });
    return r.ok ? await r.json() : { state: r.status === 404 ? "unknown" : "error" };
  } catch {
    return { state: "offline" };
  }
}

const LINK_WORDS = {
  used: "此链接已使用过，不能再次启用。如需在新手机上使用，请联系居委会。",
  expired: "此链接已过期，请联系居委会重新发送。",
  revoked: "此通行证已失效，请联系居委会。",
  unknown: "链接无效，请联系居委会。",
  offline: "无法连接网络，请联网后再打开此链接。",
  error: "暂时无法启用，请稍后再试。",
};

async function enrolView(token, saved) {
  const link = await linkState(token);
  if (link.state !== "open") {
    if (saved) return passView(saved);
    show("enrol-view");
    $("enrol").hidden = true;
    return say("enrol-error", LINK_WORDS[link.state] ?? LINK_WORDS.error);
  }
  show("enrol-view");
  say("enrol-name", link.display_name);
  say("enrol-unit", link.unit ?? "");
  say("enrol-kind", KINDS[link.kind] ?? link.kind);
  $("enrol").onclick = () => enrol(token).catch((err) => say("enrol-error", err.message));
}

async function enrol(token) {
  $("enrol").disabled = true;
  const prefer = new URLSearchParams(location.search).get("key") === "p256" ? "p256" : "ed25519";
  const pair = await livecode.newKeyPair(prefer);
  const body = { alg: pair.alg, public_key: livecode.base64url(await livecode.publicKeyBytes(pair)) };
  const r = await fetch(`/api/v1/enrol/${token}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!r.ok) {
    $("enrol").disabled = false;
    const words = r.status === 410 ? LINK_WORDS.used : LINK_WORDS.error;
    return say("enrol-error", words);
  }
  const saved = { pass: await r.json(), keys: pair };
  await store.put("pass", saved);
  history.replaceState(null, "", "/phone/"); // the token is spent; keep it out of history
  await clock.measure().catch(() => {});
  passView(saved);
}

function dateText(iso) {
  const fmt = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
  });
  return fmt.format(new Date(iso));
}

function passView(saved) {
  const p = saved.pass;
  show("pass-view");
  say("name", p.display_name);
  say("unit", p.unit ?? "");
  say("kind", KINDS[p.kind] ?? p.kind);
  $("kind").dataset.kind = p.kind;
  document.body.dataset.kind = p.kind;
  say("validity", `有效期 ${dateText(p.valid_from)} 至 ${dateText(p.valid_until)}`);
  say("key-alg", saved.keys.alg === "ed25519" ? "Ed25519" : "P-256");
  keepAwake();
  tick(saved, { slot: null });
}

async function tick(saved, shown) {
  const now = clock.now();
  const slotS = saved.pass.slot_s;
  const slot = Math.floor(now / 1000 / slotS);
  const timeFmt = { timeZone: "Asia/Shanghai", hour12: false };
  say("clock", new Date(now).toLocaleTimeString("zh-CN", timeFmt));
  $("countdown").style.width = `${100 - ((now / 1000) % slotS) * (100 / slotS)}%`;
  if (slot !== shown.slot) {
    shown.slot = slot;
    try {
      await draw(saved, slot);
    } catch (err) {
      say("status", `无法生成动态码：${err.message}`);
    }
  }
  setTimeout(() => tick(saved, shown), 200);
}

async function draw(saved, slot) {
  const text = await livecode.liveCode(saved.pass.text, saved.keys, slot);
  const { dark } = qr.encode(text);
  const svg = qr.toSvg(dark);
  svg.dataset.testid = "live-qr";
  svg.dataset.slot = String(slot);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "动态通行码");
  $("live-qr").replaceWith(svg);
}

function clockStatus() {
  const measured = clock.lastMeasured();
  if (measured === null) return say("status", "尚未与物业校准时间");
  const seconds = Math.round(clock.offset() / 1000);
  const words = navigator.onLine ? "已与物业校准时间" : "离线：使用上次校准的时间";
  const drift = seconds === 0 ? "本机时钟准确" : `本机时钟${seconds > 0 ? "慢" : "快"} ${Math.abs(seconds)} 秒`;
  say("status", `${words}（${drift}）`);
}

async function syncClock() {
  if (!navigator.onLine) return clockStatus();
  await clock.measure().catch(() => {});
  clockStatus();
}

async function keepAwake() {
  try {
    await navigator.wakeLock?.request("screen");
  } catch {
    // no wake lock (or the page is hidden): the brightness hint still says what to do
  }
}

async function main() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/phone/sw.js", { scope: "/phone/" }).catch(() => {});
  }
  await clock.load();
  syncClock();
  setInterval(syncClock, CLOCK_EVERY_MS);
  addEventListener("online", syncClock);
  addEventListener("offline", clockStatus);
  const saved = await store.get("pass");
  const token = enrolToken();
  if (token) return enrolView(token, saved);
  if (saved) return passView(saved);
  show("empty-view");
}

main();
