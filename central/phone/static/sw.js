// Service worker: the phone page works with no network once enrolled. The page and its
// modules come from the cache when the network fails; the API is never cached.
const CACHE = "menjin-phone-v1";
const SHELL = [
  "/phone/",
  "/phone/static/phone.css",
  "/phone/static/phone.js",
  "/phone/static/clock.js",
  "/phone/static/livecode.js",
  "/phone/static/base45.js",
  "/phone/static/qr.js",
  "/phone/static/store.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  const old = caches.keys().then((keys) => keys.filter((k) => k !== CACHE));
  event.waitUntil(old.then((keys) => Promise.all(keys.map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

async function fresh(request, fallback) {
  try {
    const response = await fetch(request);
    if (response.ok && request.method === "GET") {
      const copy = response.clone();
      caches.open(CACHE).then((c) => c.put(fallback ?? request, copy));
    }
    return response;
  } catch (err) {
    const cached = await caches.match(fallback ?? request);
    if (cached) return cached;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  if (event.request.mode === "navigate" && url.pathname.startsWith("/phone/")) {
    // Every page of /phone/ is the same shell, so any of them works offline.
    event.respondWith(fresh(event.request, "/phone/"));
  } else if (url.pathname.startsWith("/phone/static/")) {
    event.respondWith(fresh(event.request));
  }
});
