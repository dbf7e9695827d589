/**
 * logout — `POST` with `Authorization: Bearer <platform access token>` (mode `user`).
 * Revokes the platform session, so its refresh tokens stop working at once, and answers
 * `{ logout_url }`: for a session opened by WorkOS (and WorkOS configured), the WorkOS session is
 * revoked too and `logout_url` is WorkOS's logout URL, which the client opens so AuthKit forgets
 * the browser and sends it back to SITE_URL; otherwise null.
 *
 * WorkOS failing to revoke does not fail the logout (the platform session is already revoked and
 * the logout URL ends the WorkOS session as well); it is logged.
 */
import { sessionRevoked } from "../_shared/auth.ts";
import type { Deps } from "../_shared/deps.ts";
import { type Handler, json } from "../_shared/http.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { revokeSession } from "../_shared/session_store.ts";

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "logout",
    methods: ["POST"],
    cors: true,
    auth: "user",
    requires: ["core"],
    optional: ["workos"],
  }, async (_req, { core, workos, claims, now, log }) => {
    const session = { sessionId: claims.session_id, personId: claims.sub };
    const revoked = await revokeSession(core.sql, session, now);
    if (!revoked) throw sessionRevoked();

    const workosSessionId = revoked.workos_session_id;
    if (!workosSessionId || !workos) return json({ logout_url: null });
    if (!await workos.auth.revokeSession(workosSessionId)) {
      log.warn("workos_revoke_failed", { session_id: claims.session_id });
    }
    // Back to SITE_URL after WorkOS's logout page (it must be among the dashboard's allowed logout
    // redirects); without SITE_URL, WorkOS uses the dashboard's default.
    return json({ logout_url: workos.auth.logoutUrl(workosSessionId, workos.config.siteUrl) });
  });
}
