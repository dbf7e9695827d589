/**
 * refresh — `POST { refresh_token }` (mode `none`: the refresh token is the credential).
 * Rotates the refresh token and answers a new token response plus `person`. A token presented
 * again within 10 s of its rotation gets the same successor; later, it is REFRESH_TOKEN_REUSED and
 * the whole session is revoked.
 *
 * `POST` with no body and `Authorization: Bearer <access token>` answers a fresh access token for
 * the same live session (refresh before expiry), without a refresh token. Only a token of the
 * session's current refresh generation is renewed, and not later than 24 h after the session's
 * last sign-in or rotation, so a leaked access token cannot be kept alive for ever.
 */
import { authenticateUser, sessionRevoked } from "../_shared/auth.ts";
import type { Deps } from "../_shared/deps.ts";
import {
  type Handler,
  HttpError,
  json,
  maxJsonBodyBytes,
  parseJson,
  readBody,
  requireJsonContentType,
} from "../_shared/http.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { liveSession, rotateRefreshToken } from "../_shared/session_store.ts";
import { tokenResponse } from "../_shared/token_response.ts";
import { lazySchemas, validate } from "../_shared/validate.ts";

/** The request body, built on first use; also read by the API document (local/openapi.ts). */
export const requestSchemas = lazySchemas(({ z }) => ({
  refreshBody: z.object({ refresh_token: z.string().min(1).max(512) }),
}));
const noStore = { "cache-control": "no-store" };

export function createHandler(deps: Deps): Handler {
  return defineHandler(
    deps,
    { name: "refresh", methods: ["POST"], cors: true, auth: "none", requires: ["core"] },
    async (req, { core, now }) => {
      const body = await readBody(req, maxJsonBodyBytes);

      if (body.length === 0 && req.headers.has("authorization")) {
        const claims = await authenticateUser(req, core, now);
        const live = await liveSession(core.sql, {
          sessionId: claims.session_id,
          personId: claims.sub,
          generation: claims.session_generation ?? 0,
        }, now);
        if (!live) throw sessionRevoked();
        if ("renewable" in live) {
          throw new HttpError(
            401,
            "UNAUTHORIZED",
            "This access token can no longer be renewed; refresh with the refresh token",
          );
        }
        return json(
          await tokenResponse(core.tokens, live, now, { withRefreshToken: false }),
          200,
          noStore,
        );
      }

      requireJsonContentType(req);
      const { refreshBody } = await requestSchemas();
      const { refresh_token } = validate(refreshBody, parseJson(body));
      const parts = await core.tokens.refresh.open(refresh_token);
      if (!parts) throw invalidRefreshToken();
      const result = await rotateRefreshToken(core.sql, parts, now);
      switch (result.status) {
        case "rotated":
        case "replayed":
          return json(await tokenResponse(core.tokens, result, now), 200, noStore);
        case "reused":
          throw new HttpError(
            401,
            "REFRESH_TOKEN_REUSED",
            "Refresh token was already used; the session has been revoked",
          );
        case "revoked":
          throw sessionRevoked();
        case "unknown":
          throw invalidRefreshToken();
      }
    },
  );
}

function invalidRefreshToken(): HttpError {
  return new HttpError(401, "INVALID_REFRESH_TOKEN", "Refresh token is invalid");
}
