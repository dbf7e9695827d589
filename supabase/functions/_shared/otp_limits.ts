/**
 * The OTP abuse limits (SPEC §6 otp-send, otp-verify; §13.2), kept in Postgres so they hold across
 * function instances: each check records in the same statement, before Stytch is called, so
 * concurrent requests cannot all slip under a limit. The numbers are the database's policy
 * (identity.policy); emails (their `+tag` ignored) and IPs are stored only as SHA-256.
 *
 * Limits key on the pair (email, IP) or (method_id, IP) first, with wider limits per email and per
 * method_id, so that a stranger from one or two IPs cannot spend the owner's budget.
 */
import { callFunction, type Database } from "./db.ts";

/** Which send limit refused a send (for logs). */
export type SendLimit =
  | "email_ip_per_minute"
  | "email_ip_per_hour"
  | "email_per_hour"
  | "ip_per_hour";

export type SendVerdict =
  | { allowed: true }
  | { allowed: false; retry_after_seconds: number; limit: SendLimit };

/**
 * otp-send: may `email` be sent a code from `ip` now? An allowed send is recorded; a refused one
 * is not, so hammering does not push the wait further out.
 */
export async function otpSendAllowed(
  sql: Database,
  request: { email: string; ip: string },
  now: Date,
): Promise<SendVerdict> {
  return await callFunction(sql, "identity.otp_send_allowed", {
    p_email: request.email,
    p_ip: request.ip,
    p_now: now,
  });
}

/**
 * otp-send, after Stytch sent a new code: the method_id is on record as handed out (otp-verify
 * refuses any other), and every count against it starts again.
 */
export async function otpCodeSent(sql: Database, methodId: string, now: Date): Promise<void> {
  await callFunction(sql, "identity.otp_code_sent", { p_method_id: methodId, p_now: now });
}

/**
 * What otp-verify may do with an attempt:
 * - `counted`: counted as a wrong code; call Stytch, then settle with {@link otpVerifyRelease}
 *   (Stytch could not judge) or {@link otpVerifySucceeded} (the code was right);
 * - `unknown_method`: no otp-send of this deployment handed out a live code for the method_id
 *   (counted as a failed verify of the IP);
 * - `ip_locked`: this IP used its wrong codes on the method's current code;
 * - `method_locked`: the method's current code used its wrong codes from all IPs, until a new code
 *   is sent;
 * - `ip_limited`: this IP reached its failed verifies for the window.
 */
export type VerifyVerdict =
  | { verdict: "counted" }
  | { verdict: "unknown_method" | "ip_locked" | "method_locked" }
  | { verdict: "ip_limited"; retry_after_seconds: number };

/** otp-verify, before Stytch is called: counts this attempt unless a limit is reached. */
export async function otpVerifyAttempt(
  sql: Database,
  attempt: { methodId: string; ip: string },
  now: Date,
): Promise<VerifyVerdict> {
  return await callFunction(sql, "identity.otp_verify_attempt", {
    p_method_id: attempt.methodId,
    p_ip: attempt.ip,
    p_now: now,
  });
}

/**
 * otp-verify, when Stytch could not judge the code (5xx, timeout, its rate limit): the attempt
 * counted at `now` (the same request's time) is given back to the method and the IP.
 */
export async function otpVerifyRelease(
  sql: Database,
  attempt: { methodId: string; ip: string },
  now: Date,
): Promise<void> {
  await callFunction(sql, "identity.otp_verify_release", {
    p_method_id: attempt.methodId,
    p_ip: attempt.ip,
    p_now: now,
  });
}

/**
 * otp-verify, when Stytch accepted the code: a success is not a failed verify, so the IP's
 * attempt counted at `now` is given back.
 */
export async function otpVerifySucceeded(sql: Database, ip: string, now: Date): Promise<void> {
  await callFunction(sql, "identity.otp_verify_succeeded", { p_ip: ip, p_now: now });
}
