/**
 * refresh — `POST { refresh_token }` (verify_jwt = false: the refresh token is the credential).
 * Rotates the refresh token and answers a new token response plus `person`. A token presented
 * again within 10 s of its rotation gets the same successor; later, it is REFRESH_TOKEN_REUSED and
 * the whole session is revoked.
 *
 * `POST` with no body and `Authorization: Bearer <access token>` answers a fresh access token for
 * the same live session (refresh before expiry), without a refresh token.
 */
import { z } from "zod";
import { type Deps, platformServices } from "../_shared/deps.ts";
import {
  defineHandler,
  type Handler,
  HttpError,
  json,
  maxJsonBodyBytes,
  parseJson,
  readBody,
  requireJsonContentType,
  validate,
} from "../_shared/http.ts";
import {
  liveSession,
  requireAccessToken,
  rotateRefreshToken,
  sessionRevoked,
  tokenResponse,
} from "../_shared/sessions.ts";

const refreshBody = z.object({ refresh_token: z.string().min(1).max(512) });
const noStore = { "cache-control": "no-store" };

export function createHandler(deps: Deps): Handler {
  const platform = platformServices(deps);
  return defineHandler({ name: "refresh", methods: ["POST"], cors: true }, async (req) => {
    const { sql, tokens } = platform();
    const now = deps.now();
    const body = await readBody(req, maxJsonBodyBytes);

    if (body.length === 0 && req.headers.has("authorization")) {
      const claims = await requireAccessToken(req, tokens, now);
      const session = await liveSession(sql, claims.session_id, claims.sub, now);
      if (!session) throw sessionRevoked();
      return json(
        await tokenResponse(tokens, session, now, { withRefreshToken: false }),
        200,
        noStore,
      );
    }

    requireJsonContentType(req);
    const { refresh_token } = validate(refreshBody, parseJson(body));
    const parts = await tokens.refresh.open(refresh_token);
    if (!parts) throw invalidRefreshToken();
    const result = await rotateRefreshToken(sql, parts, now);
    switch (result.status) {
      case "rotated":
      case "replayed":
        return json(await tokenResponse(tokens, result, now), 200, noStore);
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
  });
}

function invalidRefreshToken(): HttpError {
  return new HttpError(401, "INVALID_REFRESH_TOKEN", "Refresh token is invalid");
}
