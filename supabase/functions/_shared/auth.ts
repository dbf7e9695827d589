/**
 * Who may call a function (SPEC §9). Each function declares one mode, and the pipeline enforces
 * it before the handler runs; every function has `verify_jwt = false` and checks its caller here.
 *
 * - `none`: the function authenticates the request itself (a webhook signature, a refresh token,
 *   a sealed state) or needs no caller at all.
 * - `publishable`: the `apikey` header (or `Authorization: Bearer`) holds one of the project's
 *   publishable keys, a secret key, or a legacy anon / service_role JWT (while JWT_SECRET is set).
 * - `user`: a platform access token in `Authorization: Bearer`; its claims reach the handler.
 * - `secret`: a secret key (`sb_secret_…`) or the legacy service_role JWT: server-to-server calls.
 * - `user-or-secret`: a secret key when one is presented, else a platform access token.
 *
 * Keys are compared in constant time (api_keys.ts) and never logged.
 */
import { presentedApiKey } from "./api_keys.ts";
import { bearerToken, HttpError } from "./http.ts";
import type { PlatformClaims } from "./jwt.ts";
import type { CoreServices } from "./services.ts";

export type AuthMode = "none" | "publishable" | "user" | "secret" | "user-or-secret";

/** Who called, as the handler sees it. */
export type AuthenticatedCaller = { kind: "user"; claims: PlatformClaims } | { kind: "secret" };

/** What the pipeline hands the handler for each mode. */
export interface Caller {
  none: unknown;
  publishable: unknown;
  user: { claims: PlatformClaims };
  secret: unknown;
  "user-or-secret": { caller: AuthenticatedCaller };
}

/** Checks the request's caller for `mode`; what the handler receives, or 401. */
export async function authenticate(
  req: Request,
  mode: AuthMode,
  core: CoreServices,
  now: Date,
): Promise<Record<string, unknown>> {
  switch (mode) {
    case "none":
      return {};
    case "publishable":
      await requireApiKey(req, core, "publishable", now);
      return {};
    case "secret":
      await requireApiKey(req, core, "secret", now);
      return {};
    case "user":
      return { claims: await authenticateUser(req, core, now) };
    case "user-or-secret": {
      const presented = presentedApiKey(req);
      if (presented && await apiKeyKind(presented, core, now) === "secret") {
        return { caller: { kind: "secret" } };
      }
      return { caller: { kind: "user", claims: await authenticateUser(req, core, now) } };
    }
  }
}

/** The claims of the request's platform access token; 401 when it is missing or not valid. */
export async function authenticateUser(
  req: Request,
  core: CoreServices,
  now: Date,
): Promise<PlatformClaims> {
  const token = bearerToken(req);
  if (!token) {
    throw new HttpError(401, "UNAUTHORIZED", "Authorization: Bearer <access token> is required");
  }
  const result = await core.tokens.access.verify(token, now);
  if (result.ok) return result.claims;
  throw result.reason === "expired"
    ? new HttpError(401, "TOKEN_EXPIRED", "Access token has expired")
    : new HttpError(401, "UNAUTHORIZED", "Access token is invalid");
}

/** 401 for a session that was revoked (logout, reuse) or expired. */
export function sessionRevoked(): HttpError {
  return new HttpError(401, "SESSION_REVOKED", "Session has been revoked or has expired");
}

async function requireApiKey(
  req: Request,
  core: CoreServices,
  needed: "publishable" | "secret",
  now: Date,
): Promise<void> {
  const presented = presentedApiKey(req);
  const kind = presented ? await apiKeyKind(presented, core, now) : null;
  // A secret key may do whatever a publishable one may; never the other way round.
  if (kind === "secret" || (kind === "publishable" && needed === "publishable")) return;
  throw new HttpError(
    401,
    "INVALID_API_KEY",
    needed === "secret"
      ? "A secret API key is required (apikey or Authorization: Bearer)"
      : "A valid API key is required (apikey or Authorization: Bearer)",
  );
}

/** Legacy API keys are JWTs of these roles, HS256 with the project's JWT secret. */
const legacyRoles: Record<string, "publishable" | "secret"> = {
  anon: "publishable",
  service_role: "secret",
};

/** What a presented key is: a configured key, a legacy anon / service_role JWT, or nothing. */
async function apiKeyKind(
  presented: string,
  core: CoreServices,
  now: Date,
): Promise<"publishable" | "secret" | null> {
  const kind = await core.apiKeys.match(presented);
  if (kind || !core.config.jwtSecret || presented.split(".").length !== 3) return kind;
  const signed = await core.tokens.keyring.verify(presented);
  // Only HS256 without `kid` is the legacy secret's: tokens of the signing keys are not API keys.
  if (!signed || signed.header.kid !== undefined) return null;
  try {
    const claims = JSON.parse(new TextDecoder().decode(signed.payload));
    const role = typeof claims?.role === "string" ? claims.role : "";
    const unexpired = Number.isSafeInteger(claims.exp) && claims.exp > now.getTime() / 1000;
    return Object.hasOwn(legacyRoles, role) && unexpired ? legacyRoles[role] : null;
  } catch {
    return null;
  }
}
