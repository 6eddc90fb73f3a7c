// The alert sound: a two-tone chime made here as a WAV (no audio file shipped), played through
// the page's <audio> element once the guard has switched sound on (browsers block autoplay).
import { t } from "./words.js";

const audio = document.getElementById("alert-sound");
const button = document.getElementById("sound-toggle");
const state = document.getElementById("sound-state");
let enabled = false;

function chime(rate = 22050) {
  const tones = [[880, 0.25], [660, 0.35]];
  const total = tones.reduce((n, [, s]) => n + Math.floor(rate * s), 0);
  const view = new DataView(new ArrayBuffer(44 + total * 2));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + total * 2, true); text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true); text(36, "data");
  view.setUint32(40, total * 2, true);
  let at = 44;
  for (const [freq, seconds] of tones) {
    const n = Math.floor(rate * seconds);
    for (let i = 0; i < n; i++) {
      const fade = Math.min(1, i / 200, (n - i) / 200);
      view.setInt16(at, Math.sin((2 * Math.PI * freq * i) / rate) * 0.5 * fade * 32767, true);
      at += 2;
    }
  }
  return URL.createObjectURL(new Blob([view], { type: "audio/wav" }));
}

function show() {
  button.textContent = enabled ? t("sound.disable") : t("sound.enable");
  button.setAttribute("aria-pressed", String(enabled));
  state.textContent = enabled ? t("sound.on") : t("sound.off");
  state.dataset.on = String(enabled);
}

export function play() {
  if (!enabled) return;
  audio.pause();  // a new alert restarts the chime (and counts as a new play)
  audio.currentTime = 0;
  audio.play().catch(() => {});
}

audio.src = chime();
audio.addEventListener("play", () => { audio.dataset.plays = String(Number(audio.dataset.plays || 0) + 1); });
button.addEventListener("click", () => {
  enabled = !enabled;
  show();
  play();  // the click itself unlocks audio, and the guard hears what an alert sounds like
});
show();
