// One SSE connection per tab. The browser resumes with Last-Event-ID by itself; when it gives
// up (the stream answered with an error), we open a new one from the last id we showed.
import { t } from "./words.js";

const RETRY_MS = 2000;

export function connect(handlers, lastId) {
  const state = document.getElementById("stream-state");
  let last = lastId;
  let source = null;

  function open() {
    const query = last === null ? "?after=0" : `?after=${last}`;
    source = new EventSource(`/api/v1/events/stream${query}`, { withCredentials: true });
    source.onopen = () => { state.textContent = t("js.stream.live"); state.dataset.state = "live"; };
    source.onerror = () => {
      state.textContent = t("js.stream.reconnecting");
      state.dataset.state = "reconnecting";
      if (source.readyState === EventSource.CLOSED) setTimeout(open, RETRY_MS);
    };
    for (const kind of ["event", "status", "alert"]) {
      source.addEventListener(kind, (message) => {
        if (message.lastEventId) last = Number(message.lastEventId);
        handlers[kind](JSON.parse(message.data));
      });
    }
  }
  open();
}
