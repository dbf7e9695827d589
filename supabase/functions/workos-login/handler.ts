/**
 * workos-login — `GET ?return_to=…[&redirect=true]`, called by a web console or mobile app to start
 * a WorkOS AuthKit sign-in (mode `none`: nobody is signed in yet, and nothing here needs a caller's
 * identity). The AuthKit authorize URL (`provider=authkit`, PKCE S256) carries a sealed state that
 * binds return_to, a single-use nonce and the PKCE verifier for 10 minutes. Two modes:
 *
 * - `redirect=true` (browsers; SPEC §13.12): 302 to AuthKit, with a cookie (HttpOnly,
 *   SameSite=Lax, Secure on https, Path = WORKOS_REDIRECT_URI's path, 10 minutes) whose hash the
 *   state seals, so the callback accepts the state only in the browser that started the sign-in
 *   (no login CSRF). The callback must be on the host that serves this function.
 * - without it (or `redirect=false`): 200 `{ url }` and no cookie, for apps that cannot keep one;
 *   such a state is not bound to a browser.
 *
 * 400 INVALID_RETURN_TO when return_to is neither a path on SITE_URL nor under one of
 * ALLOWED_REDIRECT_URLS (see _shared/redirects.ts); 400 VALIDATION_FAILED for another `redirect`;
 * 503 WORKOS_NOT_CONFIGURED naming the variable when WorkOS is not set up. Writes nothing and calls
 * nobody: the state (and the cookie) carry everything.
 */
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json } from "../_shared/http.ts";
import { createPkcePair } from "../_shared/pkce.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { resolveReturnTo } from "../_shared/redirects.ts";
import { notConfigured } from "../_shared/services.ts";
import { bindingCookie, bindingSetCookie, createBrowserBinding } from "../_shared/state.ts";

// The answer carries a one-time state: no cache may keep it.
const noStore = { "cache-control": "no-store" };

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "workos-login",
    methods: ["GET"],
    cors: true,
    auth: "none",
    requires: ["workos"],
  }, async (req, { workos, now }) => {
    const params = new URL(req.url).searchParams;
    const values = params.getAll("return_to");
    // Two return_to parameters could be read differently by different layers: refuse both.
    const returnTo = values.length > 1
      ? { ok: false, problem: "invalid" } as const
      : resolveReturnTo(values[0], workos.config);
    if (!returnTo.ok) {
      if (returnTo.problem === "needs_site_url") {
        throw notConfigured(
          "workos",
          "SITE_URL is missing (a relative return_to resolves against it)",
        );
      }
      throw new HttpError(
        400,
        "INVALID_RETURN_TO",
        "return_to must be a path starting with a single / or a URL under ALLOWED_REDIRECT_URLS",
      );
    }
    const redirectValues = params.getAll("redirect");
    if (redirectValues.length > 1 || !["true", "false", undefined].includes(redirectValues[0])) {
      throw new HttpError(400, "VALIDATION_FAILED", "redirect must be true or false");
    }

    const { codeVerifier, codeChallenge } = await createPkcePair();
    if (redirectValues[0] !== "true") {
      const state = await workos.states.seal({ returnTo: returnTo.url, codeVerifier }, now);
      return json({ url: workos.auth.authorizationUrl({ state, codeChallenge }) }, 200, noStore);
    }

    const cookie = bindingCookie(workos.config.redirectUri);
    if (!cookie) {
      throw notConfigured("workos", "WORKOS_REDIRECT_URI is malformed: its path has a ;");
    }
    const binding = await createBrowserBinding();
    const state = await workos.states.seal(
      { returnTo: returnTo.url, codeVerifier, browserBinding: binding.hash },
      now,
    );
    return new Response(null, {
      status: 302,
      headers: {
        location: workos.auth.authorizationUrl({ state, codeChallenge }),
        "set-cookie": bindingSetCookie(cookie, binding.cookieValue),
        ...noStore,
      },
    });
  });
}
