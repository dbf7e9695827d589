/**
 * Refresh tokens (SPEC §6 refresh), never stored: `base64url(session id ‖ counter ‖ HMAC)`, the
 * HMAC under a key derived from the session secret and used for nothing else. A token is
 * unguessable (256-bit MAC) and checked without the database; the session row keeps only the
 * counter of the one live token.
 */
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";

export interface RefreshTokenParts {
  sessionId: string;
  counter: number;
}

export interface RefreshTokens {
  issue(parts: RefreshTokenParts): Promise<string>;
  /** The session and counter of a genuine token, or null for anything else. */
  open(token: string): Promise<RefreshTokenParts | null>;
}

const refreshKeyLabel = "platform-auth refresh token key v1";
const uuidBytes = 16;
const counterBytes = 8;
const macBytes = 32;
const refreshTokenBytes = uuidBytes + counterBytes + macBytes;

/**
 * Refresh tokens MACed under HMAC-SHA256(secret, label), a key used for nothing else. The first
 * secret issues (SESSION_SECRET when set); every secret opens, so tokens issued under JWT_SECRET
 * keep working while it is set and their successors move to SESSION_SECRET.
 */
export function createRefreshTokens(secrets: string[]): RefreshTokens {
  if (secrets.length === 0) throw new TypeError("Cannot create refresh tokens: no secret");
  const keys = secrets.map(deriveKey);

  return {
    async issue({ sessionId, counter }) {
      const body = new Uint8Array(uuidBytes + counterBytes);
      body.set(uuidToBytes(sessionId));
      new DataView(body.buffer).setBigUint64(uuidBytes, BigInt(counter));
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await keys[0], body));
      const token = new Uint8Array(refreshTokenBytes);
      token.set(body);
      token.set(mac, body.length);
      return encodeBase64Url(token);
    },

    async open(token) {
      const bytes = decodeBase64Url(token);
      if (!bytes || bytes.length !== refreshTokenBytes) return null;
      const body = bytes.subarray(0, uuidBytes + counterBytes);
      const mac = bytes.subarray(uuidBytes + counterBytes);
      // crypto.subtle.verify compares the MAC in constant time.
      let genuine = false;
      for (const key of keys) {
        if (await crypto.subtle.verify("HMAC", await key, mac, body)) genuine = true;
      }
      if (!genuine) return null;
      const counter = new DataView(body.buffer, body.byteOffset).getBigUint64(uuidBytes);
      return { sessionId: bytesToUuid(body.subarray(0, uuidBytes)), counter: Number(counter) };
    },
  };
}

async function deriveKey(secret: string): Promise<CryptoKey> {
  const secretKey = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const derived = await crypto.subtle.sign(
    "HMAC",
    secretKey,
    new TextEncoder().encode(refreshKeyLabel),
  );
  return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

function uuidToBytes(uuid: string): Uint8Array {
  const hex = uuid.replaceAll("-", "");
  return Uint8Array.from(
    { length: uuidBytes },
    (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16),
  );
}

function bytesToUuid(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
