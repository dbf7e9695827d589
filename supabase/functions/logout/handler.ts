/**
 * logout — `POST` with `Authorization: Bearer <platform access token>` (verify_jwt = true).
 * Revokes the platform session, so its refresh tokens stop working at once, and answers
 * `{ logout_url }` (WorkOS' logout URL for WorkOS sessions, else null).
 */
import { type Deps, platformServices } from "../_shared/deps.ts";
import { defineHandler, type Handler, json } from "../_shared/http.ts";
import { requireAccessToken, revokeSession, sessionRevoked } from "../_shared/sessions.ts";

export function createHandler(deps: Deps): Handler {
  const platform = platformServices(deps);
  return defineHandler({ name: "logout", methods: ["POST"], cors: true }, async (req) => {
    const { sql, tokens } = platform();
    const now = deps.now();
    const claims = await requireAccessToken(req, tokens, now);
    const revoked = await revokeSession(sql, claims.session_id, claims.sub, now);
    if (!revoked) throw sessionRevoked();
    return json({ logout_url: null });
  });
}
