/**
 * Where a sign-in may send the browser back to (`return_to`, SPEC §6 workos-login): a path on
 * SITE_URL, or an absolute URL under one of ALLOWED_REDIRECT_URLS. Everything else is refused, so
 * the tokens that workos-callback puts in the URL fragment only ever reach our own clients.
 */

/** Where return_to values may point. */
export interface RedirectPolicy {
  /** `SITE_URL`: relative paths resolve against its origin; URLs under it are allowed too. */
  siteUrl?: string;
  /** `ALLOWED_REDIRECT_URLS`: absolute URL prefixes (custom schemes such as `myapp://auth` too). */
  allowedRedirectUrls: readonly string[];
}

/** Why a return_to was refused, for the handler's message (never echoes the value). */
export type ReturnToProblem = "invalid" | "needs_site_url";

export type ReturnToResult =
  | { ok: true; url: string }
  | { ok: false; problem: ReturnToProblem };

/** Longest return_to accepted, in characters; the sealed state carries it. */
export const maxReturnToLength = 2048;

/** The return_to used when the client sends none. */
export const defaultReturnTo = "/";

// Whitespace, control and format characters (URL parsers silently drop some of them, which is how
// `/\t/evil.com` becomes `//evil.com`), and backslashes (browsers read `\` as `/`).
const forbiddenCharacters = /[\s\p{Cc}\p{Cf}\\]/u;
// Percent-encoded `/`, `\`, `.`, `%` and control characters before the query: they only serve to
// smuggle a different path or host past a check that reads the value before it is decoded.
const encodedTricks = /%(2f|5c|2e|25|[01][0-9a-f]|7f)/i;
// Never a redirect target, even if someone lists one in ALLOWED_REDIRECT_URLS.
const scriptSchemes = new Set(["javascript:", "data:", "vbscript:", "file:", "blob:", "about:"]);

/**
 * Resolves a client's `return_to` to the absolute URL to redirect to, or says why it is refused.
 *
 * - absent or empty: `/`;
 * - a path with a single leading `/` (`/dash?x=1`): resolved against SITE_URL's origin;
 * - an absolute URL: accepted when it is under SITE_URL or one of ALLOWED_REDIRECT_URLS: the same
 *   scheme, host and port exactly, no user info, and a path equal to the prefix's path or below it
 *   at a `/` boundary (`https://console.test/app` admits `/app` and `/app/x`, not `/apple`);
 * - never: `//host`, backslashes, whitespace or control characters, percent-encoded `/ \ . %` or
 *   control characters in the path, a `..` segment, a resolved path that starts with `//`
 *   (`/..//evil.com` resolves to `https://site//evil.com`, which a client that takes the path
 *   as a redirect target reads as the host `evil.com`; SPEC §13.9), a fragment (the callback puts
 *   the tokens there), script schemes, or more than 2048 characters.
 *
 * @example
 * resolveReturnTo("/dash?x=1", { siteUrl: "https://app.test", allowedRedirectUrls: [] })
 * // { ok: true, url: "https://app.test/dash?x=1" }
 */
export function resolveReturnTo(
  value: string | null | undefined,
  policy: RedirectPolicy,
): ReturnToResult {
  const invalid = { ok: false, problem: "invalid" } as const;
  const raw = value || defaultReturnTo;
  if (raw.length > maxReturnToLength || forbiddenCharacters.test(raw) || raw.includes("#")) {
    return invalid;
  }
  const beforeQuery = raw.split("?", 1)[0];
  if (encodedTricks.test(beforeQuery) || hasDotDotSegment(beforeQuery)) return invalid;

  if (raw.startsWith("/")) {
    if (raw.startsWith("//")) return invalid; // scheme-relative: another host
    if (!policy.siteUrl) return { ok: false, problem: "needs_site_url" };
    const site = new URL(policy.siteUrl);
    const url = new URL(raw, site.origin);
    // Belt and braces: a path can only ever land on the site itself.
    return url.origin === site.origin && isSafePath(url) ? { ok: true, url: url.href } : invalid;
  }

  if (!URL.canParse(raw)) return invalid;
  const url = new URL(raw);
  if (scriptSchemes.has(url.protocol) || url.username || url.password || !isSafePath(url)) {
    return invalid;
  }
  const prefixes = policy.siteUrl
    ? [policy.siteUrl, ...policy.allowedRedirectUrls]
    : policy.allowedRedirectUrls;
  for (const prefix of prefixes) {
    if (URL.canParse(prefix) && isUnder(url, new URL(prefix))) return { ok: true, url: url.href };
  }
  return invalid;
}

/** `..` as a whole segment of a path (the URL parser resolves it, so it only serves to escape). */
function hasDotDotSegment(path: string): boolean {
  return path.split("/").includes("..");
}

/**
 * Whether the resolved path can be handed on as a path: it neither starts with `//` (a
 * scheme-relative URL to whoever reads it as a link) nor keeps a `..` segment (opaque paths of
 * custom schemes are not resolved by the parser).
 */
function isSafePath(url: URL): boolean {
  return !url.pathname.startsWith("//") && !hasDotDotSegment(url.pathname);
}

/** Whether `url` is `prefix` or below it: scheme, host and port exact, path at a `/` boundary. */
function isUnder(url: URL, prefix: URL): boolean {
  if (url.protocol !== prefix.protocol || url.port !== prefix.port) return false;
  // Special schemes (http, https) come lower-cased from the parser; custom schemes keep the case
  // they were written in, and their hosts are as case-insensitive as any other.
  if (url.hostname.toLowerCase() !== prefix.hostname.toLowerCase()) return false;
  const base = prefix.pathname;
  if (base === "" || base === "/") return url.pathname === "" || url.pathname.startsWith("/");
  if (url.pathname === base) return true;
  return url.pathname.startsWith(base.endsWith("/") ? base : `${base}/`);
}
