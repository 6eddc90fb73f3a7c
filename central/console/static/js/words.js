// The page's words and the site's time zone, handed over by the server in #console-config.
const config = JSON.parse(document.getElementById("console-config").textContent);

export const feedLimit = config.feedLimit;

export function t(key, values = {}) {
  const text = config.words[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export function maybe(prefix, value) {
  if (value === null || value === undefined || value === "") return "";
  return config.words[`${prefix}.${value}`] ?? String(value);
}

const parts = new Intl.DateTimeFormat("en-GB", {
  timeZone: config.tz, month: "numeric", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

// `12月1日 08:03:15` in the site's zone, from the same catalog pattern the server uses.
export function when(iso) {
  if (!iso) return "";
  const p = Object.fromEntries(parts.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  const months = t("time.months").split(",");
  return t("time.datetime", {
    month: Number(p.month), month_name: months[Number(p.month) - 1], day: Number(p.day),
    hms: `${p.hour}:${p.minute}:${p.second}`,
  });
}

export function age(iso, now = Date.now()) {
  const s = Math.max(0, Math.floor((now - new Date(iso).getTime()) / 1000));
  for (const [unit, size] of [["days", 86400], ["hours", 3600], ["minutes", 60]]) {
    if (s >= size) return t(`age.${unit}`, { n: Math.floor(s / size) });
  }
  return t("age.seconds", { n: s });
}

// 通过 / 拒绝 · 已过期, as _partials/result_words.html says it.
export function resultWords(event) {
  if (event.type === "decision") {
    const verdict = event.granted ? t("result.granted") : t("result.denied");
    return !event.granted && event.reason ? `${verdict} · ${maybe("reason", event.reason)}` : verdict;
  }
  const kind = maybe("type", event.type);
  return event.reason ? `${kind} · ${maybe("reason", event.reason)}` : kind;
}
