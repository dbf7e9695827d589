/**
 * otp-verify — `POST { method_id, code }` from a sign-in page or a mobile app (mode `anon-key`).
 * Checks the emailed code with Stytch; on success the person is found or created (keyed on the
 * Stytch user id, else the Stytch-verified email, so someone who first came through WorkOS stays
 * the same person) and a platform session opened, in one SQL round trip. Answers 200 with the
 * token response, `person` and `is_new_user`.
 *
 * A wrong, expired or used code is 401 `INVALID_CODE`. Each method_id gets 5 attempts per code it
 * was sent, counted in Postgres before Stytch is called; past them every attempt, the right code
 * included, is 429 `TOO_MANY_ATTEMPTS` without calling Stytch (a new otp-send starts a new count).
 * Stytch failing is 502 `PROVIDER_ERROR` (429 when Stytch rate-limits) and writes nothing.
 */
import { z } from "zod";
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json } from "../_shared/http.ts";
import { otpVerifyAttempt, otpVerifyRelease } from "../_shared/otp_limits.ts";
import type { IdentityError } from "../_shared/person.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { signIn } from "../_shared/session_store.ts";
import { stytchFailure } from "../_shared/stytch_failure.ts";
import { tokenResponse } from "../_shared/tokens.ts";
import { readJson } from "../_shared/validate.ts";

const verifyBody = z.object({
  method_id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "must be the method_id otp-send answered"),
  code: z.string({ error: (issue) => issue.input === undefined ? undefined : "must be 6 digits" })
    .regex(/^[0-9]{6}$/, "must be 6 digits"),
});

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
    auth: "anon-key",
    requires: ["core", "stytch"],
  }, async (req, { core, stytch, now, log }) => {
    const { method_id, code } = await readJson(req, verifyBody);

    if (!await otpVerifyAttempt(core.sql, method_id, now)) {
      throw new HttpError(
        429,
        "TOO_MANY_ATTEMPTS",
        "Too many wrong codes for this sign-in; request a new code",
      );
    }

    const checked = await stytch.authenticateCode(method_id, code, log);
    if (!checked.ok) {
      // A wrong code stays counted: this is the failure the limit is about.
      if (checked.reason === "invalid_code") {
        throw new HttpError(401, "INVALID_CODE", "The code is wrong or has expired");
      }
      // Stytch did not judge the code, so the attempt is given back.
      await otpVerifyRelease(core.sql, method_id, now);
      throw stytchFailure(checked.reason);
    }

    // A Stytch code proves control of the address it was sent to, hence emailVerified: true.
    const result = await signIn(core.sql, {
      provider: "stytch",
      providerUserId: checked.userId,
      email: checked.email,
      emailVerified: true,
      displayName: null,
    }, { signupMode: core.config.signupMode, now });
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
