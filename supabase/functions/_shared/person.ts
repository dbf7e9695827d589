/**
 * Person upsert (SPEC §7): one SQL call, identity.upsert_person, safe under concurrency. Keys on the
 * provider's user id, falls back to the email only when the provider says it is verified, and
 * refuses an unverified email that belongs to someone else.
 */
import { callFunction, type Sql } from "./db.ts";

/** A person as API answers show it. */
export interface Person {
  id: string;
  email: string | null;
  display_name: string | null;
  created_at: string;
}

/** What a provider told us about the person who just signed in. */
export interface ProviderIdentity {
  provider: "stytch" | "workos";
  providerUserId: string;
  email: string | null;
  /** Whether the provider proved the person controls the email (Stytch OTP always does). */
  emailVerified: boolean;
  displayName: string | null;
}

export type IdentityError = "EMAIL_NOT_VERIFIED" | "IDENTITY_CONFLICT" | "SIGNUP_DISABLED";

export type UpsertResult =
  | { ok: true; person: Person & Record<string, unknown>; isNewUser: boolean }
  | { ok: false; error: IdentityError };

/** Finds or creates the person behind a provider identity, in one round trip. */
export async function upsertPerson(
  sql: Sql,
  identity: ProviderIdentity,
  options: { signupMode: "open" | "invite"; now: Date },
): Promise<UpsertResult> {
  const result = await callFunction<
    { person: Person & Record<string, unknown>; is_new_user: boolean; error?: IdentityError }
  >(
    sql,
    "identity.upsert_person",
    identity.provider,
    identity.providerUserId,
    identity.email,
    identity.emailVerified,
    identity.displayName,
    options.signupMode === "invite",
    options.now,
  );
  if (result.error) return { ok: false, error: result.error };
  return { ok: true, person: result.person, isNewUser: result.is_new_user };
}
