/**
 * JWT signing keys (SPEC §9): the asymmetric keys of `JWT_SIGNING_KEYS` (ES256 or RS256, as
 * `supabase gen signing-key` prints them) and, for compatibility, HS256 with the legacy JWT secret.
 * The first signing key signs; every listed key verifies, chosen by `kid`; nothing is ever taken
 * or fetched from a token's header.
 */
import { CompactSign, compactVerify, importJWK } from "jose";
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { isPlainObject, type SigningKeyJwk } from "./signing_key_config.ts";

export type { ParsedSigningKeys, SigningKeyJwk } from "./signing_key_config.ts";
export { parseSigningKeys } from "./signing_key_config.ts";

/** The public half of a signing key, as the jwks endpoint publishes it. */
export interface PublicJwk {
  kty: "EC" | "RSA";
  kid: string;
  alg: "ES256" | "RS256";
  use: "sig";
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

/** Signs and verifies platform tokens with the configured keys, imported once. */
export interface JwtKeyring {
  /** The `kid` of the signing key, or null when tokens are HS256 with the secret. */
  signingKid: string | null;
  /**
   * Signs a JWT whose payload is exactly these bytes: with the first signing key (header
   * `{alg, kid, typ: "JWT"}`) or, without signing keys, HS256 with the secret (header
   * `{alg: "HS256", typ: "JWT"}`, no kid).
   */
  sign(payload: Uint8Array): Promise<string>;
  /**
   * Checks the header policy and the signature only (claims are the caller's): the decoded header
   * and the payload bytes, or null for anything malformed, forged or not ours.
   */
  verify(token: string): Promise<{ header: Record<string, unknown>; payload: Uint8Array } | null>;
  /** The public halves of every signing key, for the jwks endpoint (empty with HS256 only). */
  publicJwks: PublicJwk[];
}

/**
 * Header parameters that point at keys or certificates elsewhere, or carry a key themselves, and
 * `crit` (extensions we do not implement). A token naming any of them is refused outright: the
 * key is always ours, chosen by `kid`, and nothing is ever fetched because a token asks for it.
 */
const refusedHeaderParameters = ["jku", "x5u", "jwk", "x5c", "crit"];

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The public half of a signing key: kty, kid, alg, `use: "sig"` and the public members only. */
function publicJwkOf(key: SigningKeyJwk): PublicJwk {
  const { kty, kid, alg } = key;
  if (kty === "EC") {
    return { kty, kid, alg, use: "sig", crv: "P-256", x: key.x as string, y: key.y as string };
  }
  return { kty, kid, alg, use: "sig", n: key.n as string, e: key.e as string };
}

/** What a header accepted by the policy verifies with. */
interface Verifier {
  alg: string;
  key: Promise<CryptoKey>;
}

/** A signing key with its imported halves. */
interface ImportedKey extends Verifier {
  kid: string;
  header: { alg: string; kid?: string; typ: "JWT" };
  signingKey: Promise<CryptoKey>;
}

/**
 * Builds a keyring: every key is imported once, here, and kept (as a promise) for the life of the
 * process. Throws (a programmer error) without any key, or with a `kid` listed twice.
 *
 * @example
 * ```ts
 * const keyring = createJwtKeyring({ signingKeys: parsed.keys, hs256Secret: env.JWT_SECRET });
 * const token = await keyring.sign(new TextEncoder().encode(JSON.stringify(claims)));
 * const verified = await keyring.verify(token); // { header, payload } or null
 * ```
 */
export function createJwtKeyring(
  options: { signingKeys: SigningKeyJwk[]; hs256Secret?: string },
): JwtKeyring {
  const { signingKeys } = options;
  const hs256Secret = options.hs256Secret || undefined;
  if (signingKeys.length === 0 && hs256Secret === undefined) {
    throw new TypeError("createJwtKeyring needs signing keys or an HS256 secret");
  }

  const byKid = new Map<string, ImportedKey>();
  for (const jwk of signingKeys) {
    if (byKid.has(jwk.kid)) throw new TypeError("createJwtKeyring was given one kid twice");
    const publicJwk = publicJwkOf(jwk);
    // The CLI's private JWK claims key_ops ["sign", "verify"] (and ext, use): WebCrypto refuses a
    // private EC key with "verify", so it is imported for signing only, from its members without
    // those three; the verifying key comes from the public members alone.
    const { key_ops: _keyOps, ext: _ext, use: _use, ...privateJwk } = jwk;
    byKid.set(jwk.kid, {
      kid: jwk.kid,
      alg: jwk.alg,
      header: Object.freeze({ alg: jwk.alg, kid: jwk.kid, typ: "JWT" as const }),
      signingKey: handled(importJWK(privateJwk, jwk.alg) as Promise<CryptoKey>),
      key: handled(importJWK({ ...publicJwk }, jwk.alg) as Promise<CryptoKey>),
    });
  }

  const hs256: Verifier | null = hs256Secret === undefined ? null : {
    alg: "HS256",
    key: handled(
      crypto.subtle.importKey(
        "raw",
        encoder.encode(hs256Secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign", "verify"],
      ),
    ),
  };
  const hs256Header = Object.freeze({ alg: "HS256", typ: "JWT" as const });

  // The headers this keyring writes, encoded exactly as jose encodes them: a token of ours comes
  // back with one of these, and its policy was decided here, once, instead of per request.
  const knownHeaders = new Map<string, { header: Record<string, unknown>; verifier: Verifier }>();
  for (const imported of byKid.values()) {
    knownHeaders.set(encodeHeader(imported.header), {
      header: imported.header,
      verifier: imported,
    });
  }
  if (hs256) knownHeaders.set(encodeHeader(hs256Header), { header: hs256Header, verifier: hs256 });

  /** The verifier a header's policy allows, or null (SPEC §9, §13.10). */
  function resolveHeader(
    encodedHeader: string,
  ): { header: Record<string, unknown>; verifier: Verifier } | null {
    const bytes = decodeBase64Url(encodedHeader);
    if (!bytes) return null;
    let header: unknown;
    try {
      header = JSON.parse(strictUtf8.decode(bytes));
    } catch {
      return null;
    }
    if (!isPlainObject(header) || typeof header.alg !== "string") return null;
    if (refusedHeaderParameters.some((name) => Object.hasOwn(header, name))) return null;
    if (Object.hasOwn(header, "kid")) {
      // A kid names one of our keys, and the token must use that key's own algorithm: HS256
      // "signed" with a public key's bytes, or any other algorithm, is refused here.
      const imported = typeof header.kid === "string" ? byKid.get(header.kid) : undefined;
      if (!imported || imported.alg !== header.alg) return null;
      return { header, verifier: imported };
    }
    // Without a kid, only the legacy secret, and only while it is set.
    if (header.alg === "HS256" && hs256) return { header, verifier: hs256 };
    return null;
  }

  const signer = byKid.values().next().value ?? null;

  return {
    signingKid: signer?.kid ?? null,

    async sign(payload) {
      if (signer) {
        return await new CompactSign(payload).setProtectedHeader(signer.header).sign(
          await signer.signingKey,
        );
      }
      return await new CompactSign(payload).setProtectedHeader(hs256Header).sign(await hs256!.key);
    },

    async verify(token) {
      if (typeof token !== "string") return null;
      const segments = token.split(".");
      if (segments.length !== 3) return null;
      const [encodedHeader, encodedPayload, encodedSignature] = segments;
      const resolved = knownHeaders.get(encodedHeader) ?? resolveHeader(encodedHeader);
      // jose decodes leniently (padding, non-zero unused bits), so one token could be written
      // several ways; only the canonical spelling is accepted (SPEC §13.10).
      if (
        !resolved || !isCanonicalBase64Url(encodedPayload) ||
        !isCanonicalBase64Url(encodedSignature)
      ) {
        return null;
      }
      try {
        const { payload } = await compactVerify(token, await resolved.verifier.key, {
          algorithms: [resolved.verifier.alg],
        });
        return { header: { ...resolved.header }, payload };
      } catch {
        return null;
      }
    },

    publicJwks: signingKeys.map((key) => Object.freeze(publicJwkOf(key))),
  };
}

function encodeHeader(header: Record<string, unknown>): string {
  return encodeBase64Url(encoder.encode(JSON.stringify(header)));
}

/** Marks a key import as handled, so a bad key fails the calls that use it, not the process. */
function handled(promise: Promise<CryptoKey>): Promise<CryptoKey> {
  promise.catch(() => {});
  return promise;
}

const base64UrlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Whether `text` is canonical unpadded base64url, as {@link decodeBase64Url} accepts it, without
 * decoding it: only the alphabet, no length of 4n+1, and zero unused bits in the last character.
 */
function isCanonicalBase64Url(text: string): boolean {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return false;
  const remainder = text.length % 4;
  if (remainder === 0) return true;
  if (remainder === 1) return false;
  const last = base64UrlAlphabet.indexOf(text[text.length - 1]);
  // Two characters carry one byte (4 bits unused); three carry two bytes (2 bits unused).
  return (last & (remainder === 2 ? 0b1111 : 0b11)) === 0;
}
