/**
 * Supabase's publishable and secret API keys (SPEC §9), as Supabase injects them into every
 * deployed function: `SUPABASE_PUBLISHABLE_KEYS` / `SUPABASE_SECRET_KEYS`, JSON objects of named
 * keys (`{"default":"sb_publishable_…"}`), and the singular `SUPABASE_PUBLISHABLE_KEY` /
 * `SUPABASE_SECRET_KEY`. A presented key is compared with every configured one in constant time.
 */
import { timingSafeEqual } from "./signatures.ts";

/** Every configured key of each kind, without duplicates. */
export interface ApiKeys {
  publishable: string[];
  secret: string[];
}

/** The configured keys, or which variable is malformed (never its value). */
export type ParsedApiKeys =
  | { ok: true; keys: ApiKeys }
  | { ok: false; variable: string; message: string };

/** Tells which kind of key, if any, a request presents. */
export interface ApiKeyMatcher {
  /**
   * `"publishable"`, `"secret"` or null: the presented key is compared against every configured
   * key in constant time (both sides hashed to 32 bytes, then compared), with no early exit that
   * would reveal which key, or how many, matched.
   */
  match(presented: string): Promise<"publishable" | "secret" | null>;
}

const variables = {
  publishable: { named: "SUPABASE_PUBLISHABLE_KEYS", single: "SUPABASE_PUBLISHABLE_KEY" },
  secret: { named: "SUPABASE_SECRET_KEYS", single: "SUPABASE_SECRET_KEY" },
} as const;

const encoder = new TextEncoder();

/**
 * Reads the four key variables from a plain env record (empty counts as unset). The named and the
 * singular form may both be set (Supabase injects both); their keys are merged, duplicates
 * removed. A named variable that is not a JSON object of strings is an error naming the variable,
 * never quoting its value.
 *
 * @example
 * ```ts
 * const parsed = parseApiKeys({ SUPABASE_PUBLISHABLE_KEYS: '{"default":"sb_publishable_x"}' });
 * // { ok: true, keys: { publishable: ["sb_publishable_x"], secret: [] } }
 * ```
 */
export function parseApiKeys(env: Record<string, string | undefined>): ParsedApiKeys {
  const keys: ApiKeys = { publishable: [], secret: [] };
  for (const kind of ["publishable", "secret"] as const) {
    const { named, single } = variables[kind];
    const found = new Set<string>();
    const namedText = env[named]?.trim();
    if (namedText) {
      const values = namedKeyValues(namedText);
      if (!values) {
        return {
          ok: false,
          variable: named,
          message: `${named} is malformed: must be a JSON object of named keys (strings)`,
        };
      }
      for (const value of values) found.add(value);
    }
    const singleValue = env[single]?.trim();
    if (singleValue) found.add(singleValue);
    keys[kind] = [...found];
  }
  return { ok: true, keys };
}

/** The non-empty values of a JSON object of named keys, or null when it is not one. */
function namedKeyValues(text: string): string[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The SyntaxError's message quotes the input: never passed on.
    return null;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
  const values = Object.values(parsed);
  if (values.some((value) => typeof value !== "string")) return null;
  // An empty key is no key: it must never match an empty credential.
  return (values as string[]).map((value) => value.trim()).filter(Boolean);
}

/**
 * A matcher over the configured keys; their SHA-256 digests are computed once, here.
 *
 * A key listed as both publishable and secret counts as publishable only: a key that may be
 * published never grants more.
 *
 * @example
 * ```ts
 * const matcher = createApiKeyMatcher(parsed.keys);
 * const kind = await matcher.match(presentedApiKey(req) ?? "");
 * if (kind === null) throw new HttpError(401, "INVALID_API_KEY", "API key is missing or invalid");
 * ```
 */
export function createApiKeyMatcher(keys: ApiKeys): ApiKeyMatcher {
  const digests = Promise.all([
    Promise.all(keys.publishable.filter(Boolean).map(sha256)),
    Promise.all(keys.secret.filter(Boolean).map(sha256)),
  ]);

  return {
    async match(presented) {
      // An empty credential is never a key; saying so early reveals nothing about the keys.
      if (typeof presented !== "string" || presented === "") return null;
      const [publishable, secret] = await digests;
      const digest = await sha256(presented);
      // Every configured key is compared, whatever matched before: comparing equal-length digests
      // in constant time means the timing depends only on how many keys are configured, so an
      // attacker learns neither the bytes of a key nor which key a guess came close to.
      let isPublishable = 0;
      let isSecret = 0;
      for (const candidate of publishable) {
        isPublishable |= Number(timingSafeEqual(digest, candidate));
      }
      for (const candidate of secret) isSecret |= Number(timingSafeEqual(digest, candidate));
      if (isPublishable) return "publishable";
      return isSecret ? "secret" : null;
    },
  };
}

/**
 * The credential a request presents: the `apikey` header, else the token of
 * `Authorization: Bearer <x>`; null when neither holds one.
 *
 * @example
 * ```ts
 * presentedApiKey(new Request(url, { headers: { apikey: "sb_publishable_x" } })); // "sb_publishable_x"
 * ```
 */
export function presentedApiKey(req: Request): string | null {
  const apikey = req.headers.get("apikey")?.trim();
  if (apikey) return apikey;
  const authorization = req.headers.get("authorization") ?? "";
  // The scheme is case-insensitive (RFC 9110 §11.1); the token is whatever follows it.
  const match = /^bearer\s+(\S+)\s*$/i.exec(authorization);
  return match ? match[1] : null;
}

async function sha256(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(value)));
}
