// The live feed: newest first, each event id shown once, at most feedLimit rows kept.
import { feedLimit, maybe, resultWords, when } from "./words.js";

const list = document.getElementById("feed");
const template = document.getElementById("event-row-template");
const shown = new Set([...list.querySelectorAll("[data-event-id]")].map((row) => Number(row.dataset.eventId)));

export function newestId() {
  return shown.size ? Math.max(...shown) : null;
}

function fill(row, event) {
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  const details = event.details || {};
  row.dataset.eventId = String(event.event_id);
  row.classList.add(event.granted === true ? "granted" : event.granted === false ? "denied" : "other");
  field("at").textContent = when(event.at);
  field("at").setAttribute("datetime", event.at);
  field("gate").textContent = event.gate;
  field("result").textContent = resultWords(event);
  field("holder").textContent = maybe("holder", details.holder_kind);
  field("name").textContent = details.display_name || "";
  field("temp").textContent = event.temperature_c == null ? "" : `${event.temperature_c.toFixed(1)} °C`;
  if (event.snapshot_url) {
    field("snapshot").src = event.snapshot_url;
    field("snapshot").hidden = false;
  }
  if (event.granted === false) {
    field("why").hidden = false;
    field("why-text").textContent = details.detail || maybe("reason", event.reason);
  }
  field("link").href = `/events/${event.event_id}`;
}

export function addEvent(event) {
  if (shown.has(event.event_id)) return false;  // a resumed stream may repeat what we showed
  const row = template.content.firstElementChild.cloneNode(true);
  fill(row, event);
  list.prepend(row);
  shown.add(event.event_id);
  while (list.children.length > feedLimit) {
    const old = list.lastElementChild;
    shown.delete(Number(old.dataset.eventId));
    old.remove();
  }
  return true;
}

