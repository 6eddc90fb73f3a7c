// The larger-text switch, remembered in this browser.
const KEY = "menjin.largeText";
const root = document.documentElement;

function apply(on) {
  root.classList.toggle("large", on);
  const button = document.getElementById("text-size");
  if (button) button.setAttribute("aria-pressed", String(on));
}

apply(localStorage.getItem(KEY) === "1");
document.getElementById("text-size")?.addEventListener("click", () => {
  const on = !root.classList.contains("large");
  localStorage.setItem(KEY, on ? "1" : "0");
  apply(on);
});
