/**
 * me — `GET` with `Authorization: Bearer <platform access token>` (verify_jwt = true).
 * Answers `{ person, workspaces: [{ id, name, role }] }` in one SQL round trip; 401 when the token
 * is invalid or expired, or its session was revoked.
 */
import { callFunction } from "../_shared/db.ts";
import { type Deps, platformServices } from "../_shared/deps.ts";
import { defineHandler, type Handler, json } from "../_shared/http.ts";
import { requireAccessToken, sessionRevoked } from "../_shared/sessions.ts";

export function createHandler(deps: Deps): Handler {
  const platform = platformServices(deps);
  return defineHandler({ name: "me", methods: ["GET"], cors: true }, async (req) => {
    const { sql, tokens } = platform();
    const now = deps.now();
    const claims = await requireAccessToken(req, tokens, now);
    const me = await callFunction(sql, "identity.me", claims.session_id, claims.sub, now);
    if (!me) throw sessionRevoked();
    return json(me);
  });
}
