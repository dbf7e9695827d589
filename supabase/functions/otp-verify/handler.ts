/**
 * otp-verify — `POST { method_id, code }` from a sign-in page or a mobile app (mode `publishable`).
 * Checks the emailed code with Stytch; on success the person is found or created (keyed on the
 * Stytch user id, else the Stytch-verified email, so someone who first came through WorkOS stays
 * the same person) and a platform session opened, in one SQL round trip. Answers 200 with the
 * token response, `person` and `is_new_user`.
 *
 * A wrong, expired or used code is 401 `INVALID_CODE`; so is, without calling Stytch, a method_id
 * for which no otp-send of this deployment sent a code within the hour (made-up method_ids cost
 * no Stytch quota). Limits (SPEC §13.2), counted in Postgres before Stytch is called, so
 * concurrent guesses cannot exceed them:
 * - 5 wrong codes per sent code from one client IP; then that IP's attempts on the method, the
 *   right code included, are 429 `TOO_MANY_ATTEMPTS` without calling Stytch;
 * - 20 wrong codes per sent code from all IPs; then every attempt on the method is 429
 *   `TOO_MANY_ATTEMPTS` until a new code is sent (a successful otp-send starts both counts again);
 * - 60 failed verifies per IP per hour (unknown method_ids included); then 429 `RATE_LIMITED` with
 *   `Retry-After` for that IP.
 * The per-IP limits come first so that a stranger guessing from one or two IPs cannot lock the
 * owner, signing in from another, out of their code. An attempt Stytch could not judge, and a
 * right code, are given back to the IP's count. Stytch failing is 502 `PROVIDER_ERROR` (429 when
 * Stytch rate-limits) and writes nothing.
 *
 * The email Stytch answers goes on the person only when it is a usable address (at most 254
 * characters, well-formed); anything else counts as no email, never as a 500 (SPEC §13.8).
 */
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json } from "../_shared/http.ts";
import {
  otpVerifyAttempt,
  otpVerifyRelease,
  otpVerifySucceeded,
  type VerifyVerdict,
} from "../_shared/otp_limits.ts";
import { type IdentityError, profileEmail } from "../_shared/person.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { signIn } from "../_shared/session_store.ts";
import { stytchFailure } from "../_shared/stytch_failure.ts";
import { tokenResponse } from "../_shared/token_response.ts";
import { lazySchemas, readJson } from "../_shared/validate.ts";

/** The request body, built on first use; also read by the API document (local/openapi.ts). */
export const requestSchemas = lazySchemas(({ z }) => ({
  verifyBody: z.object({
    method_id: z.string().regex(
      /^[A-Za-z0-9_-]{1,128}$/,
      "must be the method_id otp-send answered",
    ),
    code: z.string({ error: (issue) => issue.input === undefined ? undefined : "must be 6 digits" })
      .regex(/^[0-9]{6}$/, "must be 6 digits"),
  }),
}));

const wrongCode = () => new HttpError(401, "INVALID_CODE", "The code is wrong or has expired");

/** How an attempt refused before Stytch reads to the client. */
function refusedAttempt(refused: Exclude<VerifyVerdict, { verdict: "counted" }>): HttpError {
  switch (refused.verdict) {
    // The same answer as a wrong code: making up method_ids teaches nothing.
    case "unknown_method":
      return wrongCode();
    case "ip_locked":
    case "method_locked":
      return new HttpError(
        429,
        "TOO_MANY_ATTEMPTS",
        "Too many wrong codes for this sign-in; request a new code",
      );
    case "ip_limited":
      return new HttpError(
        429,
        "RATE_LIMITED",
        `Too many failed sign-in attempts; try again in ${refused.retry_after_seconds} seconds`,
        { "retry-after": String(refused.retry_after_seconds) },
      );
  }
}

/** How a refused sign-in reads to the client. */
const identityErrors: Record<IdentityError, () => HttpError> = {
  SIGNUP_DISABLED: () =>
    new HttpError(403, "SIGNUP_DISABLED", "Sign-up is by invitation only and this email has none"),
  IDENTITY_CONFLICT: () =>
    new HttpError(
      409,
      "IDENTITY_CONFLICT",
      "This email belongs to a person already linked to another Stytch user",
    ),
  // Cannot happen here (a Stytch code proves the email); refused like any unproven email if it did.
  EMAIL_NOT_VERIFIED: () =>
    new HttpError(403, "EMAIL_NOT_VERIFIED", "The email address has not been verified"),
};

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "otp-verify",
    methods: ["POST"],
    cors: true,
    auth: "publishable",
    requires: ["core", "stytch"],
  }, async (req, { core, stytch, clientIp, now, log }) => {
    const { verifyBody } = await requestSchemas();
    const { method_id, code } = await readJson(req, verifyBody);
    const attempt = { methodId: method_id, ip: clientIp };

    const counted = await otpVerifyAttempt(core.sql, attempt, now);
    if (counted.verdict !== "counted") {
      log.info("otp_verify_refused", { reason: counted.verdict });
      throw refusedAttempt(counted);
    }

    const checked = await stytch.authenticateCode(method_id, code, log);
    if (!checked.ok) {
      // A wrong code stays counted: this is the failure the limits are about.
      if (checked.reason === "invalid_code") throw wrongCode();
      // Stytch did not judge the code, so the attempt is given back.
      await otpVerifyRelease(core.sql, attempt, now);
      throw stytchFailure(checked.reason);
    }

    // A Stytch code proves control of the address it was sent to, hence emailVerified: true. The
    // IP's attempt is given back alongside: both are one round trip each and independent.
    const [result] = await Promise.all([
      signIn(core.sql, {
        provider: "stytch",
        providerUserId: checked.userId,
        // An over-long or malformed profile email counts as no email (SPEC §13.8), never a 500.
        email: profileEmail(checked.email),
        emailVerified: true,
        displayName: null,
      }, { signupMode: core.config.signupMode, now }),
      otpVerifySucceeded(core.sql, clientIp, now),
    ]);
    if (!result.ok) {
      log.info("otp_sign_in_refused", { reason: result.error });
      throw identityErrors[result.error]();
    }
    return json(
      { ...await tokenResponse(core.tokens, result, now), is_new_user: result.is_new_user },
      200,
      { "cache-control": "no-store" },
    );
  });
}
