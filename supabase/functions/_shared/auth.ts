/**
 * Who may call a function (SPEC §9): each function declares one mode, and the pipeline enforces
 * it before the handler runs.
 *
 * - `none`: the function authenticates the request itself (a webhook signature, a refresh token,
 *   a sealed state) or needs no caller at all.
 * - `anon-key`: the platform's `verify_jwt` gate checks the project's anon key before the request
 *   arrives (supabase/config.toml).
 * - `user`: a platform access token in `Authorization: Bearer`; its claims reach the handler.
 */
import { bearerToken, HttpError } from "./http.ts";
import type { PlatformClaims } from "./jwt.ts";
import type { SessionTokens } from "./tokens.ts";

export type AuthMode = "none" | "anon-key" | "user";

/** What the pipeline hands the handler for each mode. */
export interface Caller {
  none: unknown;
  "anon-key": unknown;
  user: { claims: PlatformClaims };
}

/** The claims of the request's platform access token; 401 when it is missing or not valid. */
export async function authenticateUser(
  req: Request,
  tokens: SessionTokens,
  now: Date,
): Promise<PlatformClaims> {
  const token = bearerToken(req);
  if (!token) {
    throw new HttpError(401, "UNAUTHORIZED", "Authorization: Bearer <access token> is required");
  }
  const result = await tokens.access.verify(token, now);
  if (result.ok) return result.claims;
  throw result.reason === "expired"
    ? new HttpError(401, "TOKEN_EXPIRED", "Access token has expired")
    : new HttpError(401, "UNAUTHORIZED", "Access token is invalid");
}

/** 401 for a session that was revoked (logout, reuse) or expired. */
export function sessionRevoked(): HttpError {
  return new HttpError(401, "SESSION_REVOKED", "Session has been revoked or has expired");
}
