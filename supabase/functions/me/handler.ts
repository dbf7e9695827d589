/**
 * me — `GET` with `Authorization: Bearer <platform access token>` (mode `user`).
 * Answers `{ person, workspaces: [{ id, name, role }] }` in one SQL round trip; 401 when the token
 * is invalid or expired, or its session was revoked.
 */
import { sessionRevoked } from "../_shared/auth.ts";
import type { Deps } from "../_shared/deps.ts";
import { type Handler, json } from "../_shared/http.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { readMe } from "../_shared/session_store.ts";

export function createHandler(deps: Deps): Handler {
  return defineHandler(
    deps,
    { name: "me", methods: ["GET"], cors: true, auth: "user", requires: ["core"] },
    async (_req, { core, claims, now }) => {
      const me = await readMe(
        core.sql,
        { sessionId: claims.session_id, personId: claims.sub },
        now,
      );
      if (!me) throw sessionRevoked();
      return json(me);
    },
  );
}
