/**
 * A person as the functions see them (SPEC §7), and what a provider's profile may put on one
 * (SPEC §13.8). The upsert itself is SQL (identity.upsert_person,
 * called inside identity.sign_in): it keys on the provider's user id, falls back to the email only
 * when the provider says it is verified, and refuses an unverified email that belongs to someone
 * else.
 */

import { cutText } from "./json_sanitize.ts";

/** Longest name kept from a profile, in characters (the person's display_name check). */
export const maxProfileNameLength = 200;
/** Longest email kept from a profile (RFC 5321's path limit; the person's email check). */
export const maxProfileEmailLength = 254;
// One @, no whitespace or control characters, a dotted domain: enough to send mail to, and what
// the person's email check needs. Providers validate addresses themselves; this keeps out junk.
const emailPattern = /^[^\s@\p{Cc}]{1,64}@[^\s@\p{Cc}.]+(?:\.[^\s@\p{Cc}.]+)+$/u;
const controlCharacters = /\p{Cc}/gu;

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

/**
 * A name from a provider's profile as a person's display name can hold it (SPEC §13.8): control
 * characters (U+0000 included) removed, lone surrogates made U+FFFD, trimmed, cut to 200
 * characters; null when nothing is left or it is not a string.
 *
 * @example
 * profileName("Ada\u0000 "); // "Ada"
 */
export function profileName(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const cleaned = value.toWellFormed().replace(controlCharacters, "").trim();
  return cutText(cleaned, maxProfileNameLength).trim() || null;
}

/**
 * An email from a provider's profile, or null when it is not one (SPEC §13.8): an invalid address
 * or one over 254 characters counts as no email, so it neither links nor is stored.
 *
 * @example
 * profileEmail(" ada@example.com "); // "ada@example.com"
 * profileEmail(`${"a".repeat(250)}@example.com`); // null
 */
export function profileEmail(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const email = value.trim();
  return email.length <= maxProfileEmailLength && email.isWellFormed() && emailPattern.test(email)
    ? email
    : null;
}
