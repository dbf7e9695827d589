/**
 * workos-login — `GET ?return_to=…`, called by a web console or mobile app to start a WorkOS
 * AuthKit sign-in (mode `none`: nobody is signed in yet, and nothing here needs a caller's
 * identity). Answers 200 `{ url }`: the AuthKit authorize URL (`provider=authkit`, PKCE S256) with a
 * sealed state that binds return_to, a single-use nonce and the PKCE verifier for 10 minutes.
 *
 * 400 INVALID_RETURN_TO when return_to is neither a path on SITE_URL nor under one of
 * ALLOWED_REDIRECT_URLS (see _shared/redirects.ts); 503 WORKOS_NOT_CONFIGURED naming the variable
 * when WorkOS is not set up. Writes nothing and calls nobody: the state carries everything.
 */
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json } from "../_shared/http.ts";
import { createPkcePair } from "../_shared/pkce.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { resolveReturnTo } from "../_shared/redirects.ts";
import { notConfigured } from "../_shared/services.ts";

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
    const values = new URL(req.url).searchParams.getAll("return_to");
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

    const { codeVerifier, codeChallenge } = await createPkcePair();
    const state = await workos.states.seal({ returnTo: returnTo.url, codeVerifier }, now);
    return json({ url: workos.auth.authorizationUrl({ state, codeChallenge }) }, 200, noStore);
  });
}
