/**
 * logout — `POST` with `Authorization: Bearer <platform access token>` (verify_jwt = true).
 * Revokes the platform session, so its refresh tokens stop working at once, and answers
 * `{ logout_url }`: for a session opened by WorkOS (and WorkOS configured), the WorkOS session is
 * revoked too and `logout_url` is WorkOS's logout URL, which the client opens so AuthKit forgets
 * the browser and sends it back to SITE_URL; otherwise null.
 *
 * WorkOS failing to revoke does not fail the logout (the platform session is already revoked and
 * the logout URL ends the WorkOS session as well); it is logged.
 */
import { type Deps, platformServices } from "../_shared/deps.ts";
import { defineHandler, type Handler, json } from "../_shared/http.ts";
import { requireAccessToken, revokeSession, sessionRevoked } from "../_shared/sessions.ts";
import { createWorkosAuth, type WorkosAuthOptions } from "../_shared/workos.ts";

export interface LogoutOptions {
  /** WorkOS client tuning (tests pass `maxRetries: 0` and short timeouts). */
  workos?: WorkosAuthOptions;
}

export function createHandler(deps: Deps, options: LogoutOptions = {}): Handler {
  const platform = platformServices(deps);
  const workosConfig = deps.config.workos.ok ? deps.config.workos.value : null;
  const workos = workosConfig ? createWorkosAuth(workosConfig, options.workos) : null;

  return defineHandler({ name: "logout", methods: ["POST"], cors: true }, async (req, { log }) => {
    const { sql, tokens } = platform();
    const now = deps.now();
    const claims = await requireAccessToken(req, tokens, now);
    const revoked = await revokeSession(sql, claims.session_id, claims.sub, now);
    if (!revoked) throw sessionRevoked();

    const workosSessionId = revoked.workos_session_id;
    if (!workosSessionId || !workos) return json({ logout_url: null });
    if (!await workos.revokeSession(workosSessionId)) {
      log.warn("workos_revoke_failed", { session_id: claims.session_id });
    }
    // Back to SITE_URL after WorkOS's logout page (it must be among the dashboard's allowed logout
    // redirects); without SITE_URL, WorkOS uses the dashboard's default.
    return json({ logout_url: workos.logoutUrl(workosSessionId, workosConfig?.siteUrl) });
  });
}
