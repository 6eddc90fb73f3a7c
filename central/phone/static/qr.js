// QR code encoder for the live code: alphanumeric mode, versions 1-10, error correction M.
// Written from ISO/IEC 18004; tests/integration/test_phone_qr.py checks it module for module
// against segno and decodes its output with the gate's own decoder.

const ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

// Level M per version: [EC codewords per block, [blocks, data codewords] per group...].
const BLOCKS_M = [
  null,
  [10, [1, 16]],
  [16, [1, 28]],
  [26, [1, 44]],
  [18, [2, 32]],
  [24, [2, 43]],
  [16, [4, 27]],
  [18, [4, 31]],
  [22, [2, 38], [2, 39]],
  [22, [3, 36], [2, 37]],
  [26, [4, 43], [1, 44]],
];
const ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34],
  [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]];
const REMAINDER_BITS = [0, 0, 7, 7, 7, 7, 7, 0, 0, 0, 0];
export const MAX_VERSION = 10;

// --- GF(256) arithmetic and Reed-Solomon --------------------------------------------------

const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
(() => {
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
})();

function gfMul(a, b) {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]];
}

// The generator polynomial (x - a^0)(x - a^1)...(x - a^(n-1)), highest coefficient first.
function generator(n) {
  let poly = [1];
  for (let i = 0; i < n; i++) {
    const next = new Array(poly.length + 1).fill(0);
    for (let j = 0; j < poly.length; j++) {
      next[j] ^= poly[j];
      next[j + 1] ^= gfMul(poly[j], EXP[i]);
    }
    poly = next;
  }
  return poly;
}

// The EC codewords: the remainder of data(x) * x^n divided by the generator.
export function reedSolomon(data, n) {
  const gen = generator(n);
  const rem = new Array(n).fill(0);
  for (const byte of data) {
    const factor = byte ^ rem.shift();
    rem.push(0);
    for (let i = 0; i < n; i++) rem[i] ^= gfMul(gen[i + 1], factor);
  }
  return rem;
}

// --- data codewords -----------------------------------------------------------------------

function dataCapacity(version) {
  const [, ...groups] = BLOCKS_M[version];
  return groups.reduce((sum, [count, size]) => sum + count * size, 0);
}

function countBits(version) {
  return version <= 9 ? 9 : 11;
}

function bitLength(text, version) {
  return 4 + countBits(version) + Math.floor(text.length / 2) * 11 + (text.length % 2) * 6;
}

export function chooseVersion(text) {
  for (let v = 1; v <= MAX_VERSION; v++) {
    if (bitLength(text, v) <= dataCapacity(v) * 8) return v;
  }
  throw new Error(`${text.length} characters do not fit a version ${MAX_VERSION}-M QR code`);
}

function dataCodewords(text, version) {
  const bits = [];
  const put = (value, n) => {
    for (let i = n - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  const value = (ch) => {
    const v = ALNUM.indexOf(ch);
    if (v < 0) throw new Error(`not a QR alphanumeric character: ${JSON.stringify(ch)}`);
    return v;
  };
  put(0b0010, 4);
  put(text.length, countBits(version));
  for (let i = 0; i + 1 < text.length; i += 2) put(value(text[i]) * 45 + value(text[i + 1]), 11);
  if (text.length % 2) put(value(text[text.length - 1]), 6);
  const capacity = dataCapacity(version) * 8;
  put(0, Math.min(4, capacity - bits.length));
  put(0, (8 - (bits.length % 8)) % 8);
  const out = [];
  for (let i = 0; i < bits.length; i += 8) {
    out.push(bits.slice(i, i + 8).reduce((acc, b) => (acc << 1) | b, 0));
  }
  for (let pad = 0xec; out.length < capacity / 8; pad ^= 0xec ^ 0x11) out.push(pad);
  return out;
}

// Split into blocks, add each block's EC codewords, and interleave.
function codewords(text, version) {
  const [ecLen, ...groups] = BLOCKS_M[version];
  const data = dataCodewords(text, version);
  const blocks = [];
  let pos = 0;
  for (const [count, size] of groups) {
    for (let i = 0; i < count; i++) {
      const block = data.slice(pos, pos + size);
      pos += size;
      blocks.push([block, reedSolomon(block, ecLen)]);
    }
  }
  const out = [];
  const longest = Math.max(...blocks.map(([d]) => d.length));
  for (let i = 0; i < longest; i++) for (const [d] of blocks) if (i < d.length) out.push(d[i]);
  for (let i = 0; i < ecLen; i++) for (const [, ec] of blocks) out.push(ec[i]);
  return out;
}

// --- the matrix ---------------------------------------------------------------------------

class Matrix {
  constructor(version) {
    this.version = version;
    this.size = 17 + 4 * version;
    this.dark = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
    this.reserved = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
  }

  fn(x, y, dark) {
    this.dark[y][x] = dark;
    this.reserved[y][x] = true;
  }

  drawFunctionPatterns() {
    const s = this.size;
    for (let i = 0; i < s; i++) {
      this.fn(6, i, i % 2 === 0);
      this.fn(i, 6, i % 2 === 0);
    }
    this.finder(3, 3);
    this.finder(s - 4, 3);
    this.finder(3, s - 4);
    const align = ALIGN[this.version];
    const last = align.length - 1;
    for (let i = 0; i <= last; i++) {
      for (let j = 0; j <= last; j++) {
        const onFinder = (i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0);
        if (!onFinder) this.alignment(align[i], align[j]);
      }
    }
    this.drawFormat(0); // reserve the areas; the real bits come with the mask
    this.drawVersion();
  }

  finder(cx, cy) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx;
        const y = cy + dy;
        if (x < 0 || y < 0 || x >= this.size || y >= this.size) continue;
        const ring = Math.max(Math.abs(dx), Math.abs(dy));
        this.fn(x, y, ring !== 2 && ring !== 4);
      }
    }
  }

  alignment(cx, cy) {
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) {
        this.fn(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
      }
    }
  }

  drawFormat(mask) {
    const data = mask; // level M is 00, so the 5 data bits are just the mask
    let rem = data;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    const bits = ((data << 10) | rem) ^ 0x5412;
    const bit = (i) => ((bits >>> i) & 1) === 1;
    const s = this.size;
    for (let i = 0; i <= 5; i++) this.fn(8, i, bit(i));
    this.fn(8, 7, bit(6));
    this.fn(8, 8, bit(7));
    this.fn(7, 8, bit(8));
    for (let i = 9; i < 15; i++) this.fn(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) this.fn(s - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) this.fn(8, s - 15 + i, bit(i));
    this.fn(8, s - 8, true); // the dark module
  }

  drawVersion() {
    if (this.version < 7) return;
    let rem = this.version;
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
    const bits = (this.version << 12) | rem;
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >>> i) & 1) === 1;
      const a = this.size - 11 + (i % 3);
      const b = Math.floor(i / 3);
      this.fn(a, b, dark);
      this.fn(b, a, dark);
    }
  }

  // Codeword bits in the two-column zigzag from the bottom right, skipping the timing column.
  drawCodewords(words) {
    const total = words.length * 8 + REMAINDER_BITS[this.version];
    let i = 0;
    for (let right = this.size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      const upward = ((right + 1) & 2) === 0;
      for (let vert = 0; vert < this.size; vert++) {
        const y = upward ? this.size - 1 - vert : vert;
        for (let j = 0; j < 2; j++) {
          const x = right - j;
          if (this.reserved[y][x] || i >= total) continue;
          const byte = i >>> 3 < words.length ? words[i >>> 3] : 0;
          this.dark[y][x] = ((byte >>> (7 - (i & 7))) & 1) === 1;
          i++;
        }
      }
    }
  }

  applyMask(mask) {
    for (let y = 0; y < this.size; y++) {
      for (let x = 0; x < this.size; x++) {
        if (!this.reserved[y][x] && MASKS[mask](x, y)) this.dark[y][x] = !this.dark[y][x];
      }
    }
  }
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

// --- mask choice: the four penalty rules of the standard ---------------------------------

function runPenalty(line) {
  let score = 0;
  let run = 1;
  for (let i = 1; i <= line.length; i++) {
    if (i < line.length && line[i] === line[i - 1]) {
      run++;
      continue;
    }
    if (run >= 5) score += run - 2;
    run = 1;
  }
  const pattern = [true, false, true, true, true, false, true];
  for (let i = 0; i + 7 <= line.length; i++) {
    if (!pattern.every((p, k) => line[i + k] === p)) continue;
    const lightBefore = i >= 4 && line.slice(i - 4, i).every((d) => !d);
    const lightAfter = i + 11 <= line.length && line.slice(i + 7, i + 11).every((d) => !d);
    if (lightBefore || lightAfter) score += 40;
  }
  return score;
}

export function penalty(dark) {
  const size = dark.length;
  let score = 0;
  for (let y = 0; y < size; y++) score += runPenalty(dark[y]);
  for (let x = 0; x < size; x++) score += runPenalty(dark.map((row) => row[x]));
  let darkCount = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (dark[y][x]) darkCount++;
      if (x + 1 < size && y + 1 < size) {
        const c = dark[y][x];
        if (dark[y][x + 1] === c && dark[y + 1][x] === c && dark[y + 1][x + 1] === c) score += 3;
      }
    }
  }
  const percent = (darkCount * 100) / (size * size);
  score += Math.floor(Math.abs(percent - 50) / 5) * 10;
  return score;
}

// The module matrix (rows of booleans, true = dark) for text, without the quiet zone.
export function encode(text, fixedMask = null) {
  const version = chooseVersion(text);
  const words = codewords(text, version);
  let best = null;
  for (let mask = 0; mask < 8; mask++) {
    if (fixedMask !== null && mask !== fixedMask) continue;
    const m = new Matrix(version);
    m.drawFunctionPatterns();
    m.drawCodewords(words);
    m.applyMask(mask);
    m.drawFormat(mask);
    const score = fixedMask === null ? penalty(m.dark) : 0;
    if (best === null || score < best.score) best = { score, dark: m.dark, version, mask };
  }
  return best;
}

// An SVG element drawing the code with a 4-module quiet zone.
export function toSvg(dark, doc = document) {
  const quiet = 4;
  const size = dark.length + 2 * quiet;
  const ns = "http://www.w3.org/2000/svg";
  const svg = doc.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("shape-rendering", "crispEdges");
  const parts = [];
  dark.forEach((row, y) => row.forEach((d, x) => {
    if (d) parts.push(`M${x + quiet} ${y + quiet}h1v1h-1z`);
  }));
  const bg = doc.createElementNS(ns, "rect");
  bg.setAttribute("width", String(size));
  bg.setAttribute("height", String(size));
  bg.setAttribute("fill", "#fff");
  const path = doc.createElementNS(ns, "path");
  path.setAttribute("d", parts.join(""));
  path.setAttribute("fill", "#000");
  svg.append(bg, path);
  return svg;
}
