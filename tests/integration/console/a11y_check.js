// Run in the page by a11y.py: WCAG contrast of text, sizes, names of controls.
() => {
  const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
    }
    return [255, 255, 255];
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
  };
  const problems = [];
  let checked = 0;
  for (const el of document.body.querySelectorAll("*")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(el)) continue;
    const s = getComputedStyle(el);
    const fg = lum(rgb(s.color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    checked++;
    if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
    if (el.closest("main, header") && size < 16) problems.push(`font ${size}px < 16: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
  }
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const named = el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push(`no label: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (visible(el) && !el.textContent.trim() && !el.getAttribute("aria-label")) problems.push(`no name: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("img")) {
    if (!el.hasAttribute("alt")) problems.push(`no alt: ${el.outerHTML.slice(0, 80)}`);
  }
  return { checked, problems };
}
