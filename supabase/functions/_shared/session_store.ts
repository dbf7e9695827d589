/**
 * The session SQL (SPEC §6): open a session after a provider sign-in, rotate refresh tokens, read
 * a live session, `me`, and revoke. One typed function per SQL function, each one round trip.
 */
import { callFunction, type Database } from "./db.ts";
import type { IdentityError, Person, ProviderIdentity } from "./person.ts";
import type { RefreshTokenParts } from "./refresh_tokens.ts";

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

export type SignInResult =
  | (SessionPayload & { ok: true; is_new_user: boolean })
  | { ok: false; error: IdentityError };

/**
 * After a provider answered: upsert the person, provision a new one, open a session, in one round
 * trip (identity.sign_in). In `invite` signup mode a new person needs an open invitation.
 */
export async function signIn(
  sql: Database,
  identity: ProviderIdentity,
  options: { workosSessionId?: string; signupMode: "open" | "invite"; now: Date },
): Promise<SignInResult> {
  const result = await callFunction<
    SessionPayload & { is_new_user: boolean; error?: IdentityError }
  >(sql, "identity.sign_in", {
    p_provider: identity.provider,
    p_provider_user_id: identity.providerUserId,
    p_email: identity.email,
    p_email_verified: identity.emailVerified,
    p_display_name: identity.displayName,
    p_workos_session_id: options.workosSessionId ?? null,
    p_invite_only: options.signupMode === "invite",
    p_now: options.now,
  });
  return result.error ? { ok: false, error: result.error } : { ok: true, ...result };
}

export type RotateResult =
  | (SessionPayload & { status: "rotated" | "replayed" })
  | { status: "reused" | "revoked" | "unknown" };

/**
 * Advances the session's refresh counter, or recognises a concurrent (`replayed`) or reused token
 * (identity.rotate_refresh_token; the grace period is the database's policy).
 */
export async function rotateRefreshToken(
  sql: Database,
  parts: RefreshTokenParts,
  now: Date,
): Promise<RotateResult> {
  return await callFunction<RotateResult>(sql, "identity.rotate_refresh_token", {
    p_session_id: parts.sessionId,
    p_counter: parts.counter,
    p_now: now,
  });
}

/**
 * The session behind a valid access token, for a bearer-only refresh: its payload; `renewable:
 * false` when the token is of an older refresh generation or the session's last sign-in or
 * rotation is too long ago (SPEC §13.3); null when the session was revoked or expired.
 */
export async function liveSession(
  sql: Database,
  session: { sessionId: string; personId: string; generation: number },
  now: Date,
): Promise<SessionPayload | { renewable: false } | null> {
  return await callFunction(sql, "identity.live_session", {
    p_session_id: session.sessionId,
    p_person_id: session.personId,
    p_generation: session.generation,
    p_now: now,
  });
}

/** What `me` answers (SPEC §6). */
export interface MeAnswer {
  person: Person;
  workspaces: { id: string; name: string; role: "owner" | "admin" | "member" }[];
}

/** The person and their workspaces, or null when the session was revoked or expired. */
export async function readMe(
  sql: Database,
  session: { sessionId: string; personId: string },
  now: Date,
): Promise<MeAnswer | null> {
  return await callFunction(sql, "identity.me", {
    p_session_id: session.sessionId,
    p_person_id: session.personId,
    p_now: now,
  });
}

/** Revokes a live session; returns its WorkOS session id (if any), or null if it was not live. */
export async function revokeSession(
  sql: Database,
  session: { sessionId: string; personId: string },
  now: Date,
): Promise<{ workos_session_id: string | null } | null> {
  return await callFunction(sql, "identity.revoke_session", {
    p_session_id: session.sessionId,
    p_person_id: session.personId,
    p_now: now,
  });
}
