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
 *
 * Login CSRF (SPEC §13.12): a state started in redirect mode is also bound to the browser that
 * started it. workos-login sets a cookie holding 32 random bytes and seals their SHA-256 in the
 * state; the callback accepts such a state only with that cookie. Otherwise anyone could start a
 * sign-in as themselves and send a victim's browser to the callback with their code and state,
 * signing the victim into the attacker's account. (JSON mode, for apps that cannot keep a
 * cookie, seals no binding and stays open to that; browsers should use redirect mode.)
 */
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { isUuid } from "./jwt.ts";
import { timingSafeEqual } from "./signatures.ts";

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
  /**
   * The browser binding's hash (`BrowserBinding.hash`) for a state started in redirect mode; null
   * for one started in JSON mode, which any browser may bring back.
   */
  browserBinding: string | null;
}

export interface StateSealer {
  /**
   * Seals a new state (with a fresh nonce) for `returnTo`, expiring `stateTtlSeconds` after `now`,
   * bound to the browser whose binding hash is `browserBinding` when given.
   */
  seal(
    input: { returnTo: string; codeVerifier: string; browserBinding?: string },
    now: Date,
  ): Promise<string>;
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
    async seal({ returnTo, codeVerifier, browserBinding }, now) {
      const nonce = crypto.randomUUID();
      const expiresAtSeconds = Math.floor(now.getTime() / 1000) + stateTtlSeconds;
      const payload: Payload = { r: returnTo, n: nonce, v: codeVerifier, e: expiresAtSeconds };
      if (browserBinding !== undefined) payload.b = browserBinding;
      const plaintext = new TextEncoder().encode(JSON.stringify(payload));
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
        browserBinding: payload.b ?? null,
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
  /** The browser binding's hash, in redirect mode only. */
  b?: string;
}

function parsePayload(plaintext: ArrayBuffer): Payload | null {
  try {
    const value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plaintext));
    if (
      typeof value?.r === "string" && isUuid(value.n) && typeof value.v === "string" &&
      Number.isSafeInteger(value.e) && (value.b === undefined || isBindingHash(value.b))
    ) {
      return value;
    }
    return null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The browser binding (redirect mode, SPEC §13.12)
// ---------------------------------------------------------------------------------------------

/** A new browser binding: the cookie keeps `cookieValue`, the state seals `hash`. */
export interface BrowserBinding {
  /** 32 random bytes, base64url: the cookie's value. */
  cookieValue: string;
  /** base64url(SHA-256(cookieValue)): what the state seals. */
  hash: string;
}

/** Where the binding cookie lives: derived from WORKOS_REDIRECT_URI, the only path it goes to. */
export interface BindingCookie {
  /** `__Secure-workos-login` over https (a browser keeps it only from a secure origin), else `workos-login`. */
  name: string;
  /** The callback's path: the cookie is sent nowhere else. */
  path: string;
  /** Whether the callback is https, so the cookie carries `Secure`. */
  secure: boolean;
}

const bindingBytes = 32;
const bindingHashPattern = /^[A-Za-z0-9_-]{43}$/;
/** Cookies of our name looked at per request: a browser sends one; more is someone's noise. */
const maxBindingCookies = 4;

/** A fresh binding for one sign-in. */
export async function createBrowserBinding(): Promise<BrowserBinding> {
  const cookieValue = encodeBase64Url(crypto.getRandomValues(new Uint8Array(bindingBytes)));
  return { cookieValue, hash: encodeBase64Url(await sha256(cookieValue)) };
}

/**
 * The binding cookie for the callback at `redirectUri`, or null when its path cannot be a cookie
 * path (a `;` in it).
 *
 * @example
 * bindingCookie("https://x.supabase.co/functions/v1/workos-callback");
 * // { name: "__Secure-workos-login", path: "/functions/v1/workos-callback", secure: true }
 */
export function bindingCookie(redirectUri: string): BindingCookie | null {
  const url = new URL(redirectUri);
  if (!/^\/[\x21-\x3a\x3c-\x7e]*$/.test(url.pathname)) return null;
  const secure = url.protocol === "https:";
  return { name: secure ? "__Secure-workos-login" : "workos-login", path: url.pathname, secure };
}

/**
 * The `Set-Cookie` value that hands `value` to the browser for the life of a state, or, with
 * `null`, clears the cookie. HttpOnly (no script reads it), SameSite=Lax (sent on AuthKit's
 * top-level redirect back, not on cross-site subrequests), scoped to the callback's path.
 */
export function bindingSetCookie(cookie: BindingCookie, value: string | null): string {
  const maxAge = value === null ? 0 : stateTtlSeconds;
  const attributes = [
    `${cookie.name}=${value ?? ""}`,
    `Path=${cookie.path}`,
    `Max-Age=${maxAge}`,
    "HttpOnly",
    "SameSite=Lax",
  ];
  if (cookie.secure) attributes.push("Secure");
  return attributes.join("; ");
}

/**
 * Whether the request's `Cookie` header holds the cookie whose hash `state` sealed. Compared in
 * constant time: the hash is a secret of the browser that started the sign-in.
 */
export async function browserBindingMatches(
  binding: string,
  cookie: BindingCookie,
  cookieHeader: string | null,
): Promise<boolean> {
  const expected = decodeBase64Url(binding);
  if (!expected) return false;
  const values = (cookieHeader ?? "").split(";")
    .map((pair) => pair.trim())
    .filter((pair) => pair.startsWith(`${cookie.name}=`))
    .map((pair) => pair.slice(cookie.name.length + 1))
    .slice(0, maxBindingCookies);
  let matches = false;
  // Every value is hashed and compared, so the time taken does not tell which one matched.
  for (const value of values) {
    if (timingSafeEqual(await sha256(value), expected)) matches = true;
  }
  return matches;
}

function isBindingHash(value: unknown): value is string {
  return typeof value === "string" && bindingHashPattern.test(value);
}

async function sha256(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value)));
}
