/**
 * `JWT_SIGNING_KEYS` as configuration (SPEC §9): one private JWK or a JSON array of them, checked
 * when the environment is read, without loading the cryptography (signing_keys.ts does that, on
 * the first request that needs a key).
 */
import { decodeBase64Url } from "./base64url.ts";

/** A private signing JWK as `supabase gen signing-key` prints it (ES256: kty EC, crv P-256; RS256: kty RSA). */
export interface SigningKeyJwk {
  kty: "EC" | "RSA";
  kid: string;
  alg: "ES256" | "RS256";
  d: string;
  [member: string]: unknown;
}

/** The keys of `JWT_SIGNING_KEYS`, or what is wrong with them (never a key's value). */
export type ParsedSigningKeys =
  | { ok: true; keys: SigningKeyJwk[] }
  | { ok: false; message: string };

const variable = "JWT_SIGNING_KEYS";
const minRsaModulusBits = 2048;
/** The CRT members Deno needs to import an RSA private key. */
const rsaPrivateMembers = ["p", "q", "dp", "dq", "qi"];
/**
 * Parses `JWT_SIGNING_KEYS`: one private JWK or a JSON array of them, as printed by
 * `supabase gen signing-key --algorithm ES256` (or `RS256`). A message names the problem and the
 * key by its position, never a key's value.
 *
 * @example
 * ```ts
 * const parsed = parseSigningKeys(env.JWT_SIGNING_KEYS ?? "");
 * if (!parsed.ok) return { ok: false, variable: "JWT_SIGNING_KEYS", message: parsed.message };
 * const keyring = createJwtKeyring({ signingKeys: parsed.keys, hs256Secret: env.JWT_SECRET });
 * ```
 */
export function parseSigningKeys(text: string): ParsedSigningKeys {
  if (text.trim() === "") return failure("is empty");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The SyntaxError's own message quotes the input, so it is not passed on.
    return failure("is not valid JSON");
  }
  const candidates = Array.isArray(parsed) ? parsed : [parsed];
  if (candidates.length === 0) return failure("holds no key");

  const keys: SigningKeyJwk[] = [];
  const kids = new Set<string>();
  for (const [index, candidate] of candidates.entries()) {
    const problem = signingKeyProblem(candidate);
    const which = candidates.length === 1 ? "the key" : `key ${index + 1}`;
    if (problem) return failure(`${which} ${problem}`);
    const key = candidate as SigningKeyJwk;
    if (kids.has(key.kid)) return failure(`${which} repeats the kid of an earlier key`);
    kids.add(key.kid);
    keys.push(key);
  }
  return { ok: true, keys };
}

function failure(problem: string): ParsedSigningKeys {
  return { ok: false, message: `${variable} is malformed: ${problem}` };
}

/** What is wrong with one candidate key (a phrase after "key N"), or null when it is usable. */
function signingKeyProblem(key: unknown): string | null {
  if (!isPlainObject(key)) return "is not a JSON object";
  if (key.d === undefined) return "is not a private key (no d)";
  if (typeof key.kid !== "string" || key.kid === "") return "has no kid";
  if (key.alg !== "ES256" && key.alg !== "RS256") return "has an alg other than ES256 or RS256";
  if (key.use !== undefined && key.use !== "sig") return "has a use other than sig";
  if (key.alg === "ES256") {
    if (key.kty !== "EC" || key.crv !== "P-256") return "is ES256 but not kty EC with crv P-256";
    for (const member of ["d", "x", "y"]) {
      if (decodedLength(key[member]) !== 32) return `has no valid ${member} (32 bytes, base64url)`;
    }
    return null;
  }
  if (key.kty !== "RSA") return "is RS256 but not kty RSA";
  for (const member of ["n", "e", "d", ...rsaPrivateMembers]) {
    if (decodedLength(key[member]) === null) return `has no valid ${member} (base64url)`;
  }
  const modulusBits = bitLength(decodeBase64Url(key.n as string)!);
  if (modulusBits < minRsaModulusBits) {
    return `is an RSA key of ${modulusBits} bits (at least ${minRsaModulusBits} needed)`;
  }
  return null;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function decodedLength(value: unknown): number | null {
  return typeof value === "string" ? decodeBase64Url(value)?.byteLength ?? null : null;
}

/** The bit length of a big-endian unsigned integer. */
function bitLength(bytes: Uint8Array): number {
  let index = 0;
  while (index < bytes.length && bytes[index] === 0) index++;
  if (index === bytes.length) return 0;
  return (bytes.length - index - 1) * 8 + (32 - Math.clz32(bytes[index]));
}
