/**
 * A person as the functions see them (SPEC §7). The upsert itself is SQL (identity.upsert_person,
 * called inside identity.sign_in): it keys on the provider's user id, falls back to the email only
 * when the provider says it is verified, and refuses an unverified email that belongs to someone
 * else.
 */

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

/** Why a sign-in was refused after the provider answered. */
export type IdentityError = "EMAIL_NOT_VERIFIED" | "IDENTITY_CONFLICT" | "SIGNUP_DISABLED";
