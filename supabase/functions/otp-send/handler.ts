/**
 * otp-send — `POST { email }` from a sign-in page or a mobile app, with the project's anon key
 * (verify_jwt = true). Sends a one-time code by email through Stytch ("log in or create user") and
 * answers 200 `{ method_id }` (Stytch's email id), the same whether or not the person exists.
 *
 * Limits, checked and recorded in Postgres in one round trip before Stytch is called: one send per
 * email per 60 s, 5 per email per hour, 30 per client IP per hour (first `x-forwarded-for` hop).
 * Over a limit: 429 `RATE_LIMITED` with `Retry-After`, and Stytch is not called. A send counts even
 * when Stytch then fails, so a failing provider is never called faster than the limits allow.
 */
import { z } from "zod";
import { callFunction } from "../_shared/db.ts";
import { type Deps, platformServices } from "../_shared/deps.ts";
import {
  defineHandler,
  type Handler,
  HttpError,
  json,
  maskEmail,
  readJson,
} from "../_shared/http.ts";
import { type StytchOtpOptions, stytchOtpService } from "../_shared/stytch.ts";

/** What tests may tune; production uses the defaults. */
export interface OtpSendOptions {
  /** Stytch client options, e.g. a short `timeoutMs` (at most and by default 10 s). */
  stytch?: StytchOtpOptions;
}

const maxEmailLength = 254; // RFC 5321 path limit
/** What a client is told to wait when Stytch itself rate-limits us (it does not say how long). */
const providerRetryAfterSeconds = 60;

const sendBody = z.object({
  email: z.string().trim().toLowerCase()
    .max(maxEmailLength, `must be at most ${maxEmailLength} characters`)
    .pipe(z.email({ error: "must be an email address" })),
});

type SendLimit =
  | { allowed: true }
  | {
    allowed: false;
    retry_after_seconds: number;
    limit: "email_per_minute" | "email_per_hour" | "ip_per_hour";
  };

/** Builds otp-send once per process: the Stytch client and the platform services. */
export function createHandler(deps: Deps, options: OtpSendOptions = {}): Handler {
  const platform = platformServices(deps);
  const stytch = stytchOtpService(deps.config.stytch, "otp-send", options.stytch);
  return defineHandler(
    { name: "otp-send", methods: ["POST"], cors: true },
    async (req, { log, clientIp }) => {
      const otp = stytch();
      const { sql } = platform();
      const now = deps.now();
      const { email } = await readJson(req, sendBody);

      const verdict = await callFunction<SendLimit>(
        sql,
        "identity.otp_send_allowed",
        email,
        clientIp,
        now,
      );
      if (!verdict.allowed) {
        log.info("otp send refused", { limit: verdict.limit, email: maskEmail(email) });
        throw new HttpError(
          429,
          "RATE_LIMITED",
          `Too many codes requested; try again in ${verdict.retry_after_seconds} seconds`,
          { "retry-after": String(verdict.retry_after_seconds) },
        );
      }

      const sent = await otp.sendEmailCode(email);
      if (!sent.ok) {
        if (sent.reason === "rate_limited") {
          throw new HttpError(
            429,
            "RATE_LIMITED",
            "The email provider is busy; try again later",
            { "retry-after": String(providerRetryAfterSeconds) },
          );
        }
        throw new HttpError(502, "PROVIDER_ERROR", "Could not send the code; try again later");
      }

      // Stytch replaced the method's code: attempts against the old one no longer matter.
      await callFunction(sql, "identity.otp_code_sent", sent.methodId, now);
      return json({ method_id: sent.methodId }, 200, { "cache-control": "no-store" });
    },
  );
}
