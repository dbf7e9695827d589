/**
 * Platform sessions: open (after a provider sign-in), rotate refresh tokens, revoke; and the token
 * response every sign-in path answers with (SPEC §5, §6).
 *
 * Refresh tokens are never stored. A refresh token is `base64url(session id ‖ counter ‖ HMAC)`,
 * the HMAC under a key derived from the JWT secret, so it is unguessable (256-bit MAC) and checked
 * without the database; the session row keeps only the counter of the one live token. Presenting
 * the previous token within the grace period gets the same successor back (a client's concurrent
 * refresh); an older one revokes the session (SPEC §6 refresh).
 */
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import type { CoreConfig } from "./config.ts";
import { callFunction, type Sql } from "./db.ts";
import { bearerToken, HttpError } from "./http.ts";
import {
  type AccessTokens,
  createAccessTokens,
  type PlatformClaims,
  type TokenSubject,
} from "./jwt.ts";
import type { IdentityError, Person, ProviderIdentity } from "./person.ts";

/** How long a session lives without a refresh. */
export const sessionTtlSeconds = 60 * 60 * 24 * 30; // 30 days
/** How long after a rotation the previous refresh token still answers with the same successor. */
export const refreshReuseGraceSeconds = 10;

/** What identity.session_payload() returns: enough to mint tokens and answer the client. */
export interface SessionPayload {
  session_id: string;
  refresh_counter: number;
  person: Person;
  claims: {
    email: string;
    phone: string;
    provider: "stytch" | "workos";
    providers: string[];
    amr_method: "otp" | "sso/oauth";
    amr_timestamp: number;
    workspace_id: string | null;
    workspace_role: string | null;
  };
}

export interface TokenResponse {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
  expires_at: number;
  refresh_token?: string;
  person: Person;
}

export interface RefreshTokenParts {
  sessionId: string;
  counter: number;
}

export interface RefreshTokens {
  issue(parts: RefreshTokenParts): Promise<string>;
  /** The session and counter of a genuine token, or null for anything else. */
  open(token: string): Promise<RefreshTokenParts | null>;
}

export interface SessionTokens {
  access: AccessTokens;
  refresh: RefreshTokens;
}

/** Access and refresh token codecs for a deployment; keys are derived and imported once. */
export function createSessionTokens(core: CoreConfig): SessionTokens {
  return { access: createAccessTokens(core), refresh: createRefreshTokens(core.jwtSecret) };
}

const refreshKeyLabel = "platform-auth refresh token key v1";
const uuidBytes = 16;
const counterBytes = 8;
const macBytes = 32;
const refreshTokenBytes = uuidBytes + counterBytes + macBytes;

/** Refresh tokens MACed under HMAC-SHA256(JWT secret, label): a key used for nothing else. */
export function createRefreshTokens(jwtSecret: string): RefreshTokens {
  const key = (async () => {
    const secretKey = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(jwtSecret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const derived = await crypto.subtle.sign(
      "HMAC",
      secretKey,
      new TextEncoder().encode(refreshKeyLabel),
    );
    return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
  })();

  return {
    async issue({ sessionId, counter }) {
      const body = new Uint8Array(uuidBytes + counterBytes);
      body.set(uuidToBytes(sessionId));
      new DataView(body.buffer).setBigUint64(uuidBytes, BigInt(counter));
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await key, body));
      const token = new Uint8Array(refreshTokenBytes);
      token.set(body);
      token.set(mac, body.length);
      return encodeBase64Url(token);
    },

    async open(token) {
      const bytes = decodeBase64Url(token);
      if (!bytes || bytes.length !== refreshTokenBytes) return null;
      const body = bytes.subarray(0, uuidBytes + counterBytes);
      const mac = bytes.subarray(uuidBytes + counterBytes);
      // crypto.subtle.verify compares the MAC in constant time.
      if (!await crypto.subtle.verify("HMAC", await key, mac, body)) return null;
      const counter = new DataView(body.buffer, body.byteOffset).getBigUint64(uuidBytes);
      return { sessionId: bytesToUuid(body.subarray(0, uuidBytes)), counter: Number(counter) };
    },
  };
}

/** The claims of the request's platform access token; 401 when it is missing or not valid. */
export async function requireAccessToken(
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

export type SignInResult =
  | (SessionPayload & { ok: true; is_new_user: boolean })
  | { ok: false; error: IdentityError };

/**
 * After a provider answered: upsert the person and open a session, in one round trip. In
 * `invite` signup mode a new person needs an open invitation (else SIGNUP_DISABLED).
 */
export async function signIn(
  sql: Sql,
  identity: ProviderIdentity,
  options: { workosSessionId?: string; signupMode: "open" | "invite"; now: Date },
): Promise<SignInResult> {
  const result = await callFunction<
    SessionPayload & { is_new_user: boolean; error?: IdentityError }
  >(
    sql,
    "identity.sign_in",
    identity.provider,
    identity.providerUserId,
    identity.email,
    identity.emailVerified,
    identity.displayName,
    options.workosSessionId ?? null,
    options.signupMode === "invite",
    sessionTtlSeconds,
    options.now,
  );
  return result.error ? { ok: false, error: result.error } : { ok: true, ...result };
}

export type RotateResult =
  | (SessionPayload & { status: "rotated" | "replayed" })
  | { status: "reused" | "revoked" | "unknown" };

/** Advances the session's refresh counter (or recognises a concurrent or reused token). */
export async function rotateRefreshToken(
  sql: Sql,
  parts: RefreshTokenParts,
  now: Date,
): Promise<RotateResult> {
  return await callFunction<RotateResult>(
    sql,
    "identity.rotate_refresh_token",
    parts.sessionId,
    parts.counter,
    refreshReuseGraceSeconds,
    sessionTtlSeconds,
    now,
  );
}

/** The session behind a valid access token, or null when it was revoked or expired. */
export async function liveSession(
  sql: Sql,
  sessionId: string,
  personId: string,
  now: Date,
): Promise<SessionPayload | null> {
  return await callFunction(sql, "identity.live_session", sessionId, personId, now);
}

/** Revokes a live session; returns its WorkOS session id (if any), or null if it was not live. */
export async function revokeSession(
  sql: Sql,
  sessionId: string,
  personId: string,
  now: Date,
): Promise<{ workos_session_id: string | null } | null> {
  return await callFunction(sql, "identity.revoke_session", sessionId, personId, now);
}

/**
 * The token response of SPEC §5 for a session payload. `withRefreshToken: false` for the
 * bearer-only refresh, which extends an access token without handing out the refresh token.
 */
export async function tokenResponse(
  tokens: SessionTokens,
  payload: SessionPayload,
  now: Date,
  options: { withRefreshToken: boolean } = { withRefreshToken: true },
): Promise<TokenResponse> {
  const access = await tokens.access.mint(tokenSubject(payload), now);
  const response: TokenResponse = {
    access_token: access.token,
    token_type: "bearer",
    expires_in: access.expiresIn,
    expires_at: access.expiresAt,
    person: payload.person,
  };
  if (options.withRefreshToken) {
    response.refresh_token = await tokens.refresh.issue({
      sessionId: payload.session_id,
      counter: payload.refresh_counter,
    });
  }
  return response;
}

function tokenSubject(payload: SessionPayload): TokenSubject {
  const { claims } = payload;
  return {
    personId: payload.person.id,
    email: claims.email,
    phone: claims.phone,
    sessionId: payload.session_id,
    provider: claims.provider,
    providers: claims.providers,
    amrMethod: claims.amr_method,
    amrTimestamp: claims.amr_timestamp,
    workspaceId: claims.workspace_id,
    workspaceRole: claims.workspace_role,
  };
}

function uuidToBytes(uuid: string): Uint8Array {
  const hex = uuid.replaceAll("-", "");
  return Uint8Array.from(
    { length: uuidBytes },
    (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16),
  );
}

function bytesToUuid(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
