// The phone's key and the live code: pass bytes + slot mod 256 + the key's signature over
// "MJ2L" || pass id || slot (docs/protocol.md, "The device-bound pass, version 2").
import * as base45 from "./base45.js";

export const PREFIX = "MJ2:";
const CONTEXT = new TextEncoder().encode("MJ2L");
const ED25519 = { name: "Ed25519" };
const P256 = { name: "ECDSA", namedCurve: "P-256" };

// A new non-extractable key pair: Ed25519 where this browser has it, P-256 otherwise.
// `prefer` lets a test force the fallback.
export async function newKeyPair(prefer = "ed25519") {
  if (prefer === "ed25519") {
    try {
      const pair = await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]);
      return { alg: "ed25519", privateKey: pair.privateKey, publicKey: pair.publicKey };
    } catch (err) {
      console.info("no WebCrypto Ed25519 here, using P-256:", err.name);
    }
  }
  const pair = await crypto.subtle.generateKey(P256, false, ["sign", "verify"]);
  return { alg: "p256", privateKey: pair.privateKey, publicKey: pair.publicKey };
}

// The public key as the pass carries it: raw Ed25519, or the compressed P-256 point.
export async function publicKeyBytes(pair) {
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  if (pair.alg === "ed25519") return raw;
  const out = new Uint8Array(33);
  out[0] = 2 + (raw[64] & 1); // uncompressed is 04 || x || y; keep x and y's parity
  out.set(raw.slice(1, 33), 1);
  return out;
}

export function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function slotMessage(passId, slot) {
  const msg = new Uint8Array(16);
  msg.set(CONTEXT, 0);
  msg.set(passId, 4);
  new DataView(msg.buffer).setUint32(12, slot);
  return msg;
}

async function sign(pair, message) {
  const alg = pair.alg === "ed25519" ? ED25519 : { name: "ECDSA", hash: "SHA-256" };
  return new Uint8Array(await crypto.subtle.sign(alg, pair.privateKey, message));
}

// The live code text for one slot of the stored pass text.
export async function liveCode(passText, pair, slot) {
  const pass = base45.decode(passText.slice(PREFIX.length));
  const passId = pass.slice(4, 12);
  const signature = await sign(pair, slotMessage(passId, slot));
  const out = new Uint8Array(pass.length + 1 + signature.length);
  out.set(pass, 0);
  out[pass.length] = slot & 0xff;
  out.set(signature, pass.length + 1);
  return PREFIX + base45.encode(out);
}
