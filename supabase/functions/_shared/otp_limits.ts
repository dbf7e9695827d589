/**
 * The OTP abuse limits (SPEC §6 otp-send, otp-verify), kept in Postgres so they hold across
 * function instances: each check records in the same statement, before Stytch is called. The
 * numbers are the database's policy (identity.policy).
 */
import { callFunction, type Sql } from "./db.ts";

export type SendVerdict =
  | { allowed: true }
  | {
    allowed: false;
    retry_after_seconds: number;
    limit: "email_per_minute" | "email_per_hour" | "ip_per_hour";
  };

/** otp-send: may `email` be sent a code from `ip` now? An allowed send is recorded. */
export async function otpSendAllowed(
  sql: Sql,
  request: { email: string; ip: string },
  now: Date,
): Promise<SendVerdict> {
  return await callFunction(sql, "identity.otp_send_allowed", {
    p_email: request.email,
    p_ip: request.ip,
    p_now: now,
  });
}

/** otp-send, after Stytch sent a new code: attempts against the method start again. */
export async function otpCodeSent(sql: Sql, methodId: string, now: Date): Promise<void> {
  await callFunction(sql, "identity.otp_code_sent", { p_method_id: methodId, p_now: now });
}

/**
 * otp-verify, before Stytch is called: counts this attempt if the method's current code has
 * attempts left; false (nothing recorded) when it has none.
 */
export async function otpVerifyAttempt(sql: Sql, methodId: string, now: Date): Promise<boolean> {
  return await callFunction(sql, "identity.otp_verify_attempt", {
    p_method_id: methodId,
    p_now: now,
  });
}

/** otp-verify, when Stytch could not judge the code: the attempt is given back. */
export async function otpVerifyRelease(sql: Sql, methodId: string, now: Date): Promise<void> {
  await callFunction(sql, "identity.otp_verify_release", { p_method_id: methodId, p_now: now });
}
