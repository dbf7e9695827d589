/**
 * otp-send — `POST { email }` from a sign-in page or a mobile app (mode `publishable`). Sends a
 * one-time code by email through Stytch ("log in or create user") and answers 200
 * `{ method_id }` (Stytch's email id), the same whether or not the person exists.
 *
 * Limits (SPEC §13.2), checked and recorded in Postgres in one round trip before Stytch is
 * called: per (email, client IP) one send per 60 s and 5 per hour; per email 15 per hour; per IP
 * 30 per hour. An email's `+tag` is ignored for them, so the aliases of one inbox share its budget.
 * Over a limit: 429 `RATE_LIMITED` with `Retry-After`, and Stytch is not called. The email's
 * budget is three pairs' worth, so a stranger sending from one or two IPs cannot spend it all: its
 * owner, from another IP, can still be sent a code. A send counts even when Stytch then fails, so
 * a failing provider is never called faster than the limits allow. A code Stytch did send puts its
 * method_id on record (otp-verify refuses any other) and starts the method's counts of wrong codes
 * again.
 */
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json } from "../_shared/http.ts";
import { maskEmail } from "../_shared/log.ts";
import { otpCodeSent, otpSendAllowed } from "../_shared/otp_limits.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { stytchFailure } from "../_shared/stytch_failure.ts";
import { emailAddress, lazySchemas, readJson } from "../_shared/validate.ts";

/** The request body, built on first use; also read by the API document (local/openapi.ts). */
export const requestSchemas = lazySchemas((zod) => ({
  sendBody: zod.z.object({ email: emailAddress(zod) }),
}));

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "otp-send",
    methods: ["POST"],
    cors: true,
    auth: "publishable",
    requires: ["core", "stytch"],
  }, async (req, { core, stytch, clientIp, now, log }) => {
    const { sendBody } = await requestSchemas();
    const { email } = await readJson(req, sendBody);

    const verdict = await otpSendAllowed(core.sql, { email, ip: clientIp }, now);
    if (!verdict.allowed) {
      log.info("otp_send_refused", { limit: verdict.limit, email: maskEmail(email) });
      throw new HttpError(
        429,
        "RATE_LIMITED",
        `Too many codes requested; try again in ${verdict.retry_after_seconds} seconds`,
        { "retry-after": String(verdict.retry_after_seconds) },
      );
    }

    const sent = await stytch.sendEmailCode(email, log);
    if (!sent.ok) throw stytchFailure(sent.reason);
    // On record as handed out; Stytch replaced the method's code, so its counts start again.
    await otpCodeSent(core.sql, sent.methodId, now);
    return json({ method_id: sent.methodId }, 200, { "cache-control": "no-store" });
  });
}
