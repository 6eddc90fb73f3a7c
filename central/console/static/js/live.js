// The live view: one stream feeding the feed, the tiles and the alert banners.
import * as alerts from "./alerts.js";
import { addEvent, newestId } from "./feed.js";
import * as gates from "./gates.js";
import { connect } from "./stream.js";

const handlers = {
  event(event) {
    if (addEvent(event)) gates.onEvent(event);
  },
  status() {
    gates.refresh().catch(() => {});
  },
  alert(alert) {
    alerts.onAlert(alert).catch(() => {});
  },
};

connect(handlers, newestId());
