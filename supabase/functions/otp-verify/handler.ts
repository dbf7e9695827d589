/**
 * otp-verify — `POST { method_id, code }` from a sign-in page or a mobile app, with the project's
 * anon key (verify_jwt = true). Checks the emailed code with Stytch; on success the person is
 * found or created (keyed on the Stytch user id, else the Stytch-verified email, so someone who
 * first came through WorkOS stays the same person) and a platform session opened, in one SQL round
 * trip. Answers 200 with the token response, `person` and `is_new_user`.
 *
 * A wrong, expired or used code is 401 `INVALID_CODE`. Each method_id gets 5 attempts per code it
 * was sent, counted in Postgres before Stytch is called; past them every attempt, the right code
 * included, is 429 `TOO_MANY_ATTEMPTS` without calling Stytch (a new otp-send starts a new count).
 * Stytch failing is 502 `PROVIDER_ERROR` (429 when Stytch rate-limits) and writes nothing.
 */
import { z } from "zod";
import { callFunction } from "../_shared/db.ts";
import { type Deps, platformServices } from "../_shared/deps.ts";
import { defineHandler, type Handler, HttpError, json, readJson } from "../_shared/http.ts";
import type { IdentityError } from "../_shared/person.ts";
import { signIn, tokenResponse } from "../_shared/sessions.ts";
import { type StytchOtpOptions, stytchOtpService } from "../_shared/stytch.ts";

/** What tests may tune; production uses the defaults. */
export interface OtpVerifyOptions {
  /** Stytch client options, e.g. a short `timeoutMs` (at most and by default 10 s). */
  stytch?: StytchOtpOptions;
}

/** Codes checked against one sent code of a method_id: 5 in a million guesses at most. */
export const maxAttemptsPerCode = 5;
/** What a client is told to wait when Stytch itself rate-limits us (it does not say how long). */
const providerRetryAfterSeconds = 60;

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

/** Builds otp-verify once per process: the Stytch client, token keys and the database. */
export function createHandler(deps: Deps, options: OtpVerifyOptions = {}): Handler {
  const platform = platformServices(deps);
  const stytch = stytchOtpService(deps.config.stytch, "otp-verify", options.stytch);
  return defineHandler(
    { name: "otp-verify", methods: ["POST"], cors: true },
    async (req, { log }) => {
      const otp = stytch();
      const { core, sql, tokens } = platform();
      const now = deps.now();
      const { method_id, code } = await readJson(req, verifyBody);

      const allowed = await callFunction<boolean>(
        sql,
        "identity.otp_verify_attempt",
        method_id,
        maxAttemptsPerCode,
        now,
      );
      if (!allowed) {
        throw new HttpError(
          429,
          "TOO_MANY_ATTEMPTS",
          "Too many wrong codes for this sign-in; request a new code",
        );
      }

      const checked = await otp.authenticateCode(method_id, code);
      if (!checked.ok) {
        if (checked.reason === "invalid_code") {
          // The attempt stays counted: this is the failure the limit is about.
          throw new HttpError(401, "INVALID_CODE", "The code is wrong or has expired");
        }
        // Stytch did not judge the code, so the attempt is given back.
        await callFunction(sql, "identity.otp_verify_release", method_id, now);
        if (checked.reason === "rate_limited") {
          throw new HttpError(
            429,
            "RATE_LIMITED",
            "The sign-in provider is busy; try again later",
            {
              "retry-after": String(providerRetryAfterSeconds),
            },
          );
        }
        throw new HttpError(502, "PROVIDER_ERROR", "Could not check the code; try again later");
      }

      // A Stytch code proves control of the address it was sent to, hence emailVerified: true.
      const result = await signIn(sql, {
        provider: "stytch",
        providerUserId: checked.userId,
        email: checked.email,
        emailVerified: true,
        displayName: null,
      }, { signupMode: core.signupMode, now });
      if (!result.ok) {
        log.info("otp sign-in refused", { reason: result.error });
        throw identityErrors[result.error]();
      }
      return json(
        { ...await tokenResponse(tokens, result, now), is_new_user: result.is_new_user },
        200,
        { "cache-control": "no-store" },
      );
    },
  );
}
