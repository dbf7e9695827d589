/**
 * Signature checks of the webhooks this project receives. Every check runs over the raw request
 * bytes, before anything is parsed, and compares in constant time. Verifiers return `false` on
 * anything malformed; the handler chooses the status.
 */

const encoder = new TextEncoder();

/**
 * Compares two byte strings in time that depends only on their lengths, so an attacker timing
 * the answers cannot learn how many leading bytes of a guess were right. Different lengths are
 * `false` at once: a length is not the secret.
 *
 * @example
 * ```ts
 * timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])); // true
 * ```
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let difference = 0;
  for (let i = 0; i < a.byteLength; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/**
 * Whether a presented secret (a verify token, a bearer token) equals the expected one, without
 * leaking either its bytes or its length through timing: both sides are hashed to 32 bytes first,
 * then compared with {@link timingSafeEqual}.
 *
 * @example
 * ```ts
 * await secretsEqual(url.searchParams.get("hub.verify_token") ?? "", verifyToken);
 * ```
 */
export async function secretsEqual(presented: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([sha256(presented), sha256(expected)]);
  return timingSafeEqual(a, b);
}

async function sha256(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(value)));
}

/** `sha256=` then exactly 64 lowercase hex digits, as Meta sends it; anything else is refused. */
const metaSignaturePattern = /^sha256=([0-9a-f]{64})$/;

/**
 * HMAC keys by app secret, imported once per secret rather than once per request. A process
 * holds one app secret (two during a rotation), so this never grows past a handful of entries.
 */
const metaKeys = new Map<string, Promise<CryptoKey>>();

function metaKey(appSecret: string): Promise<CryptoKey> {
  let key = metaKeys.get(appSecret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(appSecret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
    metaKeys.set(appSecret, key);
  }
  return key;
}

/**
 * Verifies Meta's `X-Hub-Signature-256` header (WhatsApp Cloud API, Graph API webhooks):
 * `sha256=` followed by the lowercase hex HMAC-SHA256 of the raw body under the app secret.
 * A missing header, another prefix (`sha1=`), uppercase or short hex, or a wrong MAC is `false`.
 *
 * @example
 * ```ts
 * const body = await readBody(req, 3 * 1024 * 1024);
 * if (!await verifyMetaSignature(body, req.headers.get("x-hub-signature-256"), appSecret)) {
 *   throw new HttpError(401, "INVALID_SIGNATURE", "Signature is missing or invalid");
 * }
 * ```
 */
export async function verifyMetaSignature(
  rawBody: Uint8Array,
  header: string | null | undefined,
  appSecret: string,
): Promise<boolean> {
  const match = metaSignaturePattern.exec(header ?? "");
  if (!match || !appSecret) return false;
  const signature = new Uint8Array(32);
  for (let i = 0; i < 32; i++) signature[i] = parseInt(match[1].slice(i * 2, i * 2 + 2), 16);
  // crypto.subtle.verify recomputes the MAC and compares it in constant time (Deno implements HMAC
  // verification with ring::hmac::verify), so no byte of the expected MAC leaks through timing.
  return await crypto.subtle.verify(
    "HMAC",
    await metaKey(appSecret),
    signature,
    rawBody as Uint8Array<ArrayBuffer>,
  );
}

/** How far a Standard Webhooks timestamp may be from now, either way (the spec's default). */
export const webhookToleranceSeconds = 5 * 60; // 5 minutes

/** `v1,whsec_<standard base64>` as Supabase shows it; `whsec_<base64>` and bare base64 also do. */
const standardWebhookSecretPattern = /^(?:v1,)?(?:whsec_)?([A-Za-z0-9+/]+={0,2})$/;

/** Checks the `webhook-*` headers of a Standard Webhooks delivery against the raw body. */
export interface StandardWebhookVerifier {
  /**
   * Whether `webhook-signature` holds a `v1,<base64 HMAC-SHA256>` of
   * `${webhook-id}.${webhook-timestamp}.${rawBody}` under one of the secrets, and the timestamp is
   * within {@link webhookToleranceSeconds} of `now` (too old and too new are both refused).
   */
  verify(rawBody: Uint8Array, headers: Headers, now: Date): Promise<boolean>;
}

/**
 * A verifier for Standard Webhooks (https://www.standardwebhooks.com/, what Supabase Auth HTTP
 * hooks send), holding every secret of a rotation; keys are imported once, here. `null` when a
 * secret is not `v1,whsec_<base64>`, so the caller can refuse the configuration up front.
 *
 * @example
 * ```ts
 * const verifier = createStandardWebhookVerifier(["v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
 * if (!verifier || !await verifier.verify(body, req.headers, new Date())) {
 *   throw new HttpError(401, "INVALID_SIGNATURE", "Signature is missing or invalid");
 * }
 * ```
 */
export function createStandardWebhookVerifier(
  secrets: string[],
): StandardWebhookVerifier | null {
  const rawKeys = secrets.map(decodeStandardWebhookSecret);
  if (rawKeys.length === 0 || rawKeys.some((key) => key === null)) return null;
  const keys = Promise.all(
    rawKeys.map((key) =>
      crypto.subtle.importKey("raw", key!, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
    ),
  );

  return {
    async verify(rawBody, headers, now) {
      const id = headers.get("webhook-id");
      const timestamp = headers.get("webhook-timestamp");
      const signatures = headers.get("webhook-signature");
      if (!id || !timestamp || !signatures || !/^\d{1,15}$/.test(timestamp)) return false;
      const nowSeconds = Math.floor(now.getTime() / 1000);
      if (Math.abs(nowSeconds - Number(timestamp)) > webhookToleranceSeconds) return false;
      // Several space-separated signatures may come (the sender's own rotation); other versions
      // than v1 (`v1a`, asymmetric) are not ours to check.
      const presented = signatures.split(" ")
        .filter((signature) => signature.startsWith("v1,"))
        .map((signature) => encoder.encode(signature.slice(3)));
      if (presented.length === 0) return false;

      const prefix = encoder.encode(`${id}.${timestamp}.`);
      const signed = new Uint8Array(prefix.byteLength + rawBody.byteLength);
      signed.set(prefix);
      signed.set(rawBody, prefix.byteLength);
      for (const key of await keys) {
        const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
        const expected = encoder.encode(btoa(String.fromCharCode(...mac)));
        // Compared in constant time, as the reference implementation does: a signature guessed
        // byte by byte must not be confirmed by how long the comparison took.
        if (presented.some((signature) => timingSafeEqual(signature, expected))) return true;
      }
      return false;
    },
  };
}

/** The HMAC key of a Standard Webhooks secret, or null when it is not one. */
function decodeStandardWebhookSecret(secret: string): Uint8Array<ArrayBuffer> | null {
  const match = standardWebhookSecretPattern.exec(secret.trim());
  if (!match) return null;
  try {
    const key = Uint8Array.from(atob(match[1]), (c) => c.charCodeAt(0));
    return key.byteLength > 0 ? key : null;
  } catch {
    return null;
  }
}
