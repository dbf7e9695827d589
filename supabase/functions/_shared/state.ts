/**
 * The sign-in state that travels through WorkOS (SPEC §6 workos-login): opaque to everyone but us,
 * tamper-proof, valid for 10 minutes, and carrying what the callback needs without any server-side
 * storage before it: where to send the browser back (`return_to`), a nonce (single use is enforced
 * in Postgres when the callback consumes it) and the PKCE verifier.
 *
 * Format: `base64url(version ‖ iv ‖ AES-256-GCM(JSON payload) ‖ tag)` with the version byte as
 * additional data. The key is derived with HKDF-SHA256 from WORKOS_COOKIE_PASSWORD and used for
 * nothing else; encryption (not only a MAC) keeps the PKCE verifier secret while the state sits in
 * browser history and WorkOS's logs.
 */
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { isUuid } from "./jwt.ts";

/** What a state binds. */
export interface LoginState {
  /** The validated, absolute URL the callback redirects to. */
  returnTo: string;
  /** A random UUID chosen by `seal`; the callback consumes it once (identity.consume_workos_state). */
  nonce: string;
  /** The PKCE code verifier whose S256 challenge went to WorkOS. */
  codeVerifier: string;
  /** When the state stops being accepted. */
  expiresAt: Date;
}

export interface StateSealer {
  /** Seals a new state (with a fresh nonce) for `returnTo`, expiring `stateTtlSeconds` after `now`. */
  seal(input: { returnTo: string; codeVerifier: string }, now: Date): Promise<string>;
  /** The state's contents, or null when it is malformed, forged, tampered with or expired. */
  open(state: string, now: Date): Promise<LoginState | null>;
}

/** How long a sign-in may take between workos-login and workos-callback. */
export const stateTtlSeconds = 10 * 60; // 10 minutes

/** Longest state accepted by `open`: a 2048-character return_to sealed is about 2.9 KB. */
export const maxStateLength = 4096;

const version = 1;
const ivBytes = 12;
const tagBytes = 16;
const hkdfSalt = "platform-auth workos-state";
const hkdfInfo = "aes-256-gcm v1";

/**
 * Derives and imports the key once; seal and open reuse it for the life of the process.
 *
 * @example
 * const states = createStateSealer(config.workos.cookiePassword);
 * const state = await states.seal({ returnTo, codeVerifier }, now);
 * const opened = await states.open(state, now); // null if anything is wrong
 */
export function createStateSealer(cookiePassword: string): StateSealer {
  const key = deriveStateKey(cookiePassword);
  const additionalData = Uint8Array.of(version);

  return {
    async seal({ returnTo, codeVerifier }, now) {
      const nonce = crypto.randomUUID();
      const expiresAtSeconds = Math.floor(now.getTime() / 1000) + stateTtlSeconds;
      const plaintext = new TextEncoder().encode(
        JSON.stringify({ r: returnTo, n: nonce, v: codeVerifier, e: expiresAtSeconds }),
      );
      const iv = crypto.getRandomValues(new Uint8Array(ivBytes));
      const sealed = new Uint8Array(
        await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData }, await key, plaintext),
      );
      const bytes = new Uint8Array(1 + ivBytes + sealed.length);
      bytes[0] = version;
      bytes.set(iv, 1);
      bytes.set(sealed, 1 + ivBytes);
      return encodeBase64Url(bytes);
    },

    async open(state, now) {
      if (state.length > maxStateLength) return null;
      const bytes = decodeBase64Url(state);
      if (!bytes || bytes.length < 1 + ivBytes + tagBytes || bytes[0] !== version) return null;
      let plaintext: ArrayBuffer;
      try {
        // AES-GCM checks the tag before releasing anything: a forged or altered state fails here.
        plaintext = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: bytes.subarray(1, 1 + ivBytes), additionalData },
          await key,
          bytes.subarray(1 + ivBytes),
        );
      } catch {
        return null;
      }
      const payload = parsePayload(plaintext);
      if (!payload || payload.e * 1000 <= now.getTime()) return null;
      return {
        returnTo: payload.r,
        nonce: payload.n,
        codeVerifier: payload.v,
        expiresAt: new Date(payload.e * 1000),
      };
    },
  };
}

async function deriveStateKey(cookiePassword: string): Promise<CryptoKey> {
  const encoder = new TextEncoder();
  const material = await crypto.subtle.importKey(
    "raw",
    encoder.encode(cookiePassword),
    "HKDF",
    false,
    ["deriveKey"],
  );
  return crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: encoder.encode(hkdfSalt),
      info: encoder.encode(hkdfInfo),
    },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

interface Payload {
  r: string;
  n: string;
  v: string;
  e: number;
}

function parsePayload(plaintext: ArrayBuffer): Payload | null {
  try {
    const value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plaintext));
    if (
      typeof value?.r === "string" && isUuid(value.n) && typeof value.v === "string" &&
      Number.isSafeInteger(value.e)
    ) {
      return value;
    }
    return null;
  } catch {
    return null;
  }
}
